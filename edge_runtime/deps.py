"""The one place that decides which optional packages are installed.

Nothing here imports a heavy package: availability is checked with ``importlib.util.find_spec``
and the error for a missing one names the extra that brings it in.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from edge_runtime.errors import MissingDependencyError

# module name -> (pip requirement, edgepilot extra that installs it)
_PACKAGES: dict[str, tuple[str, str]] = {
    "ai_edge_litert": ("ai-edge-litert", ""),
    "tflite_runtime": ("tflite-runtime", ""),
    "tensorflow": ("tensorflow", "convert"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "onnx": ("onnx", "convert"),
    "tf2onnx": ("tf2onnx", "convert"),
    "cv2": ("opencv-python-headless", "apps"),
    "sounddevice": ("sounddevice", "apps"),
    "soxr": ("soxr", "convert"),
    "matplotlib": ("matplotlib", "convert"),
    "tf_keras": ("tf-keras", "train"),
    "tensorflow_model_optimization": ("tensorflow-model-optimization", "train"),
    "yaml": ("pyyaml", "train"),
    "pycocotools": ("pycocotools", "train"),
    "skimage": ("scikit-image", "train"),
    "sklearn": ("scikit-learn", "train"),
    "paho": ("paho-mqtt", "apps"),
    "gymnasium": ("gymnasium[mujoco]", "control"),
    "mujoco": ("mujoco", "control"),
    "serial": ("pyserial", "control"),
    "pyarrow": ("pyarrow", "control"),
}

# TFLite interpreters, in the order load() prefers them.
TFLITE_MODULES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


def is_available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(module: str) -> str:
    requirement, extra = _PACKAGES.get(module, (module, ""))
    if extra:
        return f"pip install 'edgepilot[{extra}]'  (or: pip install {requirement})"
    return f"pip install {requirement}"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature`` or raise an error that says what to install."""
    if not is_available(module):
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', which is not installed. "
            f"Install it with: {install_hint(module)}"
        )
    return importlib.import_module(module)


def tflite_interpreters() -> list[str]:
    """The TFLite interpreter packages installed here, most preferred first."""
    return [m for m in TFLITE_MODULES if is_available(m)]

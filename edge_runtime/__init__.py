"""edge_runtime: one small API that runs .tflite and .onnx models on CPU, GPU or Edge TPU and
says which accelerator actually ran them. It needs numpy and a TFLite interpreter only; ONNX
Runtime is optional (``pip install 'edgepilot[onnx]'``). It imports nothing else of edgepilot.

    >>> import edge_runtime
    >>> model = edge_runtime.load("model.tflite", device="cpu", threads=2)
    >>> model.accelerator
    'cpu/xnnpack x2 threads'
    >>> scores = model.run(image)["scores"]
"""
from edge_runtime.devices import Device
from edge_runtime.errors import (
    DeviceError,
    DeviceStringError,
    EdgeRuntimeError,
    InferenceError,
    InputError,
    MissingDependencyError,
    ModelFileError,
)
from edge_runtime.loader import load, sniff
from edge_runtime.metadata import sidecar_metadata
from edge_runtime.model import Fallback, Model, Outputs
from edge_runtime.tensors import Quantization, TensorSpec

__all__ = [
    "Device", "DeviceError", "DeviceStringError", "EdgeRuntimeError", "Fallback", "InferenceError", "InputError",
    "MissingDependencyError", "Model", "ModelFileError", "Outputs", "Quantization", "TensorSpec",
    "load", "sidecar_metadata", "sniff",
]

"""The one typed place for conversion options, checked when built."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runtime.metadata import ModelMetadata

# Target names: <format>_<variant>. "edgetpu" is full int8 compiled by edgetpu_compiler.
TFLITE_TARGETS = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int16x8")
ONNX_TARGETS = ("onnx_fp32", "onnx_int8")
TARGETS = TFLITE_TARGETS + ONNX_TARGETS + ("edgetpu",)
NEEDS_CALIBRATION = ("tflite_int8", "tflite_int16x8", "onnx_int8", "edgetpu")
# ONNX int8 data types (activations, weights); see convert.onnx_variants.ONNX_INT8_TYPES
ONNX_INT8_CHOICES = ("u8s8", "s8s8")


@dataclass(frozen=True)
class ConvertOptions:
    """Everything ``edgepilot convert`` takes.

    ``calib`` / ``eval`` are a path (image or WAV folder, .npy, .npz) or a Python callable;
    ``budget`` is in percentage points of top-1 accuracy (or of agreement with the float model
    when there are no labels)."""

    model: Path
    out_dir: Path
    targets: tuple[str, ...] = TARGETS
    calib: Any = None
    eval: Any = None
    calib_samples: int = 200
    eval_samples: int = 2000
    budget: float | None = None
    auto_fix: bool = False
    max_fix_steps: int = 8
    force: bool = False
    int8_io: str = "int8"
    onnx_int8: str = "u8s8"  # ONNX int8 data types: uint8 activations, int8 weights (see --onnx-int8)
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    bench_runs: int = 100
    seed: int = 0
    batch: int | None = None  # fix the batch dimension (None keeps it open)

    def __post_init__(self):
        object.__setattr__(self, "model", Path(self.model))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if not self.model.exists():  # before anything about data: the model is what the user asked about
            raise FileNotFoundError(f"{self.model}: no such model file or folder; expected a SavedModel folder, a "
                                    f".keras / .h5 file, a .tflite file or a folder written by edgepilot train")
        targets = tuple(dict.fromkeys(self.targets))
        unknown = [t for t in targets if t not in TARGETS]
        if unknown or not targets:
            raise ValueError(f"--targets: unknown {unknown or 'empty list'}; expected any of {', '.join(TARGETS)}")
        object.__setattr__(self, "targets", targets)
        if self.batch is not None and self.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {self.batch}")
        if self.int8_io not in ("int8", "uint8"):
            raise ValueError(f"--int8-io must be 'int8' or 'uint8', got {self.int8_io!r}")
        if self.onnx_int8 not in ONNX_INT8_CHOICES:
            raise ValueError(f"--onnx-int8 must be one of {', '.join(ONNX_INT8_CHOICES)}, got {self.onnx_int8!r}")
        if self.budget is not None and not self.budget >= 0:
            raise ValueError(f"--budget is in percentage points and must be >= 0, got {self.budget}")
        for name in ("calib_samples", "eval_samples", "bench_runs", "max_fix_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.budget is not None and self.calib is None and self.eval is None:
            raise ValueError("--budget needs data to measure accuracy on: pass --eval DATA (or --calib DATA)")
        if self.auto_fix and self.budget is None:
            raise ValueError("--auto-fix needs --budget: it keeps layers in float until int8 is within the budget")
        needs = [t for t in targets if t in NEEDS_CALIBRATION]
        if needs and self.calib is None:
            raise ValueError(
                f"targets {needs} need calibration data: pass --calib DATA (an image or WAV folder, .npy or .npz), "
                "or leave those targets out with --targets"
            )

    def output_stem(self) -> str:
        name = self.model.name
        if name == "saved_model" and self.model.parent.name:  # a training folder's: name it after the folder
            return self.model.parent.resolve().name
        for suffix in (".keras", ".h5", ".tflite"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

"""What a model needs around it to be used correctly: task, labels, input layout, the
preprocessing recipe (normalization, sample rate) and thresholds.

It travels with every model edgepilot converts: inside the file (a TFLite metadata entry named
``edgepilot``, ONNX ``metadata_props["edgepilot"]``) and as a sidecar ``<model stem>.json``.
The same recipe prepares calibration data, evaluation data and, later, the device's inputs."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

METADATA_KEY = "edgepilot"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Preprocess:
    """How raw data becomes the model's input.

    Images: ``x = (pixels * scale - mean) / std`` per channel, after resizing to ``size``
    (height, width) in ``color`` order. Audio: mono float samples in [-1, 1] at
    ``sample_rate_hz``, cut or zero-padded to ``num_samples``. Arrays: used as they are."""

    kind: str = "array"  # "image", "audio" or "array"
    size: tuple[int, int] | None = None  # image (height, width) in pixels
    color: str = "rgb"  # "rgb", "bgr" or "gray"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    sample_rate_hz: int | None = None
    num_samples: int | None = None

    def __post_init__(self):
        if self.kind not in ("image", "audio", "array"):
            raise ValueError(f"preprocess kind must be 'image', 'audio' or 'array', got {self.kind!r}")
        if self.color not in ("rgb", "bgr", "gray"):
            raise ValueError(f"preprocess color must be 'rgb', 'bgr' or 'gray', got {self.color!r}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"preprocess std must not contain 0, got {self.std}")
        if self.kind == "audio" and not self.sample_rate_hz:
            raise ValueError("audio preprocessing needs sample_rate_hz")

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Scale and normalize already-resized pixels (or any array) to float32."""
        x = np.asarray(values, dtype=np.float32) * np.float32(self.scale)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return (x - mean) / std

    def fit_audio(self, samples: np.ndarray) -> np.ndarray:
        """Mono float32 audio cut or zero-padded to ``num_samples`` (when set)."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim > 1:
            x = x.mean(axis=-1)
        if self.num_samples:
            x = x[: self.num_samples]
            x = np.pad(x, (0, self.num_samples - len(x)))
        return x


@dataclass(frozen=True)
class ModelMetadata:
    task: str = ""  # "classification", "detection", "keyword_spotting", "regression", ...
    labels: tuple[str, ...] = ()
    input_layout: str = ""  # "NHWC", "NCHW", "NTC", ...
    preprocess: Preprocess = field(default_factory=Preprocess)
    thresholds: dict[str, float] = field(default_factory=dict)
    source: str = ""  # what the model was converted from
    variant: str = ""  # "tflite_int8", "onnx_fp32", ...
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMetadata":
        """Parse metadata written by :meth:`to_json` (plain JSON; nothing is executed)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"edgepilot metadata must be a JSON object, got {type(data).__name__}")
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise ValueError(f"edgepilot metadata schema {version} is newer than this edgepilot ({SCHEMA_VERSION})")
        pre = data.pop("preprocess", {}) or {}
        for key in ("size", "mean", "std"):
            if pre.get(key) is not None:
                pre[key] = tuple(pre[key])
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown edgepilot metadata fields {unknown}")
        data["labels"] = tuple(data.get("labels", ()))
        return cls(preprocess=Preprocess(**pre), **data)

    def with_variant(self, variant: str) -> "ModelMetadata":
        from dataclasses import replace

        return replace(self, variant=variant)

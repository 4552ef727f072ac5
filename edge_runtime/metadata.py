"""What a model needs around it to be used correctly: task, labels, input layout, the
preprocessing recipe (normalization, sample rate) and thresholds.

It travels with every model edgepilot converts: inside the file (a TFLite metadata entry named
``edgepilot``, ONNX ``metadata_props["edgepilot"]``) and as a sidecar ``<model stem>.json``.
The same recipe prepares calibration data, evaluation data and, later, the device's inputs."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

METADATA_KEY = "edgepilot"
SCHEMA_VERSION = 1
RESIZE_MODES = ("stretch", "letterbox")

# The output layout of edgepilot's own detectors (``extra["decoder"] == "edgepilot"``): two
# outputs, ``boxes`` [1, N, 4] holding x1, y1, x2, y2 as fractions of the model input's width and
# height (of the letterboxed input, not of the original frame), and ``scores`` [1, N, C] holding
# independent per-class probabilities in [0, 1]. Both lie in [0, 1], so int8 serves each with
# one scale of 1/256; NMS comes after the model. ``thresholds`` holds "score" and "iou".
DETECTOR_LAYOUT = "edgepilot"


@dataclass(frozen=True)
class Preprocess:
    """How raw data becomes the model's input.

    Images: ``x = (pixels * scale - mean) / std`` per channel, after resizing to ``size``
    (height, width) in ``color`` order. ``resize`` says how: ``"stretch"`` scales each axis on its
    own (aspect ratio not kept), ``"letterbox"`` scales both by the same factor and pads the rest
    with ``pad_value`` (raw pixel value, before normalization), centred, as YOLO does;
    :meth:`geometry` gives the exact mapping. Audio: mono float samples in [-1, 1] at
    ``sample_rate_hz``, cut or zero-padded to ``num_samples``. Arrays: used as they are."""

    kind: str = "array"  # "image", "audio" or "array"
    size: tuple[int, int] | None = None  # image (height, width) in pixels
    color: str = "rgb"  # "rgb", "bgr" or "gray"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    sample_rate_hz: int | None = None
    num_samples: int | None = None
    resize: str = "stretch"  # images: "stretch" or "letterbox"
    pad_value: float = 114.0  # letterbox padding, raw pixel value (YOLO's grey)

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"preprocess resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.kind not in ("image", "audio", "array"):
            raise ValueError(f"preprocess kind must be 'image', 'audio' or 'array', got {self.kind!r}")
        if self.color not in ("rgb", "bgr", "gray"):
            raise ValueError(f"preprocess color must be 'rgb', 'bgr' or 'gray', got {self.color!r}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"preprocess std must not contain 0, got {self.std}")
        if self.kind == "audio" and not self.sample_rate_hz:
            raise ValueError("audio preprocessing needs sample_rate_hz")

    def geometry(self, height: int, width: int) -> "ResizeGeometry":
        """How a ``height`` x ``width`` image maps onto the model input ``size``."""
        if self.size is None:
            raise ValueError("preprocess size (the model input height, width) is not set")
        out_h, out_w = self.size
        if self.resize == "stretch":
            return ResizeGeometry(out_h / height, out_w / width, 0.0, 0.0, out_h, out_w, out_h, out_w)
        scale = min(out_h / height, out_w / width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        return ResizeGeometry(new_h / height, new_w / width, float(top), float(left), new_h, new_w, out_h, out_w)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Scale and normalize already-resized pixels (or any array) to a new float32 array.

        One copy, then the arithmetic in place, in the same order as ``(x * scale - mean) / std``
        (bit-identical). Written as that expression, with its frame-sized temporaries, it took
        10x as long on a camera frame (0.94 ms instead of 0.09 ms for a 192x256x3 input on this
        project's 2-core VM)."""
        x = np.array(values, dtype=np.float32, order="C", copy=True)  # never the caller's array
        x *= np.float32(self.scale)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        rows = x
        if x.ndim >= 2 and x.size and max(mean.size, std.size) > 1 and x.shape[-1] in (mean.size, std.size):
            # per-channel values: numpy loops over a 3-long innermost axis 49,152 times for a
            # 192x256x3 input (0.9 ms); as rows of width x channels the inner loop is 768 long
            width, channels = x.shape[-2], x.shape[-1]
            rows = x.reshape(-1, width * channels)  # a view: x is a fresh C-contiguous copy
            mean = np.tile(np.broadcast_to(mean, (channels,)), width)
            std = np.tile(np.broadcast_to(std, (channels,)), width)
        if mean.any():  # x - 0 and x / 1 are x itself, bit for bit: skip two passes over the frame
            rows -= mean
        if (std != 1).any():
            rows /= std
        return x

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
class ResizeGeometry:
    """Where an image lands in the model input: pixels are scaled by ``scale_y``/``scale_x``
    to ``resized_h`` x ``resized_w`` and placed at (``pad_top``, ``pad_left``) in an input of
    ``input_h`` x ``input_w``. ``to_input``/``to_image`` map boxes ``[..., 4]`` given as
    ``x1, y1, x2, y2`` pixels between the two frames exactly."""

    scale_y: float
    scale_x: float
    pad_top: float
    pad_left: float
    resized_h: int
    resized_w: int
    input_h: int
    input_w: int

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, dtype=np.float64)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top])
        return b * scale + offset

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, dtype=np.float64)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top])
        return (b - offset) / scale


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


def sidecar_metadata(path: str | os.PathLike) -> dict:
    """The JSON object in the file next to a model with the same stem (``model.json`` beside
    ``model.tflite``), or {} when there is none or it does not hold an object: edgepilot's own
    sidecars and manifests such as a wake-word model's cut-off."""
    candidate = Path(path).with_suffix(".json")
    if not candidate.is_file():
        return {}
    try:
        value = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}

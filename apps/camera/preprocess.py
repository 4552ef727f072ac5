"""A BGR frame from OpenCV -> the model's input tensor, with the exact geometry to map boxes back.

The recipe (size, stretch or letterbox, colour order, normalization) is the model's own
:class:`~edge_runtime.metadata.Preprocess`; the pixel arithmetic of the resize is
``Preprocess.geometry`` (the one definition shared with training and evaluation), and OpenCV
does the work. A quantized input receives its integer codes, looked up per pixel value in a
256-entry table made once with the float recipe and the model's own scale and zero point
(:func:`pixel_codes`): the same codes ``edge_runtime.Model.run`` would compute from the floats,
at a twentieth of the cost (0.15 ms instead of 2.7 ms for a 192x256x3 input on this project's
2-core VM). The usual recipe (pixels / 255 into a scale of 1/255) needs no table at all: each
code is the pixel value itself (uint8, zero point 0) or the value - 128 (int8, zero point -128),
a view or one XOR (0.01 ms instead of the table's 0.18 ms for a 256x320x3 input).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from edge_runtime.metadata import Preprocess, ResizeGeometry
from edge_runtime.tensors import TensorSpec


def is_open(dim) -> bool:
    """Whether a tensor dimension is left open by the model (-1 in TFLite, a name in ONNX)."""
    return not (isinstance(dim, int) and dim > 0)


def image_layout(spec: TensorSpec) -> tuple[str, int, int, int]:
    """(``"NHWC"`` or ``"NCHW"``, height, width, channels) of an image input ``[1, H, W, C]`` or
    ``[1, C, H, W]`` with 1 or 3 channels."""
    shape = tuple(spec.shape)
    if len(shape) == 4 and not any(is_open(d) for d in shape[1:]):
        if shape[3] in (1, 3):
            return "NHWC", shape[1], shape[2], shape[3]
        if shape[1] in (1, 3):
            return "NCHW", shape[2], shape[3], shape[1]
    raise ValueError(f"model input '{spec.name}' has shape {list(shape)}; an image detector needs "
                     "[1, H, W, 3|1] (NHWC) or [1, 3|1, H, W] (NCHW) with a fixed height and width, or "
                     "metadata that gives the size (edgepilot's preprocess size, Ultralytics' imgsz)")


def fixed_input(spec: TensorSpec, size: tuple[int, int] | None) -> TensorSpec:
    """``spec`` with its open dimensions made concrete, for a model exported with a dynamic input
    (``[batch, 3, height, width]`` in ONNX, ``-1`` in TFLite): batch 1, and an open height and
    width from ``size`` (the metadata's). Anything else is returned as it is, for
    :func:`image_layout` to accept or refuse."""
    shape = list(spec.shape)
    if len(shape) != 4 or spec.fixed_shape:
        return spec
    if not is_open(shape[3]) and shape[3] in (1, 3) and (is_open(shape[1]) or is_open(shape[2])):
        axes = (1, 2)  # NHWC
    elif not is_open(shape[1]) and shape[1] in (1, 3):
        axes = (2, 3)  # NCHW
    else:
        axes = ()
    if any(is_open(shape[a]) for a in axes):
        if size is None:
            return spec
        for axis, value in zip(axes, size):
            shape[axis] = int(value) if is_open(shape[axis]) else shape[axis]
    shape[0] = 1 if is_open(shape[0]) else shape[0]
    return replace(spec, shape=tuple(shape))


def fit_preprocess(preprocess: Preprocess, spec: TensorSpec) -> Preprocess:
    """``preprocess`` with its size taken from the model input when unset, checked against it."""
    _, h, w, c = image_layout(spec)
    if preprocess.size is None:
        preprocess = replace(preprocess, size=(h, w))
    elif tuple(preprocess.size) != (h, w):
        raise ValueError(f"metadata preprocess size {tuple(preprocess.size)} does not match the model input "
                         f"'{spec.name}' {list(spec.shape)} (height {h}, width {w})")
    if (c == 1) != (preprocess.color == "gray"):
        raise ValueError(f"metadata colour {preprocess.color!r} does not fit the {c}-channel model input '{spec.name}'")
    return preprocess


class PixelCodes(NamedTuple):
    """The quantized code of each uint8 pixel value, and the cheapest way to apply it."""

    table: np.ndarray  # [256, 1, channels], for cv2.LUT
    kind: str  # "same": code == value (uint8); "flip": code == value - 128 (int8); "shared": one
    #            table serves every channel; "per-channel": a table per channel

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The codes of ``pixels`` ([h, w, channels] uint8). "flip" works in place: pass an
        image of your own."""
        if self.kind == "same":
            return pixels
        if self.kind == "flip":
            return np.bitwise_xor(pixels, 0x80, out=pixels).view(np.int8)
        import cv2

        table = self.table[:, :, :1] if self.kind == "shared" else self.table  # a 1-channel table: half the cost
        return cv2.LUT(pixels, table).reshape(pixels.shape)  # LUT drops a single channel's axis


def pixel_codes(preprocess: Preprocess, model_input: TensorSpec, channels: int) -> PixelCodes:
    """The quantized code of each uint8 pixel value in each channel, as ``Model.run`` would
    quantize the normalized floats."""
    q = model_input.quantization
    return _pixel_codes(float(preprocess.scale), tuple(preprocess.mean), tuple(preprocess.std),
                        tuple(q.scales), tuple(q.zero_points), np.dtype(model_input.dtype).str, channels)


@lru_cache(maxsize=16)
def _pixel_codes(scale, mean, std, q_scales, q_zeros, dtype, channels) -> PixelCodes:
    from edge_runtime.tensors import Quantization

    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], channels, axis=1)  # [256, C]
    floats = Preprocess(scale=scale, mean=mean, std=std).normalize(values)
    codes = Quantization(q_scales, q_zeros).quantize(floats, np.dtype(dtype))
    codes = np.ascontiguousarray(codes.reshape(256, 1, channels))
    codes.flags.writeable = False  # shared by every call
    offset = codes.astype(np.int64) - np.arange(256)[:, None, None]  # code - pixel value
    if codes.dtype == np.uint8 and not offset.any():
        kind = "same"
    elif codes.dtype == np.int8 and (offset == -128).all():
        kind = "flip"
    elif (codes == codes[:, :, :1]).all():
        kind = "shared"
    else:
        kind = "per-channel"
    return PixelCodes(codes, kind)


def prepare(frame_bgr: np.ndarray, model_input: TensorSpec, preprocess: Preprocess) -> tuple[np.ndarray, ResizeGeometry]:
    """The input tensor (``[1, H, W, C]``, or ``[1, C, H, W]`` for NCHW models) and the
    :class:`ResizeGeometry` of ``frame_bgr`` (uint8 ``[h, w, 3]`` BGR as OpenCV reads it; gray
    ``[h, w]`` and BGRA frames are accepted too). The tensor is float32, except for a uint8 frame
    and a per-tensor int8/uint8 quantized input: then it holds the integer codes
    (``model_input.dtype``), for ``Model.run(x, raw_inputs=True)``."""
    import cv2

    frame = np.asarray(frame_bgr)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"a frame must be an [h, w, 3] BGR image, got shape {list(frame.shape)}")
    layout, _, _, _ = image_layout(model_input)
    preprocess = fit_preprocess(preprocess, model_input)
    geometry = preprocess.geometry(frame.shape[0], frame.shape[1])
    # INTER_LINEAR as YOLO and MediaPipe resize; INTER_AREA would be kinder to big shrinks but costs more.
    resized = cv2.resize(frame, (geometry.resized_w, geometry.resized_h), interpolation=cv2.INTER_LINEAR)
    if preprocess.resize == "letterbox":
        bottom = geometry.input_h - geometry.resized_h - int(geometry.pad_top)
        right = geometry.input_w - geometry.resized_w - int(geometry.pad_left)
        pad = float(preprocess.pad_value)
        resized = cv2.copyMakeBorder(resized, int(geometry.pad_top), bottom, int(geometry.pad_left), right,
                                     cv2.BORDER_CONSTANT, value=(pad, pad, pad))
    if preprocess.color == "rgb":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    elif preprocess.color == "gray":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[:, :, None]
    if (model_input.quantized and not model_input.quantization.per_axis and resized.dtype == np.uint8
            and np.dtype(model_input.dtype) in (np.dtype(np.int8), np.dtype(np.uint8))):
        # resized is this function's own image (cv2.resize returns a new one), so "flip" may work in place
        x = pixel_codes(preprocess, model_input, resized.shape[2]).apply(resized)[None]
    else:
        x = preprocess.normalize(resized)[None]
    if layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x, geometry


def quantized_pixels(spec: TensorSpec) -> Preprocess | None:
    """For a model without metadata whose input is quantized: the normalization that makes each
    integer code the raw pixel value (uint8: ``q = pixel``; int8: ``q = pixel - 128``), which is
    what TFLite's quantized detectors (SSD MobileNet, EfficientDet-Lite) expect. None for float inputs."""
    if not spec.quantized or spec.quantization.per_axis:
        return None
    scale, zero = spec.quantization.scale, spec.quantization.zero_point
    offset = 0 if np.dtype(spec.dtype) == np.uint8 else 128
    # real = scale * (q - zero) with q = pixel - offset  ->  pixel * scale - scale * (zero + offset)
    return Preprocess(kind="image", scale=scale, mean=(scale * (zero + offset),), std=(1.0,))

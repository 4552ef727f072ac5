"""MediaPipe's BlazeFace short-range face detector (``face_detection_short_range.tflite``).

The model predicts offsets from fixed anchors: ``regressors`` [1, 896, 16] (box centre x, y,
width, height, then 6 keypoints x, y: right eye, left eye, nose tip, mouth, right ear, left ear)
and ``classificators`` [1, 896, 1] (a logit per anchor). The anchors are generated exactly as
MediaPipe's ``SsdAnchorsCalculator`` does (mediapipe/calculators/tflite/ssd_anchors_calculator.cc)
with the options of mediapipe/modules/face_detection/face_detection_short_range.pbtxt, and
decoded as its ``TensorsToDetectionsCalculator`` does (``reverse_output_order``: x before y;
sigmoid of the logit clipped to +-100; offsets divided by x/y/w/h scale 128). The input is the
frame letterboxed (``keep_aspect_ratio``) to 128x128 in [-1, 1] with zero (black) borders, as
face_detection.pbtxt's ``ImageToTensorCalculator`` prepares it. MediaPipe then applies a
weighted NMS at 0.3; we use OpenCV's NMS at the same threshold and keep the best box.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from apps.camera.decoders import Decoder, DecoderError
from edge_runtime.metadata import Preprocess

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that its face detectors use."""

    input_size: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True
    min_score: float = 0.5  # the graph's min_score_thresh


SHORT_RANGE = SsdAnchorOptions(input_size=128, strides=(8, 16, 16, 16))
KNOWN = {896: SHORT_RANGE}  # anchor count -> options


def _scale(options: SsdAnchorOptions, index: int) -> float:
    n = len(options.strides)
    if n == 1:
        return (options.min_scale + options.max_scale) * 0.5
    return options.min_scale + (options.max_scale - options.min_scale) * index / (n - 1.0)


def ssd_anchors(options: SsdAnchorOptions) -> np.ndarray:
    """float32 [A, 4] anchors ``x_center, y_center, w, h`` as fractions of the input, in the
    order MediaPipe generates them (layers of equal stride merged, per cell all of their anchors)."""
    anchors = []
    layer = 0
    strides = options.strides
    while layer < len(strides):
        sizes = []  # (w, h) per anchor at one cell
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _scale(options, last)
            pairs = [(scale, ratio) for ratio in options.aspect_ratios]
            if options.interpolated_scale_aspect_ratio > 0.0:
                scale_next = 1.0 if last == len(strides) - 1 else _scale(options, last + 1)
                pairs.append((math.sqrt(scale * scale_next), options.interpolated_scale_aspect_ratio))
            sizes += [(s * math.sqrt(r), s / math.sqrt(r)) for s, r in pairs]
            last += 1
        cells = math.ceil(options.input_size / strides[layer])
        for y in range(cells):
            for x in range(cells):
                cx, cy = (x + options.anchor_offset) / cells, (y + options.anchor_offset) / cells
                for w, h in sizes:
                    anchors.append((cx, cy, 1.0, 1.0) if options.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(anchors, dtype=np.float32)


def _split(specs) -> tuple[str, str] | None:
    """(regressors, scores) output names when the shapes are BlazeFace's, else None."""
    if len(specs) != 2 or any(len(s) != 3 for _, s in specs):
        return None
    (n1, s1), (n2, s2) = specs
    if s1[1] != s2[1] or s1[1] not in KNOWN:
        return None
    if s1[2] == 16 and s2[2] == 1:
        return n1, n2
    if s2[2] == 16 and s1[2] == 1:
        return n2, n1
    return None


def matches(specs) -> bool:
    return _split(specs) is not None


class BlazeFaceDecoder(Decoder):
    name = "blazeface"
    default_score = SHORT_RANGE.min_score
    default_iou = 0.3  # face_detection.pbtxt: min_suppression_threshold

    def __init__(self, regressors: str, scores: str, options: SsdAnchorOptions, labels: Sequence[str] = ("face",)):
        super().__init__(labels)
        self.regressors_key, self.scores_key, self.options = regressors, scores, options
        self.anchors = ssd_anchors(options)

    @classmethod
    def for_outputs(cls, specs, labels: Sequence[str] = ("face",)) -> "BlazeFaceDecoder":
        split = _split(specs)
        if split is None:
            shapes = ", ".join(f"{n} {list(s)}" for n, s in specs)
            raise DecoderError(f"blazeface layout expects regressors [1, A, 16] and classificators [1, A, 1] with "
                               f"A in {sorted(KNOWN)} anchors (short range); the model has {shapes}")
        n = dict(specs)[split[0]][1]
        return cls(split[0], split[1], KNOWN[n], labels)

    def default_preprocess(self) -> Preprocess:
        return Preprocess(kind="image", color="rgb", scale=1 / 127.5, mean=(1.0,), resize="letterbox", pad_value=0.0)

    def __call__(self, outputs, geometry, score, iou):
        raw = np.asarray(outputs[self.regressors_key], dtype=np.float32).reshape(len(self.anchors), -1)
        logits = np.asarray(outputs[self.scores_key], dtype=np.float32).reshape(-1)
        scores = (1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))).astype(np.float32)
        rows = np.flatnonzero(scores >= score)
        raw, anchors, scores = raw[rows], self.anchors[rows], scores[rows]
        size = float(self.options.input_size)  # x_scale = y_scale = w_scale = h_scale
        centre = raw[:, 0:2] / size * anchors[:, 2:4] + anchors[:, 0:2]
        half = raw[:, 2:4] / size * anchors[:, 2:4] / 2
        input_px = np.array([geometry.input_w, geometry.input_h], dtype=np.float32)
        xyxy = np.concatenate([centre - half, centre + half], axis=1) * np.tile(input_px, 2)
        points = raw[:, 4:16].reshape(-1, 6, 2) / size * anchors[:, None, 2:4] + anchors[:, None, 0:2]
        return self._finish(xyxy, scores, np.zeros(len(rows), np.int64), geometry, iou, points * input_px)

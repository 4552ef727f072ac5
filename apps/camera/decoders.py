"""Model outputs -> :class:`Detections` for the detector layouts people actually have.

Each decoder is made once per model by :func:`make_decoder`, which picks the layout (by name,
from the model's metadata, or recognized from the output shapes) and finds which output is which
(by signature key or tensor name when the model has telling names, else by shape). A decoder is
then called per frame with the outputs by name, in any order, and the frame's
:class:`~edge_runtime.metadata.ResizeGeometry`; boxes come back in pixels of the original frame.

Layouts:
    edgepilot  ``boxes`` [1, N, 4] x1, y1, x2, y2 as fractions of the model input, ``scores``
               [1, N, C] independent sigmoid probabilities (see edge_runtime.metadata.DETECTOR_LAYOUT).
    yolo       one output: ``[1, 4+C, N]`` (YOLOv8 and later: cx, cy, w, h + class scores) or
               ``[1, N, 5+C]`` (YOLOv5: cx, cy, w, h, objectness + class scores); coordinates in
               input pixels, or fractions of the input (recognized per frame: all <= 2; Ultralytics'
               TFLite exports normalize). Or the end-to-end ``[1, M, 6]`` (``yolo-end2end``):
               x1, y1, x2, y2, score, class id per row, best first, NMS already done by the model
               (YOLOv10 and YOLO26, which are NMS-free, and any Ultralytics export with ``nms=True``;
               Ultralytics' metadata says so where the file has it). A ``[1, N, 6]`` output is a
               one-class YOLOv5 head when N is the number of YOLOv5 anchors for the model's input
               size (3 per cell at strides 8, 16, 32 (, 64)), end-to-end rows when N <= 1000,
               and otherwise an error asking for ``--decoder``.
    ssd        TFLite's ``TFLite_Detection_PostProcess`` (see :mod:`apps.camera.ssd`): boxes
               [1, M, 4] ymin, xmin, ymax, xmax as fractions of the input, classes [1, M], scores
               [1, M], count [1]; NMS is in the model. Classes and scores have the same shape;
               which is which comes from their names ('class' / 'score', or the tensor
               numbering of the TF1 and TF2 exports), and is checked on the first frame with
               detections: class ids are whole numbers, scores are not. A model whose names
               said it the other way round is read by values.
    blazeface  MediaPipe's anchor-based face detector (see :mod:`apps.camera.blazeface`).

NMS is OpenCV's (``cv2.dnn.NMSBoxesBatched``: per class), never hand-written.

Candidates: a live app wants one label per box, so by default each anchor offers its best class.
mAP evaluation (``multi_label=True``) lets each anchor offer every class above the score
threshold, as the reference evaluators do (Ultralytics' validation NMS, torchvision's and
MMDetection's post-processing): a box the model is unsure between two classes then still counts
for the right one, at its own lower score. Only layouts with a score per class use it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from apps.camera.detections import Detections
from edge_runtime.metadata import Preprocess, ResizeGeometry

from apps.camera.choices import DECODER_CHOICES, DECODERS  # noqa: F401  (re-exported)
MAX_CANDIDATES = 3000  # best-scoring boxes handed to NMS; keeps a frame full of low scores cheap
MAX_DETECTIONS = 300  # after NMS, as YOLO and COCO evaluation cap it
MAX_END2END_ROWS = 1000  # an end-to-end head's max_det (Ultralytics: 300); anchor heads have thousands

OutputSpecs = Sequence[tuple[str, Sequence[int]]]


class DecoderError(ValueError):
    """The outputs do not fit the layout asked for (or no layout fits them)."""


def image_size(geometry: ResizeGeometry) -> tuple[int, int]:
    """(height, width) of the original frame, recovered exactly from the resize geometry."""
    return round(geometry.resized_h / geometry.scale_y), round(geometry.resized_w / geometry.scale_x)


def nms(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by OpenCV's per-class NMS, best first, at most MAX_DETECTIONS."""
    import cv2

    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float32)
    keep = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), class_ids.astype(np.int32), 0.0, float(iou))
    return np.asarray(keep, dtype=np.int64).reshape(-1)[:MAX_DETECTIONS]


class Decoder:
    """Base class: ``decoder(outputs, geometry, score, iou) -> Detections``.

    ``default_score`` / ``default_iou`` are the thresholds used when neither the user nor the
    model's metadata sets them; ``default_preprocess`` is the input recipe for a model that
    carries no metadata (what the layout's origin uses)."""

    name = ""
    default_score = 0.25
    default_iou = 0.45
    classes: int | None = None  # how many classes the outputs hold, where their shapes say

    def __init__(self, labels: Sequence[str] = (), multi_label: bool = False):
        self.labels = tuple(labels)
        self.multi_label = multi_label

    def _candidates(self, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, score, class id) handed to NMS from a [N, C] score matrix."""
        return _every_class(scores, threshold) if self.multi_label else _best_class(scores, threshold)

    def __call__(self, outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry, score: float,
                 iou: float) -> Detections:
        raise NotImplementedError

    def default_preprocess(self) -> Preprocess:
        """RGB in [0, 1], letterboxed with YOLO's grey (Ultralytics' recipe)."""
        return Preprocess(kind="image", color="rgb", scale=1 / 255, resize="letterbox")

    def _labels(self, class_ids: np.ndarray) -> tuple[str | None, ...]:
        n = len(self.labels)
        return tuple(self.labels[c] if 0 <= c < n else None for c in class_ids.tolist())

    def _finish(self, boxes_input_px: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                geometry: ResizeGeometry, iou: float | None, keypoints_input_px: np.ndarray | None = None) -> Detections:
        """Input-pixel boxes -> NMS (unless ``iou`` is None) -> frame pixels, clipped to the frame."""
        size = image_size(geometry)
        if iou is not None:
            keep = nms(boxes_input_px, scores, class_ids, iou)
            boxes_input_px, scores, class_ids = boxes_input_px[keep], scores[keep], class_ids[keep]
            if keypoints_input_px is not None:
                keypoints_input_px = keypoints_input_px[keep]
        h, w = size
        xyxy = geometry.to_image(boxes_input_px).reshape(-1, 4)
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        keypoints = None
        if keypoints_input_px is not None:
            n, k = keypoints_input_px.shape[:2]
            flat = geometry.to_image(np.tile(keypoints_input_px.reshape(-1, 2), (1, 2)))[:, :2]
            keypoints = flat.reshape(n, k, 2)
        return Detections(xyxy, scores, class_ids, self._labels(class_ids), size, keypoints)


def _capped(rows: np.ndarray, values: np.ndarray, class_ids: np.ndarray):
    """The candidates as given, or the MAX_CANDIDATES best of them (OpenCV's NMS sorts by score
    itself, stably, so the order of those kept does not change what it keeps)."""
    if len(rows) > MAX_CANDIDATES:
        keep = np.argsort(-values, kind="stable")[:MAX_CANDIDATES]
        rows, values, class_ids = rows[keep], values[keep], class_ids[keep]
    return rows, values, class_ids


def _best_class(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows kept, their best score, their class id) for a [N, C] score matrix."""
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), class_ids]
    rows = np.flatnonzero(best >= threshold)
    return _capped(rows, best[rows], class_ids[rows])


def _every_class(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, score, class id) of every (anchor, class) pair scoring at least ``threshold``; a row
    appears once per class it offers."""
    rows, class_ids = np.nonzero(scores >= threshold)
    return _capped(rows, scores[rows, class_ids], class_ids)


def input_scale(geometry: ResizeGeometry) -> np.ndarray:
    return np.array([geometry.input_w, geometry.input_h, geometry.input_w, geometry.input_h], dtype=np.float32)


def _in_input_pixels(boxes: np.ndarray, geometry: ResizeGeometry) -> np.ndarray:
    """[N, 4] box coordinates in input pixels: as they are, or scaled up when every value is at most
    2, i.e. fractions of the input (some YOLO exports normalize, Ultralytics' TFLite ones among them)."""
    if len(boxes) and np.abs(boxes).max() <= 2.0:
        return boxes * input_scale(geometry)
    return boxes


def corners_ordered(xyxy: np.ndarray) -> np.ndarray:
    """[N, 4] boxes with x1 <= x2 and y1 <= y2 (a model may give either corner first)."""
    return np.concatenate([np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], axis=1)


class EdgepilotDecoder(Decoder):
    """edgepilot's detectors: ``boxes`` [1, N, 4] (fractions of the input) and ``scores`` [1, N, C]."""

    name = "edgepilot"

    def __init__(self, boxes_key: str, scores_key: str, labels: Sequence[str] = (), multi_label: bool = False):
        super().__init__(labels, multi_label)
        self.boxes_key, self.scores_key = boxes_key, scores_key

    def __call__(self, outputs, geometry, score, iou):
        boxes = np.asarray(outputs[self.boxes_key]).reshape(-1, 4)
        scores = np.asarray(outputs[self.scores_key])
        scores = scores.reshape(scores.shape[-2], scores.shape[-1])
        rows, best, class_ids = self._candidates(scores, score)
        xyxy = boxes[rows] * input_scale(geometry)
        xyxy = corners_ordered(xyxy)
        return self._finish(xyxy, best, class_ids, geometry, iou)


class YoloDecoder(Decoder):
    """Raw YOLO heads: v8+ ``[1, 4+C, N]`` (``objectness=False``) or v5 ``[1, N, 5+C]``."""

    name = "yolo"

    def __init__(self, key: str, objectness: bool, labels: Sequence[str] = (), multi_label: bool = False):
        super().__init__(labels, multi_label)
        self.key, self.objectness = key, objectness

    @property
    def variant(self) -> str:
        return "yolov5" if self.objectness else "yolov8"

    def __call__(self, outputs, geometry, score, iou):
        raw = np.asarray(outputs[self.key])
        rows_first = raw.reshape(raw.shape[-2], raw.shape[-1])
        pred = rows_first if self.objectness else rows_first.T  # [N, 4 + (1) + C]
        cls = pred[:, 5:] * pred[:, 4:5] if self.objectness else pred[:, 4:]
        rows, best, class_ids = self._candidates(cls, score)
        cxcywh = pred[rows, :4].astype(np.float32)
        cxcywh = _in_input_pixels(cxcywh, geometry)
        half = cxcywh[:, 2:] / 2
        xyxy = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
        return self._finish(xyxy, best, class_ids, geometry, iou)


class YoloEnd2EndDecoder(Decoder):
    """End-to-end YOLO ``[1, M, 6]``: x1, y1, x2, y2, score, class id per row; the model did NMS
    (or needs none: YOLOv10's and YOLO26's one-to-one heads), so ``iou`` is not used."""

    name = "yolo"
    variant = "yolo-end2end"

    def __init__(self, key: str, labels: Sequence[str] = ()):
        super().__init__(labels)
        self.key = key

    def __call__(self, outputs, geometry, score, iou):
        raw = np.asarray(outputs[self.key])
        rows = raw.reshape(raw.shape[-2], raw.shape[-1]).astype(np.float32)
        rows = rows[rows[:, 4] >= score]
        class_ids = np.rint(rows[:, 5])
        if len(rows) and (np.abs(rows[:, 5] - class_ids).max() > 0.01 or class_ids.min() < 0):
            raise DecoderError(f"yolo-end2end layout: column 5 of output {self.key} holds "
                               f"{rows[:, 5][:3].round(3).tolist()}..., not class ids; expected rows of x1, y1, x2, "
                               "y2, score, class id (for a one-class YOLOv5 head use --decoder yolov5)")
        xyxy = rows[:, :4]
        xyxy = corners_ordered(_in_input_pixels(xyxy, geometry))
        return self._finish(xyxy, rows[:, 4], class_ids.astype(np.int64), geometry, None)


# ----- choosing the layout and the outputs ---------------------------------------------------
def shapes_text(specs: OutputSpecs) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in specs)


def named_output(specs: OutputSpecs, *words: str) -> str | None:
    """The one output whose name contains any of ``words`` (case-insensitive), else None."""
    hits = [name for name, _ in specs if any(w in name.lower() for w in words)]
    return hits[0] if len(hits) == 1 else None


def _edgepilot(specs: OutputSpecs, labels, multi_label: bool = False) -> EdgepilotDecoder:
    names = {name for name, _ in specs}
    shapes = dict(specs)
    if {"boxes", "scores"} <= names:
        return _counted(EdgepilotDecoder("boxes", "scores", labels, multi_label), shapes["scores"][-1])
    three_d = [(n, tuple(s)) for n, s in specs if len(s) == 3]
    if len(specs) == 2 and len(three_d) == 2 and three_d[0][1][1] == three_d[1][1][1]:
        fours = [n for n, s in three_d if s[2] == 4]
        if len(fours) == 1:
            other = next(n for n, _ in three_d if n != fours[0])
            return _counted(EdgepilotDecoder(fours[0], other, labels, multi_label), shapes[other][-1])
        if len(fours) == 2:
            raise DecoderError(f"edgepilot layout: both outputs ({shapes_text(specs)}) end in 4, so boxes and 4-class "
                               "scores cannot be told apart by shape; name the outputs 'boxes' and 'scores'")
    raise DecoderError(f"edgepilot layout expects two outputs 'boxes' [1, N, 4] and 'scores' [1, N, C]; "
                       f"the model has {shapes_text(specs)}")


def yolov5_anchor_counts(input_size: tuple[int, int]) -> set[int]:
    """Rows of a YOLOv5 head for an input of (height, width): 3 anchors per cell at strides
    8, 16, 32 (P5 models) or 8, 16, 32, 64 (P6 models)."""
    h, w = input_size
    cells = [-(-h // s) * -(-w // s) for s in (8, 16, 32, 64)]
    return {3 * sum(cells[:3]), 3 * sum(cells)}


def _yolo(specs: OutputSpecs, labels, variant: str | None = None, multi_label: bool = False,
          input_size: tuple[int, int] | None = None) -> Decoder:
    if len(specs) != 1 or len(specs[0][1]) != 3:
        raise DecoderError(f"yolo layout expects one output [1, 4+C, N] (v8+), [1, N, 5+C] (v5) or [1, M, 6] "
                           f"(end-to-end); the model has {shapes_text(specs)}")
    name, (_, a, b) = specs[0][0], tuple(specs[0][1])
    if variant is None:  # anchors outnumber channels: the short axis holds the channels
        variant = "yolov8" if a < b else "yolov5"
        if b == 6 and (input_size is None or a not in yolov5_anchor_counts(input_size)):
            # not one class's YOLOv5 anchors: rows of x1, y1, x2, y2, score, class, at most max_det of them
            if a > MAX_END2END_ROWS:
                counts = sorted(yolov5_anchor_counts(input_size)) if input_size else "unknown"
                raise DecoderError(f"output {name} {list(specs[0][1])}: {a} rows of 6 are neither a one-class YOLOv5 "
                                   f"head (for this input: {counts} rows) nor end-to-end detections (at most "
                                   f"{MAX_END2END_ROWS}); choose --decoder yolov5 or yolo-end2end")
            variant = "yolo-end2end"
    if variant == "yolo-end2end":
        if b != 6:
            raise DecoderError(f"yolo-end2end layout expects one output [1, M, 6] (x1, y1, x2, y2, score, class "
                               f"id); the model has {shapes_text(specs)}")
        return YoloEnd2EndDecoder(name, labels)
    channels = a if variant == "yolov8" else b
    if channels < (5 if variant == "yolov8" else 6):
        raise DecoderError(f"{variant} layout: output {name} {list(specs[0][1])} has {channels} channels; "
                           f"expected {'4+C' if variant == 'yolov8' else '5+C'}")
    decoder = YoloDecoder(name, objectness=variant == "yolov5", labels=labels, multi_label=multi_label)
    return _counted(decoder, channels - (4 if variant == "yolov8" else 5))


def _counted(decoder: Decoder, classes: int) -> Decoder:
    decoder.classes = int(classes)
    return decoder


def recognize(specs: OutputSpecs) -> str:
    """The layout that the output shapes (and names) say, or a DecoderError listing them."""
    from apps.camera.blazeface import matches as is_blazeface

    shapes = [tuple(s) for _, s in specs]
    if len(specs) == 1 and len(shapes[0]) == 3:
        return "yolo"
    if len(specs) == 2 and is_blazeface(specs):
        return "blazeface"
    if len(specs) == 2 and all(len(s) == 3 for s in shapes) and shapes[0][1] == shapes[1][1] \
            and any(s[2] == 4 for s in shapes):
        return "edgepilot"
    if len(specs) == 4 and sum(1 for s in shapes if len(s) == 3 and s[-1] == 4) == 1:
        return "ssd"
    raise DecoderError(f"no known detector layout fits the outputs {shapes_text(specs)}; choose one with "
                       f"--decoder {'|'.join(DECODERS)} (see docs/camera.md for each layout)")


def make_decoder(name: str, output_specs: OutputSpecs, metadata: Any = None, multi_label: bool = False,
                 input_size: tuple[int, int] | None = None) -> Decoder:
    """The decoder ``name`` (``auto``: the metadata's ``extra["decoder"]``, else recognized from
    the shapes) for a model whose outputs are ``output_specs`` ``[(name or key, shape), ...]``.
    ``multi_label``: every class above the score threshold is a candidate (for mAP; see above);
    the ssd, blazeface and end-to-end YOLO layouts give one class per box already.
    ``input_size``: the model's (height, width), which tells a one-class YOLOv5 head from an
    end-to-end one (see above); None where the input size is open."""
    specs = [(str(n), tuple(int(d) for d in s)) for n, s in output_specs]
    labels = tuple(metadata.labels) if metadata is not None else ()
    if name == "auto":
        declared = (metadata.extra or {}).get("decoder") if metadata is not None else None
        name = declared or recognize(specs)
    variant = None
    if name in ("yolov5", "yolov8", "yolo-end2end"):
        name, variant = "yolo", name
    if name == "edgepilot":
        return _edgepilot(specs, labels, multi_label)
    if name == "yolo":
        return _yolo(specs, labels, variant, multi_label, input_size)
    if name == "ssd":
        from apps.camera.ssd import ssd_decoder

        return ssd_decoder(specs, labels)
    if name == "blazeface":
        from apps.camera.blazeface import BlazeFaceDecoder

        return BlazeFaceDecoder.for_outputs(specs, labels or ("face",))
    raise DecoderError(f"unknown decoder {name!r}; expected one of {', '.join(DECODER_CHOICES)}")

"""Accuracy figures for the two vision tasks, as the field reports them.

* Detection: COCO's mAP, computed by pycocotools' own ``COCOeval`` (bbox), not re-implemented:
  ``map50`` is AP at IoU 0.5, ``map50_95`` the mean over IoU 0.50:0.05:0.95, both with
  101-point interpolated precision, all object sizes, and at most 100 detections per image
  and class. Fractions in [0, 1], as COCO prints them.
* Classification: top-1 accuracy in percent, per-class accuracy and the confusion matrix.

    >>> m = detection_map(test_set, [(boxes_xyxy_px, scores, class_ids) for each image])
    >>> m.to_dict()   # {"task": "detection", "map50": 0.87, "map50_95": 0.61, "per_class": {...}, ...}
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge_runtime.deps import require
from train.detection_data import DetectionSet

MAX_DETECTIONS = 100  # per image and class, COCO's standard cut-off


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO mAP of a detector on one data set. ``per_class`` maps each class name to
    ``{"ap50", "ap50_95", "instances"}``; the APs are None for a class with no ground-truth
    box, which then does not count in the means (COCO's rule)."""

    map50: float
    map50_95: float
    per_class: dict[str, dict]
    images: int
    instances: int

    def to_dict(self) -> dict:
        return {"task": "detection", "map50": self.map50, "map50_95": self.map50_95,
                "per_class": {name: dict(values) for name, values in self.per_class.items()},
                "images": self.images, "instances": self.instances}


def _check_predictions(ground_truth: DetectionSet, predictions: Sequence) -> list[tuple[np.ndarray, ...]]:
    if len(predictions) != len(ground_truth):
        raise ValueError(f"predictions: got {len(predictions)} entries for the {len(ground_truth)} images of "
                         f"{ground_truth.source or 'the ground truth'}; expected one (boxes, scores, class_ids) "
                         f"per image")
    checked = []
    for i, entry in enumerate(predictions):
        where = f"predictions for image {i} ({ground_truth.images[i]})"
        try:
            boxes, scores, classes = entry
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a (boxes, scores, class_ids) tuple, "
                             f"got {type(entry).__name__}") from None
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4) if np.size(boxes) == 0 else np.asarray(boxes, np.float64)
        scores, classes = np.asarray(scores, np.float64).reshape(-1), np.asarray(classes).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(scores) != len(boxes) or len(classes) != len(boxes):
            raise ValueError(f"{where}: boxes {boxes.shape}, scores {scores.shape}, class_ids {classes.shape}; "
                             f"expected boxes [n, 4] (x1, y1, x2, y2 pixels) and n scores and class ids")
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise ValueError(f"{where}: boxes or scores hold NaN or infinity; expected finite numbers")
        if len(classes) and not (np.issubdtype(classes.dtype, np.integer) and 0 <= classes.min()
                                 and classes.max() < len(ground_truth.names)):
            raise ValueError(f"{where}: class ids {sorted(set(classes.tolist()))}; expected integers in "
                             f"0..{len(ground_truth.names) - 1} (the classes {ground_truth.names})")
        if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ValueError(f"{where}: a box has x2 < x1 or y2 < y1; expected x1, y1, x2, y2 corners")
        checked.append((boxes, scores, classes.astype(np.int64)))
    return checked


def detection_map(ground_truth: DetectionSet, predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  max_detections: int = MAX_DETECTIONS) -> DetectionMetrics:
    """COCO mAP of ``predictions`` (one ``(boxes [n, 4] x1 y1 x2 y2 in pixels of the original
    image, scores [n], class_ids [n])`` per image of ``ground_truth``, in its order).

    Crowd regions of a COCO set are passed to COCOeval as ``iscrowd`` (detections on them are
    ignored). pycocotools' progress prints are kept off stdout."""
    require("pycocotools", "computing COCO mAP")  # names the extra to install when it is missing
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    checked = _check_predictions(ground_truth, predictions)
    if ground_truth.num_boxes == 0:
        raise ValueError(f"{ground_truth.source or 'ground truth'} ({ground_truth.split or 'no split'}): holds no "
                         f"boxes, so mAP is undefined; evaluate on a split with objects")
    truth = ground_truth.to_coco()
    found = []
    for i, (boxes, scores, classes) in enumerate(checked):
        for (x1, y1, x2, y2), score, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
            found.append({"id": len(found) + 1, "image_id": i + 1, "category_id": c + 1, "score": score,
                          "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = truth
        # what COCO.loadRes builds for bbox results, made here so that no detections at all is allowed too
        dt.dataset = {"images": truth["images"], "categories": truth["categories"], "annotations": found}
        gt.createIndex()
        dt.createIndex()
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.params.maxDets = [1, 10, max_detections]
        evaluation.evaluate()
        evaluation.accumulate()
    # precision[T iou thresholds, R recall points, K classes, A area ranges, M max-dets]; area "all", maxDets last
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    counts = ground_truth.class_counts()
    per_class = {}
    for k, name in enumerate(ground_truth.names):
        p = precision[:, :, k]
        present = bool((p > -1).any())  # -1: no ground truth of this class
        per_class[name] = {"ap50": _fraction(p[0].mean()) if present else None,
                           "ap50_95": _fraction(p.mean()) if present else None, "instances": counts[name]}
    valid = precision[:, :, [k for k, name in enumerate(ground_truth.names) if per_class[name]["ap50"] is not None]]
    # the means over valid entries are exactly COCOeval.summarize()'s stats[1] and stats[0]
    return DetectionMetrics(_fraction(valid[0].mean()), _fraction(valid.mean()), per_class, len(ground_truth),
                            ground_truth.num_boxes)


def _fraction(mean: float) -> float:
    """pycocotools divides by (tp + fp + machine epsilon): rounding to 12 decimals takes that
    1e-16 artifact away, so a perfect detector reports 1.0 rather than 0.9999999999999999."""
    return round(float(mean), 12)


@dataclass(frozen=True)
class ClassificationMetrics:
    """Top-1 accuracy (percent) of a classifier. ``per_class`` maps each class name to
    ``{"accuracy": percent or None (no samples), "instances"}``; ``confusion[true][predicted]``
    counts samples."""

    top1: float
    per_class: dict[str, dict]
    confusion: tuple[tuple[int, ...], ...]
    images: int

    def to_dict(self) -> dict:
        return {"task": "classification", "top1": self.top1,
                "per_class": {name: dict(values) for name, values in self.per_class.items()},
                "confusion": [list(row) for row in self.confusion], "images": self.images}


def _class_ids(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        hint = "; for scores pass scores.argmax(axis=-1)" if arr.ndim == 2 else ""
        raise ValueError(f"{what}: expected a 1-D array of integer class ids, got {arr.dtype}{arr.shape}{hint}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{what}: class ids must be >= 0, got {int(arr.min())}")
    return arr.astype(np.int64)


def top1(predicted_class_ids, labels) -> float:
    """Percent of samples whose predicted class id equals the label."""
    predicted, truth = _class_ids(predicted_class_ids, "predicted class ids"), _class_ids(labels, "labels")
    if len(predicted) != len(truth) or len(truth) == 0:
        raise ValueError(f"top1: {len(predicted)} predictions for {len(truth)} labels; expected one per label, "
                         f"and at least one")
    return float(100.0 * np.mean(predicted == truth))


def classification_metrics(predicted_class_ids, labels, names: Sequence[str] = ()) -> ClassificationMetrics:
    """Top-1, per-class accuracy and the confusion matrix; classes are named by ``names``
    (their index as a string where ``names`` is empty)."""
    accuracy = top1(predicted_class_ids, labels)
    predicted, truth = _class_ids(predicted_class_ids, "predicted class ids"), _class_ids(labels, "labels")
    classes = len(names) if names else int(max(predicted.max(), truth.max())) + 1
    if max(predicted.max(), truth.max()) >= classes:
        raise ValueError(f"class id {int(max(predicted.max(), truth.max()))} is out of range for the {classes} "
                         f"class names {tuple(names)}")
    names = tuple(names) if names else tuple(str(i) for i in range(classes))
    confusion = np.bincount(truth * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    instances = confusion.sum(axis=1)
    per_class = {name: {"accuracy": float(100.0 * confusion[k, k] / instances[k]) if instances[k] else None,
                        "instances": int(instances[k])} for k, name in enumerate(names)}
    return ClassificationMetrics(accuracy, per_class, tuple(tuple(int(v) for v in row) for row in confusion),
                                 len(truth))

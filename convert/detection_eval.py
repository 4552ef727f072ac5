"""mAP in the report card when ``--eval`` is a detection set (YOLO data.yaml or COCO folder).

Each variant runs through the camera app's :class:`apps.camera.detector.Detector` (its decoder,
NMS and box mapping, so the card measures what the app will see); the float model's outputs come
from the SavedModel. Detections are kept down to score 0.001 after NMS at IoU 0.6, every class
a candidate, as COCO evaluation expects (see :mod:`train.evaluate`), and scored with pycocotools
against the boxes in original-image pixels.
"""
from __future__ import annotations

import numpy as np

from convert.data import Dataset
from edge_runtime.metadata import ModelMetadata


def variant_map(path: str, dataset: Dataset) -> dict:
    """{"map50", "map50_95"} of a .tflite / .onnx detector on ``dataset`` (already fitted inputs)."""
    from train.evaluate import evaluation_detector, ranked
    from train.metrics import detection_map

    detector = evaluation_detector(path)
    predictions = []
    for x, geometry in zip(dataset.x, dataset.geometries):
        predictions.append(ranked(detector.decode(detector.infer(x[None]), geometry)))
    metrics = detection_map(dataset.detections, predictions)
    return {"map50": metrics.map50, "map50_95": metrics.map50_95}


def reference_map(outputs: dict[str, np.ndarray], dataset: Dataset, metadata: ModelMetadata) -> dict:
    """The same figures for the float model's batched outputs, keyed by signature key."""
    from train.evaluate import detection_metrics_from_outputs

    metrics = detection_metrics_from_outputs(dataset.detections, outputs, dataset.geometries, metadata)
    return {"map50": metrics.map50, "map50_95": metrics.map50_95}

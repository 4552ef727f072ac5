"""Tiny ONNX detectors for the camera tests: each emits constant outputs in one layout (edgepilot,
YOLO v8 / v5, end-to-end YOLO) holding known boxes, so a test can check the decoded detections
in pixels of FRAME."""
from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.metadata import ModelMetadata, Preprocess

onnx = pytest.importorskip("onnx", reason="building the test models needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def constant_model(path, outputs: dict[str, np.ndarray], input_shape=(1, 64, 96, 3), metadata=None, props=None,
                   output_shapes=None):
    """An ONNX model whose outputs are the given constants (plus 0 x the input's mean, so the
    input is really read): a detector that always 'sees' the same boxes. ``output_shapes``
    declares other output shapes than the constants' (names for open dimensions)."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for i, (name, value) in enumerate(outputs.items()):
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"const{i}"))
        nodes.append(helper.make_node("Add", [f"const{i}", "nothing"], [name]))
        declared = (output_shapes or {}).get(name, value.shape)
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(declared)))
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                list(input_shape))], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None or props:
        helper.set_model_props(model, {**({"edgepilot": metadata.to_json()} if metadata is not None else {}),
                                       **(props or {})})
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def meta(resize="letterbox", decoder="edgepilot", labels=("person", "car", "dog"), size=(64, 96)):
    return ModelMetadata(task="detection", labels=labels,
                         preprocess=Preprocess(kind="image", size=size, color="rgb", scale=1 / 255, resize=resize),
                         thresholds={"score": 0.3, "iou": 0.5}, extra={"decoder": decoder})


FRAME = np.full((150, 400, 3), 90, np.uint8)  # h=150, w=400: letterboxed into 64x96 leaves bands top and bottom
# Boxes in pixels of FRAME, what the model should report after decoding.
TRUTH = np.array([[20, 10, 120, 140], [200, 30, 260, 90], [300, 100, 390, 148]], np.float64)
CLASSES = np.array([0, 1, 2])
SCORES = np.array([0.9, 0.8, 0.7])


def yolo_raw(normalized: bool, objectness: bool):
    """TRUTH boxes as YOLO predicts them (cx, cy, w, h in input pixels or fractions) among 40 anchors."""
    geometry = Preprocess(kind="image", size=(64, 96), resize="letterbox").geometry(*FRAME.shape[:2])
    b = geometry.to_input(TRUTH)
    cxcywh = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
    if normalized:
        cxcywh = cxcywh / [96, 64, 96, 64]
    rows = np.zeros((40, 4 + int(objectness) + 3))
    rows[:, :4] = cxcywh[0]  # background anchors: low scores
    rows[:, 4:] = 0.05
    for i, (box, c, s) in enumerate(zip(cxcywh, CLASSES, SCORES)):
        rows[5 * i, :4] = box
        rows[5 * i, 4:] = 0.01
        if objectness:
            rows[5 * i, 4] = s
            rows[5 * i, 5 + c] = 1.0
        else:
            rows[5 * i, 4 + c] = s
    return rows[None] if objectness else rows.T[None]


def end2end_rows(normalized: bool, rows: int = 300) -> np.ndarray:
    """TRUTH as an end-to-end YOLO head reports it: x1, y1, x2, y2, score, class per row, best
    first, then rows under any threshold (Ultralytics pads to max_det rows)."""
    geometry = Preprocess(kind="image", size=(64, 96), resize="letterbox").geometry(*FRAME.shape[:2])
    xyxy = geometry.to_input(TRUTH)
    if normalized:
        xyxy = xyxy / [96, 64, 96, 64]
    out = np.zeros((rows, 6))
    out[:3, :4], out[:3, 4], out[:3, 5] = xyxy, SCORES, CLASSES
    # a box overlapping the first, same class: the model already chose to keep it, so no NMS removes it
    out[3, :4], out[3, 4], out[3, 5] = xyxy[0] * 1.01, 0.6, 0
    out[4, :4], out[4, 4], out[4, 5] = xyxy[1], 0.1, 2  # under the threshold
    return out[None]

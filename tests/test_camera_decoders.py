"""Decoders of every layout, run through the real runtime on tiny models built here that emit
known boxes, and checked after decoding, in pixels of the original frame."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.decoders import DecoderError, make_decoder, recognize
from apps.camera.detector import Detector
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


def _edgepilot_outputs(resize, extra_rows=True):
    geometry = Preprocess(kind="image", size=(64, 96), resize=resize).geometry(*FRAME.shape[:2])
    fractions = geometry.to_input(TRUTH) / [96, 64, 96, 64]
    boxes, scores = list(fractions), []
    for c, s in zip(CLASSES, SCORES):
        row = np.full(3, 0.01)
        row[c] = s
        scores.append(row)
    if extra_rows:
        # a near-duplicate of box 0 with a lower score (removed by NMS), the same box as another
        # class (kept: NMS is per class), and a box under the score threshold (dropped)
        boxes += [fractions[0] + 0.004, fractions[0], fractions[1]]
        scores += [np.array([0.6, 0.01, 0.01]), np.array([0.01, 0.01, 0.5]), np.array([0.2, 0.1, 0.1])]
    return {"boxes": np.array(boxes)[None], "scores": np.array(scores)[None]}


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
def test_edgepilot_layout_maps_boxes_back_exactly(tmp_path, resize):
    path = constant_model(tmp_path / "det.onnx", _edgepilot_outputs(resize), metadata=meta(resize))
    det = Detector(path)
    assert (det.decoder_name, det.resize, det.preprocess_source) == ("edgepilot", resize, "metadata")
    assert (det.score, det.iou) == (0.3, 0.5)  # from the metadata
    dets = det.detect(FRAME)
    order = np.lexsort((dets.scores, dets.class_ids))
    got = dets[order]
    # boxes 0, 1, 2 and box 0 again as a dog; the near-duplicate person and the low score are gone
    assert got.class_ids.tolist() == [0, 1, 2, 2]
    assert got.labels == ("person", "car", "dog", "dog")
    np.testing.assert_allclose(got.xyxy, np.vstack([TRUTH[:1], TRUTH[1:2], TRUTH[0:1], TRUTH[2:3]]), atol=2e-3)
    assert dets.image_size == (150, 400)
    row = dets.to_dicts()[0]
    assert set(row) == {"label", "class_id", "score", "box"} and len(row["box"]) == 4


@pytest.mark.parametrize("layout", ["edgepilot", "yolov8"])
def test_multi_label_offers_every_class_above_the_score_for_evaluation(tmp_path, layout):
    """One box the model is unsure about (0.55 car, 0.45 dog) and one sure box: the live default
    reports the unsure box once, as its best class; multi_label (mAP evaluation) reports it
    for both classes, each at its own score, and the sure box once."""
    geometry = Preprocess(kind="image", size=(64, 96), resize="letterbox").geometry(*FRAME.shape[:2])
    fractions = geometry.to_input(TRUTH[:2]) / [96, 64, 96, 64]
    scores = np.array([[0.01, 0.55, 0.45], [0.9, 0.2, 0.01]])
    if layout == "edgepilot":
        outputs = {"boxes": fractions[None], "scores": scores[None]}
    else:
        cxcywh = np.concatenate([(fractions[:, :2] + fractions[:, 2:]) / 2, fractions[:, 2:] - fractions[:, :2]], 1)
        outputs = {"output0": np.concatenate([cxcywh, scores], axis=1).T[None]}  # [1, 4+C, N]
    path = constant_model(tmp_path / "det.onnx", outputs, metadata=meta(decoder=layout))
    live = Detector(path, score=0.3).detect(FRAME)
    def found(d):
        return sorted((c, round(float(s), 2)) for c, s in zip(d.class_ids.tolist(), d.scores))

    assert found(live) == [(0, 0.9), (1, 0.55)]
    evaluation = Detector(path, score=0.3, multi_label=True)
    assert evaluation.describe()["multi_label"] is True
    dets = evaluation.detect(FRAME)
    assert dets.scores.tolist() == sorted(dets.scores.tolist(), reverse=True)
    assert found(dets) == [(0, 0.9), (1, 0.55), (2, 0.45)]
    unsure = dets.xyxy[dets.class_ids != 0]
    np.testing.assert_allclose(unsure, np.vstack([TRUTH[:1], TRUTH[:1]]), atol=2e-3)  # the same box, twice


def test_edgepilot_layout_by_shape_when_outputs_are_unnamed(tmp_path):
    outputs = _edgepilot_outputs("letterbox", extra_rows=False)
    path = constant_model(tmp_path / "det.onnx", {"Identity_1": outputs["scores"], "Identity": outputs["boxes"]},
                          metadata=meta())
    dets = Detector(path).detect(FRAME)
    np.testing.assert_allclose(dets.xyxy[np.argsort(-dets.scores)], TRUTH, atol=2e-3)


def test_edgepilot_layout_with_four_classes_needs_names():
    with pytest.raises(DecoderError, match="name the outputs 'boxes' and 'scores'"):
        make_decoder("edgepilot", [("a", (1, 10, 4)), ("b", (1, 10, 4))], None)


def _yolo_raw(normalized: bool, objectness: bool):
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


@pytest.mark.parametrize("normalized", [False, True], ids=["pixels", "fractions"])
@pytest.mark.parametrize("objectness", [False, True], ids=["v8", "v5"])
def test_yolo_layouts(tmp_path, normalized, objectness):
    raw = _yolo_raw(normalized, objectness)
    path = constant_model(tmp_path / "yolo.onnx", {"output0": raw}, metadata=meta(decoder="yolo"))
    det = Detector(path, decoder="auto", score=0.25)
    assert det.decoder_name == ("yolov5" if objectness else "yolov8")
    dets = det.detect(FRAME)
    assert len(dets) == 3
    i = np.argsort(-dets.scores)
    np.testing.assert_allclose(dets.xyxy[i], TRUTH, atol=2e-3)
    np.testing.assert_allclose(dets.scores[i], SCORES, atol=1e-6)
    assert dets.class_ids[i].tolist() == CLASSES.tolist()


def test_yolo_without_metadata_on_an_nchw_input(tmp_path):
    """No metadata: YOLO's own recipe (letterbox, RGB / 255) and labels left empty (null)."""
    path = constant_model(tmp_path / "yolo.onnx", {"output0": _yolo_raw(False, False)}, input_shape=(1, 3, 64, 96))
    det = Detector(path)
    assert (det.decoder_name, det.resize, det.preprocess_source) == ("yolov8", "letterbox", "default for yolo")
    dets = det.detect(FRAME)
    np.testing.assert_allclose(dets.xyxy[np.argsort(-dets.scores)], TRUTH, atol=2e-3)
    assert dets.labels == (None, None, None)


@pytest.mark.parametrize("names", [
    ("TFLite_Detection_PostProcess", "TFLite_Detection_PostProcess:1", "TFLite_Detection_PostProcess:2",
     "TFLite_Detection_PostProcess:3"),  # TF1 object detection export
    ("detection_boxes", "detection_classes", "detection_scores", "num_detections"),  # TF2 signature keys
    # a TF2 object detection model converted to TFLite: :0 count, :1 scores, :2 classes, :3 boxes
    ("StatefulPartitionedCall:3", "StatefulPartitionedCall:2", "StatefulPartitionedCall:1",
     "StatefulPartitionedCall:0"),
    ("a", "c", "b", "d"),  # names that say nothing: the first guess (b = classes) is wrong, the values tell
], ids=["tf1", "tf2", "tf2-tflite-tensors", "unnamed"])
def test_ssd_postprocessed_layout(tmp_path, names):
    geometry = Preprocess(kind="image", size=(64, 96), resize="stretch").geometry(*FRAME.shape[:2])
    yxyx = (geometry.to_input(TRUTH) / [96, 64, 96, 64])[:, [1, 0, 3, 2]]
    boxes = np.zeros((10, 4))
    boxes[:3] = yxyx
    classes, scores = np.zeros(10), np.zeros(10)
    classes[:4], scores[:4] = [0, 1, 2, 1], [0.9, 0.8, 0.7, 0.3]  # the 4th is under the threshold
    outputs = dict(zip(names, [boxes[None], classes[None], scores[None], np.array([4.0])]))
    # TF2 exports list them in another order; the decoder finds each by name
    order = [2, 0, 3, 1] if names[0] == "detection_boxes" else [0, 1, 2, 3]
    path = constant_model(tmp_path / "ssd.onnx", {names[i]: outputs[names[i]] for i in order},
                          metadata=meta(resize="stretch", decoder="ssd", labels=("person", "bicycle", "car")))
    det = Detector(path)
    assert det.decoder_name == "ssd" and det.score == 0.3
    det = Detector(path, score=0.5)
    if names[0] != "a":  # the names alone pick the right outputs, before any value is seen
        assert not det.decoder.settled and det.decoder.keys == names
    dets = det.detect(FRAME)
    np.testing.assert_allclose(dets.xyxy, TRUTH, atol=2e-3)
    assert dets.labels == ("person", "bicycle", "car")
    np.testing.assert_allclose(dets.scores, [0.9, 0.8, 0.7], atol=1e-6)
    assert det.decoder.settled and det.decoder.keys[1:3] == (names[1], names[2])
    # settled once: a later frame whose scores happen to be whole numbers changes nothing
    later = det.decoder({names[0]: boxes[None], names[1]: classes[None], names[2]: np.ones((1, 10)),
                         names[3]: np.array([2.0])}, geometry, 0.5, None)
    assert later.class_ids.tolist() == [0, 1]


def _end2end_rows(normalized: bool, rows: int = 300) -> np.ndarray:
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


@pytest.mark.parametrize("normalized", [False, True], ids=["pixels", "fractions"])
def test_yolo_end2end_layout_yolov10_yolo26_and_nms_exports(tmp_path, normalized):
    path = constant_model(tmp_path / "yolo26.onnx", {"output0": _end2end_rows(normalized)})
    det = Detector(path, score=0.25, iou=0.1)
    assert det.decoder_name == "yolo-end2end" and det.preprocess_source == "default for yolo"
    dets = det.detect(FRAME)
    assert len(dets) == 4  # the overlapping box stays: the model did the NMS
    np.testing.assert_allclose(dets.xyxy[:3], TRUTH, atol=2e-3)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8, 0.7, 0.6], atol=1e-6)
    assert dets.class_ids.tolist() == [0, 1, 2, 0]


def test_one_class_yolov5_is_told_from_end2end_by_the_anchor_count():
    """[1, N, 6] is a one-class YOLOv5 head when N = 3 anchors x the cells at strides 8/16/32
    (64x96 input: 96 + 24 + 6 cells -> 378 rows), else end-to-end rows."""
    assert make_decoder("auto", [("out", (1, 378, 6))], input_size=(64, 96)).variant == "yolov5"
    assert make_decoder("auto", [("out", (1, 25200, 6))], input_size=(640, 640)).variant == "yolov5"
    assert make_decoder("auto", [("out", (1, 300, 6))], input_size=(64, 96)).variant == "yolo-end2end"
    assert make_decoder("auto", [("out", (1, 300, 6))]).variant == "yolo-end2end"
    assert make_decoder("yolov5", [("out", (1, 300, 6))], input_size=(64, 96)).variant == "yolov5"
    with pytest.raises(DecoderError, match=r"yolo-end2end layout expects one output \[1, M, 6\]"):
        make_decoder("yolo-end2end", [("out", (1, 84, 8400))])
    # one anchor per cell (YOLOX-like, 8400 rows): neither; the user is asked rather than guessed for
    with pytest.raises(DecoderError, match=r"output out \[1, 8400, 6\]: 8400 rows of 6 .*--decoder yolov5 or yolo-end2end"):
        make_decoder("auto", [("out", (1, 8400, 6))], input_size=(640, 640))
    assert make_decoder("auto", [("out", (1, 5, 6))], input_size=(64, 96)).variant == "yolo-end2end"  # max_det 5
    assert make_decoder("auto", [("out", (1, 6, 8400))], input_size=(640, 640)).variant == "yolov8"  # 2 classes


def test_end2end_rows_without_class_ids_are_an_error_naming_the_output(tmp_path):
    rows = _end2end_rows(False)
    rows[0, :3, 5] = [0.37, 0.52, 0.91]  # class probabilities, not ids: not this layout
    path = constant_model(tmp_path / "not_e2e.onnx", {"output0": rows})
    det = Detector(path, decoder="yolo-end2end")
    with pytest.raises(DecoderError) as info:
        det.detect(FRAME)
    message = str(info.value)
    assert str(path) in message and "output0" in message and "--decoder yolov5" in message and "\n" not in message


ULTRALYTICS_PROPS = {"author": "Ultralytics", "task": "detect", "stride": "32", "batch": "1", "imgsz": "[64, 96]",
                     "names": "{0: 'person', 1: 'car', 2: 'dog'}"}


def test_ultralytics_onnx_export_labels_boxes_from_its_metadata(tmp_path):
    """An Ultralytics ONNX export stores names and task as str() of Python values in metadata_props."""
    path = constant_model(tmp_path / "yolo11n.onnx", {"output0": _yolo_raw(False, False)}, input_shape=(1, 3, 64, 96),
                          props=ULTRALYTICS_PROPS)
    det = Detector(path)
    assert (det.decoder_name, det.labels, det.preprocess_source) == ("yolov8", ("person", "car", "dog"),
                                                                     "ultralytics metadata")
    assert det.resize == "letterbox" and det.preprocess.scale == 1 / 255 and det.preprocess.color == "rgb"
    dets = det.detect(FRAME)
    assert sorted(dets.labels) == ["car", "dog", "person"]


@pytest.mark.parametrize("props", [{"end2end": "True"}, {"args": "{'batch': 1, 'nms': True, 'imgsz': [64, 96]}"}],
                         ids=["end2end", "nms-export"])
def test_ultralytics_metadata_says_end_to_end(tmp_path, props):
    path = constant_model(tmp_path / "yolo26n.onnx", {"output0": _end2end_rows(False, rows=378)},
                          props={**ULTRALYTICS_PROPS, **props})  # 378 rows: YOLOv5's count for 64x96, yet end-to-end
    det = Detector(path)
    assert det.decoder_name == "yolo-end2end" and det.labels == ("person", "car", "dog")
    assert det.detect(FRAME).labels == ("person", "car", "dog", "person")


def test_dynamic_ultralytics_export_takes_its_size_from_imgsz(tmp_path):
    """``export(dynamic=True)`` leaves batch, height, width and the anchor count open; the input
    size is then Ultralytics' imgsz, and the output shapes those of a run at that size."""
    path = constant_model(tmp_path / "yolo11n_dynamic.onnx", {"output0": _yolo_raw(False, False)},
                          input_shape=("batch", 3, "height", "width"), props=ULTRALYTICS_PROPS,
                          output_shapes={"output0": ("batch", 7, "anchors")})
    det = Detector(path)
    assert det.input_size == (64, 96) and det.decoder_name == "yolov8" and det.labels == ("person", "car", "dog")
    dets = det.detect(FRAME)
    i = np.argsort(-dets.scores)
    np.testing.assert_allclose(dets.xyxy[i], TRUTH, atol=2e-3)
    assert [dets.labels[j] for j in i] == ["person", "car", "dog"]  # CLASSES 0, 1, 2 in score order
    # without a size anywhere, a one-line error names the input and what would fix it
    bare = constant_model(tmp_path / "bare_dynamic.onnx", {"output0": _yolo_raw(False, False)},
                          input_shape=("batch", 3, "height", "width"), output_shapes={"output0": ("batch", 7, "anchors")})
    with pytest.raises(ValueError, match=r"bare_dynamic.onnx: model input 'image' has shape \[-1, 3, -1, -1\].*imgsz"):
        Detector(bare)


@pytest.mark.parametrize("imgsz", ["[64, 96]", "64"], ids=["list", "int"])
def test_dynamic_nhwc_input_sized_by_metadata(tmp_path, imgsz):
    """A dynamic NHWC input (the layout TFLite files use) takes its size from edgepilot's
    preprocess size, or from Ultralytics' imgsz, a list or one number for a square."""
    dims = (-1, -1, -1, 3)
    ours = constant_model(tmp_path / "ours.onnx", {"output0": _yolo_raw(False, False)}, input_shape=("n", "h", "w", 3),
                          metadata=meta(decoder="yolo", size=(64, 96)))
    det = Detector(ours)
    assert det.model.inputs[0].shape == dims and det.input.shape == (1, 64, 96, 3)
    np.testing.assert_allclose(np.sort(det.detect(FRAME).xyxy, axis=0), np.sort(TRUTH, axis=0), atol=2e-3)
    theirs = constant_model(tmp_path / "theirs.onnx", {"output0": _yolo_raw(False, False)}, input_shape=("n", "h", "w", 3),
                            props={**ULTRALYTICS_PROPS, "imgsz": imgsz})
    assert Detector(theirs).input_size == ((64, 96) if imgsz.startswith("[") else (64, 64))


def test_fixed_models_ignore_imgsz_and_are_never_probed(tmp_path, monkeypatch):
    """A fixed input keeps its own size whatever imgsz says; outputs whose only open dimension
    is the batch are read as batch 1 without running the model."""
    import edge_runtime

    path = constant_model(tmp_path / "fixed.onnx", {"output0": _yolo_raw(False, False)}, input_shape=(1, 3, 64, 96),
                          props={**ULTRALYTICS_PROPS, "imgsz": "[640, 640]"}, output_shapes={"output0": ("batch", 7, 40)})
    model = edge_runtime.load(path, device="cpu")

    def no_run(*args, **kwargs):
        raise AssertionError("the model was run while loading")

    monkeypatch.setattr(model, "run", no_run)
    det = Detector(model)
    assert det.input_size == (64, 96) and det.decoder_name == "yolov8" and det.decoder.classes == 3


def test_yolov5_repository_onnx_names_without_a_task(tmp_path):
    """The yolov5 repository's export.py stores stride and names (a list or a dict), no task."""
    raw = _yolo_raw(False, True)
    path = constant_model(tmp_path / "yolov5s.onnx", {"output0": raw},
                          props={"stride": "32", "names": "['person', 'car', 'dog']"})
    det = Detector(path)
    assert det.decoder_name == "yolov5" and det.labels == ("person", "car", "dog")


def test_an_ultralytics_pose_model_is_refused_naming_its_task(tmp_path):
    """YOLOv8-pose's [1, 56, N] would otherwise read as a 52-class detector."""
    raw = np.zeros((1, 56, 40))
    path = constant_model(tmp_path / "yolo11n-pose.onnx", {"output0": raw}, props={**ULTRALYTICS_PROPS, "task": "pose"})
    with pytest.raises(ValueError, match=r"yolo11n-pose.onnx: an Ultralytics pose model \(keypoints"):
        Detector(path)


@pytest.mark.parametrize("names", ["{0: __import__('os').getcwd()}", "{1: 'car'}", "not a dict", "{0: 7}"])
def test_malformed_ultralytics_names_are_ignored_never_run(tmp_path, names):
    path = constant_model(tmp_path / "odd.onnx", {"output0": _yolo_raw(False, False)},
                          props={**ULTRALYTICS_PROPS, "names": names})
    det = Detector(path)
    assert det.labels == () and det.preprocess_source == "default for yolo"


def test_ultralytics_tflite_metadata_in_an_appended_zip(tmp_path, asset):
    """Ultralytics appends a zip holding metadata.json to each .tflite; the interpreter ignores it."""
    import io
    import json
    import zipfile

    import edge_runtime
    from apps.camera.exporter_metadata import ultralytics_metadata

    path = tmp_path / "face_yolo.tflite"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"task": "detect", "names": {"0": "face"}, "imgsz": [128, 128]}))
    path.write_bytes(asset("blazeface_short_range.tflite").read_bytes() + archive.getvalue())
    meta_read = ultralytics_metadata(edge_runtime.load(path, device="cpu"))
    assert meta_read.labels == ("face",) and meta_read.preprocess.resize == "letterbox"
    det = Detector(path, decoder="blazeface", device="cpu")
    assert det.labels == ("face",) and det.preprocess_source == "ultralytics metadata"
    det.detect(FRAME)  # the file with its archive still runs
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(asset("blazeface_short_range.tflite").read_bytes())
    assert ultralytics_metadata(edge_runtime.load(plain, device="cpu")) is None
    # a damaged archive (a deflated member cut short and overwritten) is no metadata, not a crash
    damaged = tmp_path / "damaged.tflite"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"task": "detect", "names": {str(i): f"c{i}" for i in range(200)}}))
    data = bytearray(archive.getvalue())
    data[50:130] = bytes(80)  # inside the compressed stream (after the 43-byte local header): zlib.error
    damaged.write_bytes(plain.read_bytes() + bytes(data))
    assert ultralytics_metadata(edge_runtime.load(damaged, device="cpu")) is None


@pytest.mark.parametrize("specs, layout", [
    ([("out", (1, 84, 8400))], "yolo"),
    ([("out", (1, 25200, 85))], "yolo"),
    ([("boxes", (1, 500, 4)), ("scores", (1, 500, 3))], "edgepilot"),
    ([("regressors", (1, 896, 16)), ("classificators", (1, 896, 1))], "blazeface"),
    ([("a", (1, 10, 4)), ("b", (1, 10)), ("c", (1, 10)), ("d", (1,))], "ssd"),
])
def test_auto_recognizes_each_layout_by_shape(specs, layout):
    assert recognize(specs) == layout


def test_unknown_layout_is_a_one_line_error_naming_the_outputs():
    with pytest.raises(DecoderError) as info:
        recognize([("logits", (1, 1000))])
    assert "logits [1, 1000]" in str(info.value) and "--decoder" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_edgepilot_layout_in_int8_tflite_from_keras_uses_signature_keys(tmp_path):
    """A TFLite detector as `edgepilot convert` makes it from Keras: tensors named
    StatefulPartitionedCall:N, signature keys 'boxes'/'scores', int8 in and out."""
    tf = pytest.importorskip("tensorflow")
    outputs = _edgepilot_outputs("letterbox", extra_rows=False)

    class Constant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 64, 96, 3], tf.float32)])
        def serve(self, image):
            # relu(constant + 0 x the input's mean) [1, 1, 1]: computed, so quantized (not folded into a constant)
            zero = tf.reduce_mean(image, axis=[1, 2, 3])[:, None, None] * 0.0
            return {"scores": tf.nn.relu(tf.constant(outputs["scores"], tf.float32) + zero),
                    "boxes": tf.nn.relu(tf.constant(outputs["boxes"], tf.float32) + zero)}

    module = Constant()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.random.default_rng(0).uniform(0, 1, (1, 64, 96, 3))
                                                  .astype(np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path / "det_int8.tflite"
    path.write_bytes(converter.convert())
    (tmp_path / "det_int8.json").write_text('{"edgepilot": ' + meta().to_json() + "}")
    det = Detector(path)
    assert det.decoder_name == "edgepilot" and all(o.quantized for o in det.model.outputs)
    dets = det.detect(FRAME)
    assert dets.class_ids[np.argsort(-dets.scores)].tolist() == [0, 1, 2]
    # int8 steps of 1/256 of the input width (96 px -> 150/64 frame px per input px): within 2 px
    np.testing.assert_allclose(dets.xyxy[np.argsort(-dets.scores)], TRUTH, atol=2.0)


def test_eval_compares_an_ultralytics_exports_classes_with_the_data_set(tmp_path):
    """`edgepilot eval` on a file without an edgepilot sidecar reads the export's own class names."""
    from test_detection_data import yolo_set  # cat, dog, emu

    from train.evaluate import evaluate

    data = yolo_set(tmp_path / "set")
    renamed = constant_model(tmp_path / "renamed.onnx", {"output0": _yolo_raw(False, False)}, props=ULTRALYTICS_PROPS)
    result = evaluate(renamed, str(data), split="test")
    assert result["label_mismatch"] == {"model": ["person", "car", "dog"], "data": ["cat", "dog", "emu"]}
    two = constant_model(tmp_path / "two.onnx", {"output0": _yolo_raw(False, False)},
                         props={**ULTRALYTICS_PROPS, "names": "{0: 'cat', 1: 'dog'}"})
    with pytest.raises(ValueError, match=r"two.onnx: the model has 2 classes \(cat, dog\) but .* names 3"):
        evaluate(two, str(data), split="test")

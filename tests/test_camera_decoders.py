"""Decoders of every layout, run through the real runtime on tiny models that emit known boxes
(tests/camera_models.py), and checked after decoding, in pixels of the original frame. Other
exporters' metadata (Ultralytics) is in test_camera_exporter_metadata.py."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.decoders import DecoderError, make_decoder, recognize
from apps.camera.detector import Detector
from camera_models import CLASSES, FRAME, SCORES, TRUTH, constant_model, end2end_rows, meta, yolo_raw
from edge_runtime.metadata import Preprocess


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


@pytest.mark.parametrize("normalized", [False, True], ids=["pixels", "fractions"])
@pytest.mark.parametrize("objectness", [False, True], ids=["v8", "v5"])
def test_yolo_layouts(tmp_path, normalized, objectness):
    raw = yolo_raw(normalized, objectness)
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
    path = constant_model(tmp_path / "yolo.onnx", {"output0": yolo_raw(False, False)}, input_shape=(1, 3, 64, 96))
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


@pytest.mark.parametrize("normalized", [False, True], ids=["pixels", "fractions"])
def test_yolo_end2end_layout_yolov10_yolo26_and_nms_exports(tmp_path, normalized):
    path = constant_model(tmp_path / "yolo26.onnx", {"output0": end2end_rows(normalized)})
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
    rows = end2end_rows(False)
    rows[0, :3, 5] = [0.37, 0.52, 0.91]  # class probabilities, not ids: not this layout
    path = constant_model(tmp_path / "not_e2e.onnx", {"output0": rows})
    det = Detector(path, decoder="yolo-end2end")
    with pytest.raises(DecoderError) as info:
        det.detect(FRAME)
    message = str(info.value)
    assert str(path) in message and "output0" in message and "--decoder yolov5" in message and "\n" not in message


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

"""Other exporters' metadata read by the camera app: Ultralytics' ONNX metadata_props and the zip
it appends to a .tflite (class names, task, imgsz, end-to-end heads, dynamic sizes), on tiny
models from tests/camera_models.py run through the real runtime; malformed metadata is ignored,
never run."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.detector import Detector
from camera_models import FRAME, TRUTH, constant_model, end2end_rows, meta, yolo_raw


ULTRALYTICS_PROPS = {"author": "Ultralytics", "task": "detect", "stride": "32", "batch": "1", "imgsz": "[64, 96]",
                     "names": "{0: 'person', 1: 'car', 2: 'dog'}"}


def test_ultralytics_onnx_export_labels_boxes_from_its_metadata(tmp_path):
    """An Ultralytics ONNX export stores names and task as str() of Python values in metadata_props."""
    path = constant_model(tmp_path / "yolo11n.onnx", {"output0": yolo_raw(False, False)}, input_shape=(1, 3, 64, 96),
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
    path = constant_model(tmp_path / "yolo26n.onnx", {"output0": end2end_rows(False, rows=378)},
                          props={**ULTRALYTICS_PROPS, **props})  # 378 rows: YOLOv5's count for 64x96, yet end-to-end
    det = Detector(path)
    assert det.decoder_name == "yolo-end2end" and det.labels == ("person", "car", "dog")
    assert det.detect(FRAME).labels == ("person", "car", "dog", "person")


def test_dynamic_ultralytics_export_takes_its_size_from_imgsz(tmp_path):
    """``export(dynamic=True)`` leaves batch, height, width and the anchor count open; the input
    size is then Ultralytics' imgsz, and the output shapes those of a run at that size."""
    path = constant_model(tmp_path / "yolo11n_dynamic.onnx", {"output0": yolo_raw(False, False)},
                          input_shape=("batch", 3, "height", "width"), props=ULTRALYTICS_PROPS,
                          output_shapes={"output0": ("batch", 7, "anchors")})
    det = Detector(path)
    assert det.input_size == (64, 96) and det.decoder_name == "yolov8" and det.labels == ("person", "car", "dog")
    dets = det.detect(FRAME)
    i = np.argsort(-dets.scores)
    np.testing.assert_allclose(dets.xyxy[i], TRUTH, atol=2e-3)
    assert [dets.labels[j] for j in i] == ["person", "car", "dog"]  # CLASSES 0, 1, 2 in score order
    # without a size anywhere, a one-line error names the input and what would fix it
    bare = constant_model(tmp_path / "bare_dynamic.onnx", {"output0": yolo_raw(False, False)},
                          input_shape=("batch", 3, "height", "width"), output_shapes={"output0": ("batch", 7, "anchors")})
    with pytest.raises(ValueError, match=r"bare_dynamic.onnx: model input 'image' has shape \[-1, 3, -1, -1\].*imgsz"):
        Detector(bare)


@pytest.mark.parametrize("imgsz", ["[64, 96]", "64"], ids=["list", "int"])
def test_dynamic_nhwc_input_sized_by_metadata(tmp_path, imgsz):
    """A dynamic NHWC input (the layout TFLite files use) takes its size from edgepilot's
    preprocess size, or from Ultralytics' imgsz, a list or one number for a square."""
    dims = (-1, -1, -1, 3)
    ours = constant_model(tmp_path / "ours.onnx", {"output0": yolo_raw(False, False)}, input_shape=("n", "h", "w", 3),
                          metadata=meta(decoder="yolo", size=(64, 96)))
    det = Detector(ours)
    assert det.model.inputs[0].shape == dims and det.input.shape == (1, 64, 96, 3)
    np.testing.assert_allclose(np.sort(det.detect(FRAME).xyxy, axis=0), np.sort(TRUTH, axis=0), atol=2e-3)
    theirs = constant_model(tmp_path / "theirs.onnx", {"output0": yolo_raw(False, False)}, input_shape=("n", "h", "w", 3),
                            props={**ULTRALYTICS_PROPS, "imgsz": imgsz})
    assert Detector(theirs).input_size == ((64, 96) if imgsz.startswith("[") else (64, 64))


def test_fixed_models_ignore_imgsz_and_are_never_probed(tmp_path, monkeypatch):
    """A fixed input keeps its own size whatever imgsz says; outputs whose only open dimension
    is the batch are read as batch 1 without running the model."""
    import edge_runtime

    path = constant_model(tmp_path / "fixed.onnx", {"output0": yolo_raw(False, False)}, input_shape=(1, 3, 64, 96),
                          props={**ULTRALYTICS_PROPS, "imgsz": "[640, 640]"}, output_shapes={"output0": ("batch", 7, 40)})
    model = edge_runtime.load(path, device="cpu")

    def no_run(*args, **kwargs):
        raise AssertionError("the model was run while loading")

    monkeypatch.setattr(model, "run", no_run)
    det = Detector(model)
    assert det.input_size == (64, 96) and det.decoder_name == "yolov8" and det.decoder.classes == 3


def test_yolov5_repository_onnx_names_without_a_task(tmp_path):
    """The yolov5 repository's export.py stores stride and names (a list or a dict), no task."""
    raw = yolo_raw(False, True)
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
    path = constant_model(tmp_path / "odd.onnx", {"output0": yolo_raw(False, False)},
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


def test_eval_compares_an_ultralytics_exports_classes_with_the_data_set(tmp_path):
    """`edgepilot eval` on a file without an edgepilot sidecar reads the export's own class names."""
    from test_detection_data import yolo_set  # cat, dog, emu

    from train.evaluate import evaluate

    data = yolo_set(tmp_path / "set")
    renamed = constant_model(tmp_path / "renamed.onnx", {"output0": yolo_raw(False, False)}, props=ULTRALYTICS_PROPS)
    result = evaluate(renamed, str(data), split="test")
    assert result["label_mismatch"] == {"model": ["person", "car", "dog"], "data": ["cat", "dog", "emu"]}
    two = constant_model(tmp_path / "two.onnx", {"output0": yolo_raw(False, False)},
                         props={**ULTRALYTICS_PROPS, "names": "{0: 'cat', 1: 'dog'}"})
    with pytest.raises(ValueError, match=r"two.onnx: the model has 2 classes \(cat, dog\) but .* names 3"):
        evaluate(two, str(data), split="test")

"""Label files (`edgepilot detect --labels FILE`): the formats in use, the mistakes that would
shift every id, and the names reaching the detections of a real model run."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from apps.camera.labels import LabelFileError, read_labels


def write(tmp_path, text, name="labels.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, names", [
    ("person\nbicycle\ncar\n\n\n", ("person", "bicycle", "car")),  # coco.names; blank lines at the end
    ("???\nperson\nbicycle\n???\ncar\n", ("person", "bicycle", None, "car")),  # TF labelmap.txt: background, unused id
    ("0  person\n2  car\n1  bicycle\n", ("person", "bicycle", "car")),  # pycoral coco_labels.txt, any order
    ("0: person\n3: dog\n", ("person", None, None, "dog")),  # a gap: that id has no name
    ("\ufeff7up can\r\nsoda\r\n", ("7up can", "soda")),  # a BOM, CRLF; a name starting with digits is a name
    ("0,person\n1, car\n2:dog\n", ("person", "car", "dog")),
    ("# COCO subset\n\n0 person\n\n1 car\n", ("person", "car")),  # a header; blank lines between id lines
    ("0 1 cent\n1 5 cent\n", ("1 cent", "5 cent")),  # names that start with a number, numbered
    ("5 ???\n0 person\n6 ???\n", ("person", None, None, None, None, None, None)),
])
def test_formats(tmp_path, text, names):
    assert read_labels(write(tmp_path, text)) == names


@pytest.mark.parametrize("text, message", [
    ("person\n\ncar\n", r"line 2 is empty; .*shift every id"),
    ("0 person\n0 people\n", r"line 2 gives class id 0 a second time"),
    ("1 cent\n5 cent\n10 cent\n", r"line 2 gives the name 'cent' a second time; .*'0 1 cent'"),
    ("\n\n", r"no class names"),
    ("???\n", r"no class names \(only the \?\?\? background line\)"),
    ("0 person\n1 car\nbicycle\n3 dog\n", r"line 3 is not 'ID NAME' like the other lines"),
])
def test_mistakes_are_one_line_errors_naming_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(LabelFileError, match=message) as info:
        read_labels(path)
    assert str(info.value).startswith(f"--labels {path}:") and "\n" not in str(info.value)


def test_binary_or_missing_file(tmp_path):
    binary = tmp_path / "model.tflite"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(LabelFileError, match="cannot be read as UTF-8 text"):
        read_labels(binary)
    with pytest.raises(LabelFileError, match="missing.txt: no such file"):
        read_labels(tmp_path / "missing.txt")


def test_labels_replace_the_models_own_and_must_match_its_class_count(tmp_path):
    from camera_models import CLASSES, FRAME, constant_model, meta, yolo_raw

    from apps.camera.detector import Detector

    path = constant_model(tmp_path / "yolo.onnx", {"output0": yolo_raw(False, False)},
                          metadata=meta(decoder="yolo", labels=("a", "b", "c")))
    det = Detector(path, labels=write(tmp_path, "cat\ndog\nbird\n"))
    dets = det.detect(FRAME)
    assert det.labels == ("cat", "dog", "bird")
    assert sorted(zip(dets.class_ids.tolist(), dets.labels)) == [(c, ("cat", "dog", "bird")[c]) for c in CLASSES]
    wrong = write(tmp_path, "cat\ndog\n", "two.txt")
    with pytest.raises(LabelFileError, match=re.escape(f"--labels {wrong}: 2 class names, but {path} has 3 classes")):
        Detector(path, labels=wrong)
    background = write(tmp_path, "???\ncat\ndog\n", "labelmap.txt")  # 3 lines, 2 names: the count says why
    with pytest.raises(LabelFileError, match=re.escape("2 class names (its leading ??? line, TF1 SSD's background")):
        Detector(path, labels=background)
    with pytest.raises(LabelFileError, match=re.escape(f"labels: 4 class names, but {path} has 3 classes")):
        Detector(path, labels=["a", "b", "c", "d"])
    assert Detector(path, labels=["x", "y", "z"]).labels == ("x", "y", "z")


def test_tf_labelmap_on_an_ssd_model_skips_the_background_line(tmp_path):
    """TF1 SSD post-processing numbers classes from 0 without the background that labelmap.txt
    lists first as ???: class 0 is the file's second line."""
    from camera_models import FRAME, constant_model

    from apps.camera.detector import Detector

    boxes = np.zeros((1, 10, 4))
    boxes[0, :2] = [[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]]
    classes, scores = np.zeros((1, 10)), np.zeros((1, 10))
    classes[0, :2], scores[0, :2] = [0, 2], [0.9, 0.8]
    path = constant_model(tmp_path / "detect.onnx", {
        "TFLite_Detection_PostProcess": boxes, "TFLite_Detection_PostProcess:1": classes,
        "TFLite_Detection_PostProcess:2": scores, "TFLite_Detection_PostProcess:3": np.array([2.0])})
    det = Detector(path, decoder="ssd", labels=write(tmp_path, "???\nperson\nbicycle\ncar\n"))
    assert det.decoder.classes is None  # the SSD outputs do not say how many classes there are
    assert det.detect(FRAME).labels == ("person", "car")


def test_cli_labels_option(tmp_path, asset, capsys):
    import cv2
    from skimage import data

    from edgepilot.cli import main

    image = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    model = str(asset("blazeface_short_range.tflite"))
    assert main(["detect", model, "--source", str(image), "--json", "--quiet", "--labels",
                 str(write(tmp_path, "0: visage\n"))]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["label"] for d in rows[0]["detections"]] == ["visage"]
    assert rows[-1]["summary"]["detections"] == {"visage": 1}
    assert main(["detect", model, "--source", str(image), "--labels", str(tmp_path / "none.txt")]) == 1
    err = capsys.readouterr().err
    assert f"--labels {tmp_path / 'none.txt'}: no such file" in err


def test_a_label_file_packed_into_a_tflite_names_its_classes(tmp_path, asset):
    """TFLite metadata (Task Library, Model Maker) packs labelmap.txt into a zip appended to the
    model; with no other names, the detector uses it. A malformed one is ignored, never fatal."""
    import io
    import zipfile

    from apps.camera.detector import Detector

    def packed(name, member, text):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(member, text)
        path = tmp_path / name
        path.write_bytes(asset("blazeface_short_range.tflite").read_bytes() + archive.getvalue())
        return path

    det = Detector(packed("named.tflite", "labelmap.txt", "???\nvisage\n"), device="cpu")
    assert det.labels == ("visage",) and det.metadata.extra["labels_from"] == "labelmap.txt"
    assert Detector(packed("bad.tflite", "labels.txt", "0 a\n0 b\n"), device="cpu").labels == ("face",)
    assert Detector(packed("other.tflite", "vocab.txt", "visage\n"), device="cpu").labels == ("face",)


def test_packed_labels_the_outputs_contradict_are_ignored(tmp_path, monkeypatch):
    """A packed list with another count than the outputs' classes is not this model's: ignored,
    as malformed metadata is. --labels given by the user replaces it and drops its source."""
    from camera_models import constant_model, yolo_raw

    import apps.camera.detector as detector_module
    from apps.camera.detector import Detector
    from edge_runtime.metadata import ModelMetadata

    path = constant_model(tmp_path / "yolo.onnx", {"output0": yolo_raw(False, False)}, input_shape=(1, 3, 64, 96))
    packed = {"list": ("a", "b")}
    monkeypatch.setattr(detector_module, "packed_labels", lambda model: ModelMetadata(
        task="detection", labels=packed["list"], extra={"labels_from": "labelmap.txt"}))
    det = Detector(path)
    assert det.labels == () and det.metadata is None and det.decoder.classes == 3
    packed["list"] = ("a", "b", "c")
    assert Detector(path).labels == ("a", "b", "c")
    mine = Detector(path, labels=["x", "y", "z"])
    assert mine.labels == ("x", "y", "z") and "labels_from" not in mine.metadata.extra


def test_eval_names_an_id_without_a_name_as_question_marks(tmp_path):
    from train.evaluate import _label_mismatch
    from edge_runtime.metadata import ModelMetadata

    with pytest.raises(ValueError, match=r"the model has 3 classes \(person, \?\?\?, car\) but data.yaml names 2"):
        _label_mismatch(tmp_path / "m.tflite", ModelMetadata(labels=("person", None, "car")), ("person", "car"),
                        "data.yaml")

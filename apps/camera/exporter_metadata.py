"""What other projects' exporters store in a detector file, read as edgepilot's own metadata.

Ultralytics (YOLOv5u, v8, 11, YOLO26 ... exported with ``model.export(format=...)``) writes
the class names and the task (and the input size, stride, ...) into every file it exports:

* ONNX: ``metadata_props``, each value the ``str()`` of a Python value, e.g.
  ``names = "{0: 'person', 1: 'bicycle'}"``, ``imgsz = "[640, 640]"``, ``task = "detect"``;
* TFLite: a zip archive appended to the flatbuffer, holding ``metadata.json`` with the same keys
  (the flatbuffer itself ignores what follows it; :mod:`zipfile` finds an archive at a file's end).

The yolov5 repository's own ONNX exports store ``names`` and ``stride`` the same way, without a
task. TFLite files made with TFLite metadata (the Task Library, Model Maker, MediaPipe's model
makers) pack their label file into the same kind of appended zip (``labelmap.txt``); its names
are read as ``--labels`` reads a file (:func:`packed_labels`). An end-to-end export (``end2end``: YOLOv10, YOLO26; or ``nms`` among the export ``args``)
is read with the ``yolo-end2end`` decoder.

Without these a user's ``yolo11n.onnx`` would report ``label: null`` for every box. With them
the camera app labels boxes ``person``, and ``edgepilot eval`` can compare the model's classes
with a data set's. The input recipe is Ultralytics' own: RGB, divided by 255, letterboxed with
grey to the model input's size.

Values are parsed with :func:`ast.literal_eval` (Python literals only, never code) or JSON, and
anything malformed is ignored as if absent: such a file still runs, with the layout recognized
from its output shapes and boxes unlabelled. Only detection models (``task: detect``) are read;
a pose, oriented-box, segmentation or classification export is refused with its task named, since
its output would otherwise be mistaken for a detector's.
"""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path
from typing import Any

from apps.camera.preprocess import is_open
from edge_runtime.metadata import ModelMetadata, Preprocess

ULTRALYTICS_KEYS = ("names", "task", "stride", "end2end", "args", "imgsz")
# tasks whose single output looks like a detector's but holds more than boxes and class scores
OTHER_TASKS = {"pose": "keypoints after the class scores", "obb": "rotated boxes: an angle after the class scores",
               "segment": "mask coefficients and a second output of prototypes", "classify": "one class per image"}
MAX_ARCHIVE_BYTES = 1 << 20  # the metadata file is a few KB; never read a large member


def _literal(value: Any) -> Any:
    """A Python or JSON literal from its text; the value itself when it is not text; None when
    it is neither."""
    if not isinstance(value, (str, bytes)):
        return value
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def _appended_archive(path: str | Path) -> dict[str, Any]:
    """The first JSON / literal dict in a zip archive appended to ``path`` (Ultralytics' TFLite
    metadata), or {} when there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist()[:4]:
                if info.file_size <= MAX_ARCHIVE_BYTES:
                    value = _literal(archive.read(info))
                    if isinstance(value, dict):
                        return value
    except Exception:  # noqa: BLE001 - any damage (bad zip, zlib / lzma errors): no metadata, as documented
        return {}
    return {}


def _names(value: Any) -> tuple[str, ...] | None:
    """Class names in id order from ``{0: 'person', ...}`` (keys may be text, as in JSON) or a
    list; None unless the ids are exactly 0..n-1 and every name is text."""
    if isinstance(value, (list, tuple)):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        return None
    try:
        by_id = {int(k): v for k, v in value.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_id) != list(range(len(by_id))) or not all(isinstance(v, str) for v in by_id.values()):
        return None
    return tuple(by_id[i] for i in range(len(by_id)))


def ultralytics_metadata(model) -> ModelMetadata | None:
    """edgepilot metadata for an Ultralytics detection export (``model``: an
    :class:`edge_runtime.Model`), or None when the file carries no Ultralytics metadata."""
    raw: dict[str, Any] = {k: model.metadata[k] for k in ULTRALYTICS_KEYS if k in model.metadata}
    if not raw and str(model.path).lower().endswith(".tflite"):
        raw = _appended_archive(model.path)
    # task is plain text ("detect"); the yolov5 repository's own exports have names and stride but no task
    task = raw.get("task", "detect" if "stride" in raw else None)
    names = _names(_literal(raw.get("names")))
    if task in OTHER_TASKS and names is not None:
        raise ValueError(f"{model.path}: an Ultralytics {task} model ({OTHER_TASKS[task]}); edgepilot's detectors "
                         "read detection models (Ultralytics task 'detect')")
    if task != "detect" or names is None:
        return None
    # the size is the model input's own; Ultralytics' imgsz gives it where the export left it open
    # (dynamic=True), and is not used otherwise (it says the same, or nothing usable)
    size = _imgsz(_literal(raw.get("imgsz"))) if _open_size(model) else None
    preprocess = Preprocess(kind="image", color="rgb", scale=1 / 255, resize="letterbox", size=size)
    return ModelMetadata(task="detection", labels=names, preprocess=preprocess,
                         extra={"decoder": "yolo-end2end" if _end_to_end(raw) else "yolo", "metadata_from": "ultralytics"})


def packed_labels(model) -> ModelMetadata | None:
    """Class names from a label file packed into a ``.tflite`` (TFLite metadata's associated
    files, as the TFLite Task Library, Model Maker and MediaPipe's model makers write them: a zip
    appended to the flatbuffer, holding e.g. ``labelmap.txt``), read as ``--labels`` reads a file;
    None without exactly one such ``*label*.txt`` member, or when it does not read as one."""
    from apps.camera.labels import parse_labels

    if not str(model.path).lower().endswith(".tflite"):
        return None
    try:
        with zipfile.ZipFile(model.path) as archive:
            members = [info for info in archive.infolist()
                       if "label" in info.filename.lower() and info.filename.lower().endswith(".txt")]
            if len(members) != 1 or members[0].file_size > MAX_ARCHIVE_BYTES:
                return None
            text = archive.read(members[0]).decode("utf-8")
        labels = parse_labels(text, f"{model.path}: {members[0].filename}")
    except Exception:  # noqa: BLE001 - a malformed list (LabelFileError) or a damaged archive: no labels,
        return None  # as for Ultralytics' metadata
    return ModelMetadata(task="detection", labels=labels, extra={"labels_from": members[0].filename})


def _open_size(model) -> bool:
    """Whether the model's image input leaves its height or width open (a dynamic export)."""
    inputs = getattr(model, "inputs", ())
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
    return len(shape) == 4 and any(is_open(d) for d in shape[1:])


def _imgsz(value) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` (``[h, w]`` or one number for a square) as (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in value)):
        return int(value[0]), int(value[1])
    return None


def _end_to_end(raw: dict[str, Any]) -> bool:
    """Whether the export says its output is end-to-end rows (``end2end``: YOLOv10, YOLO26; or
    ``args["nms"]``: exported with NMS in the model), as Ultralytics' own loader reads it. Where
    neither is said, the layout is recognized by its shape."""
    args = _literal(raw.get("args"))
    flags = [_literal(raw.get("end2end")), args.get("nms") if isinstance(args, dict) else None]
    return any(flag is True for flag in flags)  # "True" in ONNX props is parsed to True by _literal

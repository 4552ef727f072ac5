"""Object-detection data sets in the two layouts users already have, read into one type.

* **YOLO** (Ultralytics' layout): a ``data.yaml`` with ``path`` (the root; relative to the
  yaml's folder, or that folder when absent), ``train`` / ``val`` / ``test`` (each a folder of
  images such as ``images/train``, a ``.txt`` list of image paths, or a list of those) and
  ``names`` (a list, or an ``{id: name}`` mapping). The labels of ``.../images/<split>/x.jpg``
  are in ``.../labels/<split>/x.txt`` (Ultralytics' rule: the last ``/images/`` becomes
  ``/labels/``, the suffix ``.txt``), one ``class cx cy w h`` line per object, normalized to
  [0, 1]; a segmentation set's ``class x1 y1 x2 y2 x3 y3 ...`` polygon lines are read as their
  tight boxes, as Ultralytics reads them for detection. An image without a label file, or with
  an empty one, is a background image.
* **COCO** (COCO's own layout): a folder with ``annotations/instances_<split>.json`` and the
  images in ``<split>/`` (``instances_val2017.json`` -> ``val2017/``; CVAT's and Datumaro's
  exports: ``images/<split>/`` or ``images/``), or Roboflow's COCO export:
  ``<split>/_annotations.coco.json`` beside the images. Categories become class ids 0..C-1 in
  sorted category-id order, leaving out a category that only groups the others (the
  ``supercategory`` of every other category, used by no annotation: Roboflow's id 0). ``iscrowd`` regions are kept apart from the boxes
  (they are not objects to learn) and go back into :meth:`DetectionSet.to_coco` as crowd
  regions, so mAP treats them as COCO's own evaluation does.

Nothing is dropped silently: a malformed line, an unknown class, a box outside its image, a
missing image or a label file without an image raises :class:`DetectionDataError` naming the
file and line (YOLO) or the annotation id (COCO), and how many more problems there are.

    >>> ds = load_detection_set("shapes/data.yaml", split="train")
    >>> ds.names, len(ds), ds.num_boxes, ds.background_images
    >>> rgb = ds.read_image(0); ds.boxes[0]   # x1, y1, x2, y2 in pixels of that image

:func:`fit_image` fits an image to a model input with a :class:`~edge_runtime.metadata.Preprocess`
recipe (stretch or letterbox); training, calibration and evaluation all use it, so the pixels a
model sees are the same everywhere. OpenCV decodes images; YAML is read with ``safe_load`` only.
The readers live in :mod:`train.detection_readers`; :func:`write_yolo_split` and
:func:`write_data_yaml` write YOLO sets (tests, the scene maker).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge_runtime.deps import require
from edge_runtime.metadata import Preprocess, ResizeGeometry

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
YAML_NAMES = ("data.yaml", "data.yml")
# Splits load_detection_set picks when none is named (evaluation: held-out data first).
EVALUATION_SPLITS = ("test", "val")


class DetectionDataError(ValueError):
    """A detection data set that is malformed: the message names the file and line (or the
    annotation id), what was expected and what arrived."""


@dataclass(frozen=True)
class DetectionSet:
    """Images with their boxes, one entry per image, in a fixed order.

    ``boxes[i]`` is float32 ``[n, 4]`` (x1, y1, x2, y2 in pixels of image ``i``, whose
    ``sizes[i]`` is (height, width)); ``classes[i]`` int64 ``[n]`` indexes ``names``.
    ``crowd_boxes`` / ``crowd_classes`` hold COCO ``iscrowd`` regions per image (empty tuples
    when the set has none): never training targets, but regions where a detection is not
    counted as a false positive."""

    names: tuple[str, ...]
    images: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]
    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]
    source: str = ""
    split: str = ""
    format: str = "yolo"  # "yolo" or "coco"
    crowd_boxes: tuple[np.ndarray, ...] = ()
    crowd_classes: tuple[np.ndarray, ...] = ()

    def __post_init__(self):
        n = len(self.images)
        where = f"detection set {self.source or '(unnamed)'}"
        lengths = {"sizes": len(self.sizes), "boxes": len(self.boxes), "classes": len(self.classes)}
        if self.crowd_boxes or self.crowd_classes:
            lengths.update(crowd_boxes=len(self.crowd_boxes), crowd_classes=len(self.crowd_classes))
        wrong = {k: v for k, v in lengths.items() if v != n}
        if wrong:
            raise DetectionDataError(f"{where}: {n} images but {wrong}; expected one entry per image")
        for kind, all_boxes, all_classes in (("boxes", self.boxes, self.classes),
                                             ("crowd boxes", self.crowd_boxes, self.crowd_classes)):
            for i, (b, c) in enumerate(zip(all_boxes, all_classes)):
                if b.dtype != np.float32 or b.shape[1:] != (4,) or c.dtype != np.int64 or c.shape != (len(b),):
                    raise DetectionDataError(f"{where}: image {i} has {kind} {b.dtype}{b.shape} and classes "
                                             f"{c.dtype}{c.shape}; expected float32 [n, 4] and int64 [n]")
                if len(c) and not 0 <= c.min() <= c.max() < len(self.names):
                    raise DetectionDataError(f"{where}: image {i} has {kind} of class {c.max()}; expected class "
                                             f"ids 0..{len(self.names) - 1} of names {self.names}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        """Objects in the set (crowd regions not counted)."""
        return sum(len(b) for b in self.boxes)

    @property
    def background_images(self) -> int:
        """Images with no object (no label file, an empty one, or no COCO annotation)."""
        return sum(len(b) == 0 for b in self.boxes)

    @property
    def crowd_regions(self) -> int:
        """COCO ``iscrowd`` regions in the set (kept apart from the boxes)."""
        return sum(len(b) for b in self.crowd_boxes)

    def class_counts(self) -> dict[str, int]:
        """Objects per class name, in class order (0 for a class with none)."""
        counts = np.bincount(np.concatenate(self.classes or (np.zeros(0, np.int64),)), minlength=len(self.names))
        return {name: int(count) for name, count in zip(self.names, counts)}

    def subset(self, indices: Iterable[int]) -> "DetectionSet":
        """The images at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        pick = (lambda seq: tuple(seq[i] for i in idx))
        crowd = bool(self.crowd_boxes)
        return DetectionSet(self.names, pick(self.images), pick(self.sizes), pick(self.boxes), pick(self.classes),
                            self.source, self.split, self.format,
                            pick(self.crowd_boxes) if crowd else (), pick(self.crowd_classes) if crowd else ())

    def to_coco(self) -> dict:
        """The set as a COCO ground-truth dict (``images``, ``annotations``, ``categories``).

        Ids start at 1 everywhere: image ``i`` has id ``i + 1``, class ``c`` category id
        ``c + 1``. pycocotools records a match as the matched annotation's id, so an id of 0
        would read as "no match". Crowd regions are annotations with ``iscrowd: 1``."""
        images = [{"id": i + 1, "height": h, "width": w, "file_name": str(p)}
                  for i, (p, (h, w)) in enumerate(zip(self.images, self.sizes))]
        annotations = []
        crowd_boxes = self.crowd_boxes or ((),) * len(self)
        crowd_classes = self.crowd_classes or ((),) * len(self)
        for i in range(len(self)):
            for boxes, classes, crowd in ((self.boxes[i], self.classes[i], 0),
                                          (crowd_boxes[i], crowd_classes[i], 1)):
                for (x1, y1, x2, y2), c in zip(np.asarray(boxes, np.float64).reshape(-1, 4).tolist(), classes):
                    w, h = x2 - x1, y2 - y1
                    annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                        "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": crowd})
        categories = [{"id": c + 1, "name": name} for c, name in enumerate(self.names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def read_image(self, i: int) -> np.ndarray:
        """Image ``i`` as RGB uint8 ``[height, width, 3]``, decoded with OpenCV (EXIF
        orientation applied, as the boxes assume)."""
        cv2 = require("cv2", "reading detection images")
        path = self.images[i]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DetectionDataError(f"{path}: cannot decode the image (missing or not an image OpenCV reads); "
                                     f"expected one of {', '.join(IMAGE_SUFFIXES)}")
        if bgr.shape[:2] != tuple(self.sizes[i]):
            raise DetectionDataError(f"{path}: the image is {bgr.shape[0]}x{bgr.shape[1]} (height x width) but the "
                                     f"data set says {self.sizes[i][0]}x{self.sizes[i][1]}; fix the annotation")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def fit_pixels(rgb: np.ndarray, preprocess: Preprocess) -> tuple[np.ndarray, ResizeGeometry]:
    """``rgb`` (uint8 ``[h, w, 3]``) fitted to the model input but not yet normalized: uint8
    ``[H, W, C]`` and its geometry (what training stores once and augments every epoch).

    The one place images meet a model: ``preprocess.geometry(h, w)`` says where the image lands
    (``stretch`` fills the input; ``letterbox`` keeps the aspect ratio, centred), OpenCV resizes
    it bilinearly (``INTER_LINEAR``) onto a canvas of ``pad_value`` (rounded to a whole pixel
    value), and ``color`` orders the channels (``gray``: one channel, OpenCV's luma). Map boxes
    between image and input with ``geometry.to_input`` / ``to_image``."""
    cv2 = require("cv2", "fitting images to a model input")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"fit_image expects an RGB uint8 image [height, width, 3], got {rgb.dtype}{rgb.shape}")
    geo = preprocess.geometry(rgb.shape[0], rgb.shape[1])
    resized = cv2.resize(rgb, (geo.resized_w, geo.resized_h), interpolation=cv2.INTER_LINEAR)
    if preprocess.color == "gray":
        resized = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)[..., None]
    elif preprocess.color == "bgr":
        resized = resized[..., ::-1]
    pad = int(np.clip(round(preprocess.pad_value), 0, 255))
    canvas = np.full((geo.input_h, geo.input_w, resized.shape[2]), pad, np.uint8)
    top, left = int(geo.pad_top), int(geo.pad_left)
    canvas[top:top + geo.resized_h, left:left + geo.resized_w] = resized
    return canvas, geo


def fit_image(rgb: np.ndarray, preprocess: Preprocess) -> tuple[np.ndarray, ResizeGeometry]:
    """``rgb`` (uint8 ``[h, w, 3]``) as a model input: float32 ``[H, W, C]`` (:func:`fit_pixels`,
    then ``preprocess.normalize``, padding included) and its geometry."""
    pixels, geo = fit_pixels(rgb, preprocess)
    return preprocess.normalize(pixels), geo


# ---------------------------------------------------------------------------------------------
# finding and loading


_LAYOUTS = ("a YOLO data.yaml (or a folder holding one) or a COCO folder with annotations/instances_<split>.json "
            "(or Roboflow's <split>/_annotations.coco.json)")


def detection_format(data: str | os.PathLike) -> str | None:
    """"yolo" for a ``.yaml``/``.yml`` file or a folder holding ``data.yaml``, "coco" for a folder
    with ``annotations/instances_*.json`` or Roboflow's ``*/_annotations.coco.json``, None for
    anything else."""
    path = Path(data)
    if path.is_file():
        return "yolo" if path.suffix.lower() in (".yaml", ".yml") else None
    if path.is_dir():
        if any((path / name).is_file() for name in YAML_NAMES):
            return "yolo"
        from train import detection_readers as readers  # it imports this module: import it when called

        if readers.coco_files(path):
            return "coco"
    return None


def detection_splits(data: str | os.PathLike) -> tuple[str, ...]:
    """The splits a YOLO or COCO data set defines, in its own order."""
    from train import detection_readers as readers  # it imports this module: import it when called

    path = Path(data)
    kind = detection_format(path)
    if kind == "yolo":
        return tuple(readers.yolo_config(_yaml_file(path))[2])
    if kind == "coco":
        return readers.coco_splits(path)
    raise DetectionDataError(f"{path}: not a detection data set; expected {_LAYOUTS}")


def load_detection_set(data: str | os.PathLike, split: str | None = None,
                       prefer: Sequence[str] = EVALUATION_SPLITS) -> DetectionSet:
    """Read one split of a YOLO or COCO data set (see the module docs for the layouts).

    ``split`` is matched literally (``"val2017"`` for COCO 2017); None takes the first of
    ``prefer`` the set has ("test", else "val"), or the one split starting with that name.
    Training callers pass ``split="train"``. Images are decoded once here (OpenCV applies the
    EXIF orientation, and that oriented size is the one normalized boxes refer to), so an
    unreadable image is reported now rather than in the middle of training."""
    from train import detection_readers as readers  # it imports this module: import it when called

    path = Path(data)
    kind = detection_format(path)
    if kind is None:
        what = "no such file or folder" if not path.exists() else "not a detection data set"
        raise DetectionDataError(f"{path}: {what}; expected {_LAYOUTS}")
    if kind == "yolo":
        return readers.load_yolo(_yaml_file(path), split, prefer)
    return readers.load_coco(path, split, prefer)


def _yaml_file(path: Path) -> Path:
    if path.is_file():
        return path
    return next(path / name for name in YAML_NAMES if (path / name).is_file())


# ---------------------------------------------------------------------------------------------
# writing YOLO sets (tests, the scene maker)


def _write_atomic(path: Path, data: bytes, force: bool):
    from convert.files import write_atomic

    if path.exists() and not force:  # the Python API's own wording: force=, not --force
        raise FileExistsError(f"{path}: already exists; pass force=True to overwrite it")
    write_atomic(path, data, force=True)


def write_yolo_split(out_dir: str | os.PathLike, split: str,
                     items: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]], names: Sequence[str], *,
                     force: bool = False) -> int:
    """Write ``(image_name, rgb uint8 [h, w, 3], boxes [n, 4] x1 y1 x2 y2 pixels, classes [n])``
    items as ``out_dir/images/<split>/<image_name>`` (encoded by its suffix) and
    ``out_dir/labels/<split>/<stem>.txt``; returns how many were written. Boxes must lie in
    their image and classes index ``names``; existing files are kept unless ``force``."""
    cv2 = require("cv2", "writing a YOLO data set")
    out = Path(out_dir)
    count = 0
    for name, rgb, boxes, classes in items:
        where = f"{out / 'images' / split / name}"
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise DetectionDataError(f"{where}: image name needs one of the suffixes {', '.join(IMAGE_SUFFIXES)}")
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DetectionDataError(f"{where}: expected an RGB uint8 image [h, w, 3], got {rgb.dtype}{rgb.shape}")
        height, width = rgb.shape[:2]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        classes = np.asarray(classes).reshape(-1)
        if len(classes) != len(boxes) or (len(classes) and not (0 <= classes.min() and classes.max() < len(names))):
            raise DetectionDataError(f"{where}: {len(boxes)} boxes with classes {classes.tolist()}; expected one "
                                     f"class id in 0..{len(names) - 1} per box")
        limit = np.array([width, height, width, height])
        positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        inside = positive & (boxes >= 0).all(1) & (boxes <= limit).all(1)
        if not inside.all():
            raise DetectionDataError(f"{where}: box {boxes[~inside][0].tolist()} is not inside the {width}x{height} "
                                     f"image; expected 0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height}")
        ok, encoded = cv2.imencode(Path(name).suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise DetectionDataError(f"{where}: OpenCV could not encode the image")
        xywh = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                                boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]]) / limit
        lines = "".join(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, (cx, cy, w, h) in zip(classes, xywh))
        _write_atomic(out / "images" / split / name, encoded.tobytes(), force)
        _write_atomic(out / "labels" / split / Path(name).with_suffix(".txt"), lines.encode(), force)
        count += 1
    return count


def write_data_yaml(out_dir: str | os.PathLike, names: Sequence[str], splits: Sequence[str], *,
                    force: bool = False) -> Path:
    """Write ``out_dir/data.yaml`` naming ``images/<split>`` for each split and the class
    ``names``. It has no ``path`` key, so both edgepilot and Ultralytics take the yaml's own
    folder as the root and the set can be moved as a whole."""
    yaml = require("yaml", "writing a YOLO data.yaml")
    unknown = [s for s in splits if s not in ("train", "val", "test")]
    if unknown:
        raise DetectionDataError(f"data.yaml splits must be among ['train', 'val', 'test'], got {unknown}")
    config = {split: f"images/{split}" for split in splits}
    config["names"] = {i: str(name) for i, name in enumerate(names)}
    path = Path(out_dir) / "data.yaml"
    _write_atomic(path, yaml.safe_dump(config, sort_keys=False).encode(), force)
    return path

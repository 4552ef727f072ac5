"""The YOLO and COCO readers behind :func:`train.detection_data.load_detection_set`.

Both validate every label as they read it and report the first problem with a count of the
others (see :class:`Problems`): a set is either read whole or refused, never thinned out.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_runtime.deps import require
from train.detection_data import IMAGE_SUFFIXES, DetectionDataError, DetectionSet

YOLO_SPLITS = ("train", "val", "test")
# Normalized YOLO coordinates may overshoot [0, 1] by float rounding of the tool that wrote them.
NORMALIZED_TOLERANCE = 1e-6
# COCO boxes are in pixels; annotation tools round edges to half pixels.
PIXEL_TOLERANCE = 0.5


def choose_split(available: Sequence[str], split: str | None, prefer: Sequence[str], where: str) -> str:
    if split is not None:
        if split in available:
            return split
        raise DetectionDataError(f"{where}: has no split {split!r}; its splits are {list(available)}")
    for want in prefer:
        if want in available:
            return want
        starting = [s for s in available if s.startswith(want)]
        if len(starting) == 1:
            return starting[0]
    raise DetectionDataError(f"{where}: none of its splits {list(available)} is one of {list(prefer)}; "
                             f"name the split to read")


class Problems:
    """Problems found while reading; the first is reported with a count of the others."""

    def __init__(self):
        self.found: list[str] = []

    def add(self, message: str):
        self.found.append(message)

    def raise_any(self):
        if self.found:
            more = len(self.found) - 1
            suffix = f" (and {more} more problem{'s' * (more > 1)} in this split)" if more else ""
            raise DetectionDataError(self.found[0] + suffix)


def image_size(path: Path, problems: Problems) -> tuple[int, int]:
    cv2 = require("cv2", "reading detection images")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        problems.add(f"{path}: cannot decode the image; expected one of {', '.join(IMAGE_SUFFIXES)} that OpenCV reads")
        return (0, 0)
    return image.shape[:2]


# ---------------------------------------------------------------------------------------------
# YOLO


def yolo_config(yaml_path: Path) -> tuple[Path, tuple[str, ...], dict[str, list[str]]]:
    """(root, names, {split: entries}) of a data.yaml."""
    yaml = require("yaml", "reading a YOLO data.yaml")
    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DetectionDataError(f"{yaml_path}: cannot read it as YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(config, dict):
        raise DetectionDataError(f"{yaml_path}: expected a YAML mapping with path, train, val, test and names; "
                                 f"got a {type(config).__name__}")
    names = config.get("names")
    if isinstance(names, dict):
        if not all(type(k) is int for k in names) or sorted(names) != list(range(len(names))):
            raise DetectionDataError(f"{yaml_path}: names maps ids {sorted(names, key=str)}; expected the ids "
                                     f"0..{len(names) - 1}, each once")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise DetectionDataError(f"{yaml_path}: expected 'names', a list of class names or an {{id: name}} mapping; "
                                 f"got {names!r}")
    if "nc" in config and config["nc"] != len(names):
        raise DetectionDataError(f"{yaml_path}: nc is {config['nc']} but names lists {len(names)} classes")
    if config.get("path") is not None and not isinstance(config["path"], str):
        raise DetectionDataError(f"{yaml_path}: path must be the data set's folder as a string; "
                                 f"got {config['path']!r}")
    root = Path(config["path"]) if config.get("path") else Path(".")
    root = root if root.is_absolute() else yaml_path.parent / root
    splits = {}
    for split in YOLO_SPLITS:
        value = config.get(split)
        if value:  # absent, null or empty: no such split
            entries = value if isinstance(value, list) else [value]
            if not all(isinstance(e, str) for e in entries):
                raise DetectionDataError(f"{yaml_path}: {split} must be a folder, a .txt list or a list of those; "
                                         f"got {value!r}")
            splits[split] = entries
    if not splits:
        raise DetectionDataError(f"{yaml_path}: defines none of the splits {list(YOLO_SPLITS)}; expected e.g. "
                                 f"'train: images/train'")
    return root, tuple(str(n) for n in names), splits


def _split_images(root: Path, entries: list[str], yaml_path: Path, split: str) -> tuple[list[Path], list[Path]]:
    """(image files, image folders) named by a split's entries."""
    images, folders = [], []
    for entry in entries:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        if not path.exists() and entry.startswith("../") and (root / entry[3:]).exists():
            # Roboflow's exports put data.yaml beside train/ valid/ test/ but write 'train:
            # ../train/images'; Ultralytics reads such an entry without its '../', and so do we
            path = root / entry[3:]
        if path.is_dir():
            folders.append(path)
            images += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file() and path.suffix == ".txt":  # one image path a line, relative to the list's folder
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            images += [p if p.is_absolute() else path.parent / p for p in map(Path, filter(None, lines))]
        else:
            raise DetectionDataError(f"{yaml_path}: {split} split {entry!r} resolves to {path}, which is not a folder "
                                     f"of images or a .txt list of image paths")
    return images, folders


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix
    ``.txt`` (an image outside any ``images`` folder keeps its label beside it)."""
    parts = image.parts
    if "images" in parts[:-1]:
        i = len(parts) - 2 - parts[:-1][::-1].index("images")
        parts = parts[:i] + ("labels",) + parts[i + 1:]
    return Path(*parts).with_suffix(".txt")


def _read_yolo_labels(path: Path, classes: int, problems: Problems) -> tuple[np.ndarray, np.ndarray]:
    """Normalized x1, y1, x2, y2 rows and class ids of one label file (an absent file: none). A
    line is a box ``class cx cy w h`` or a segment polygon ``class x1 y1 x2 y2 x3 y3 ...``, read as
    its tight box (Ultralytics trains detectors on segmentation sets the same way)."""
    rows, ids = [], []
    if not path.is_file():
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(f"{path}: cannot read it as a text label file ({exc}); expected lines 'class cx cy w h'")
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        where = f"{path} line {number}"
        if not fields:
            continue
        polygon = len(fields) >= 7 and len(fields) % 2 == 1  # class x1 y1 x2 y2 x3 y3 ...: Ultralytics' segments
        if len(fields) != 5 and not polygon:
            problems.add(f"{where}: expected 5 fields 'class cx cy w h' (or a class and 3 or more x y points of a "
                         f"segment polygon); got {len(fields)}: {line.strip()[:80]!r}")
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            problems.add(f"{where}: expected numbers 'class cx cy w h'; got {line.strip()[:80]!r}")
            continue
        c = values[0]
        if not c.is_integer() or not 0 <= c < classes:
            problems.add(f"{where}: class {fields[0]} is not a class id of names (0..{classes - 1})")
            continue
        if polygon:  # its tight box, as Ultralytics trains a detector on segment labels
            xs, ys = np.array(values[1::2]), np.array(values[2::2])
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
            has_area = x2 > x1 and y2 > y1
            problem = (f"segment polygon of {len(xs)} points is not inside the image or has no area; expected x, y "
                       f"within [0, 1] (normalized)")
        else:
            _, cx, cy, w, h = values
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            has_area = w > 0 and h > 0
            problem = (f"box cx={fields[1]} cy={fields[2]} w={fields[3]} h={fields[4]} is not inside the image; "
                       f"expected w, h > 0 and edges within [0, 1] (normalized)")
        tol = NORMALIZED_TOLERANCE
        if not (np.isfinite(values).all() and has_area and min(x1, y1) >= -tol and max(x2, y2) <= 1 + tol):
            problems.add(f"{where}: {problem}")
            continue
        rows.append((x1, y1, x2, y2))
        ids.append(int(c))
    return np.clip(np.array(rows, np.float64).reshape(-1, 4), 0, 1), np.array(ids, np.int64)


def load_yolo(yaml_path: Path, split: str | None, prefer: Sequence[str]) -> DetectionSet:
    root, names, splits = yolo_config(yaml_path)
    split = choose_split(list(splits), split, prefer, str(yaml_path))
    images, folders = _split_images(root, splits[split], yaml_path, split)
    problems = Problems()
    for image in images:
        if not image.is_file():
            problems.add(f"{yaml_path}: {split} lists image {image}, which does not exist")
    expected = {label_path(p) for p in images}
    for folder in folders:  # labels of a folder split must all belong to one of its images
        labels = label_path(folder / "x.jpg").parent
        orphans = sorted(p for p in labels.rglob("*.txt") if p not in expected and p.name != "classes.txt") \
            if labels != folder and labels.is_dir() else []
        for orphan in orphans:
            stem = orphan.relative_to(labels).with_suffix("")
            other = sorted((folder / stem.parent).glob(f"{stem.name}.*"))  # an image in a format not read here?
            expected_image = (f"its image {other[0].name} is not one of {', '.join(IMAGE_SUFFIXES)}" if other
                              else f"expected an image of that name in {folder / stem.parent}")
            problems.add(f"{orphan}: label file without an image; {expected_image}")
    problems.raise_any()
    sizes, boxes, classes = [], [], []
    for image in images:
        height, width = image_size(image, problems)
        rows, ids = _read_yolo_labels(label_path(image), len(names), problems)
        sizes.append((height, width))
        boxes.append((rows * [width, height, width, height]).astype(np.float32))
        classes.append(ids)
    problems.raise_any()
    if not images:
        raise DetectionDataError(f"{yaml_path}: {split} split {splits[split]} holds no images "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
    return DetectionSet(names, tuple(images), tuple(sizes), tuple(boxes), tuple(classes), str(yaml_path), split, "yolo")


# ---------------------------------------------------------------------------------------------
# COCO


ROBOFLOW_COCO = "_annotations.coco.json"  # Roboflow's COCO export: <split>/_annotations.coco.json beside the images


def coco_files(folder: Path) -> dict[str, Path]:
    """split -> its annotation file: COCO's ``annotations/instances_<split>.json``, or Roboflow's
    ``<split>/_annotations.coco.json``; the images are in ``<split>/`` either way."""
    files = {p.name[len("instances_"):-len(".json")]: p for p in (folder / "annotations").glob("instances_*.json")}
    for p in folder.glob(f"*/{ROBOFLOW_COCO}"):
        files.setdefault(p.parent.name, p)
    return dict(sorted(files.items()))


def coco_splits(folder: Path) -> tuple[str, ...]:
    return tuple(coco_files(folder))


def _grouping_categories(data: dict, categories: dict[int, str]) -> set[int]:
    """Ids of a category that only groups the others, as Roboflow's COCO exports add one (id 0,
    the project's name): the ``supercategory`` of every other category, and used by no
    annotation. As a class it would be one the model is asked to learn and never shown."""
    supers = {cat["id"]: cat.get("supercategory") for cat in data["categories"]}
    used = {ann.get("category_id") for ann in data["annotations"]
            if isinstance(ann, dict) and _whole(ann.get("category_id"))}
    groups = {cat_id for cat_id, name in categories.items()
              if cat_id not in used and all(supers[other] == name for other in categories if other != cat_id)}
    return groups if len(groups) == 1 else set()


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_coco(folder: Path, split: str | None, prefer: Sequence[str]) -> DetectionSet:
    files = coco_files(folder)
    split = choose_split(tuple(files), split, prefer, str(folder))
    ann_file = files[split]
    # COCO's own layout puts a split's images in <split>/; CVAT and Datumaro exports use
    # images/<split>/, and single-split exports (CVAT's 'default') images/
    candidates = [ann_file.parent] if ann_file.name == ROBOFLOW_COCO else [
        folder / split, folder / "images" / split, folder / "images"]
    image_dir = next((d for d in candidates if d.is_dir()), candidates[0])
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DetectionDataError(f"{ann_file}: cannot read it as JSON: {exc}") from None
    keys = ("images", "annotations", "categories")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in keys):
        raise DetectionDataError(f"{ann_file}: expected a COCO object with lists 'images', 'annotations' and "
                                 f"'categories'")
    if not image_dir.is_dir():
        tried = ", ".join(f"{d.relative_to(folder)}/" for d in candidates)
        raise DetectionDataError(f"{folder}: has {ann_file.name} but no image folder for split {split!r}; expected "
                                 f"its images in {tried}")
    categories = {}
    for cat in data["categories"]:
        if not (isinstance(cat, dict) and _whole(cat.get("id")) and isinstance(cat.get("name"), str)):
            raise DetectionDataError(f"{ann_file}: category {cat!r}; expected {{'id': int, 'name': str}}")
        categories[cat["id"]] = cat["name"]
    for cat_id in _grouping_categories(data, categories) if len(categories) > 1 else ():
        del categories[cat_id]
    if not categories:
        raise DetectionDataError(f"{ann_file}: 'categories' is empty; expected at least one class")
    class_of = {cat_id: c for c, cat_id in enumerate(sorted(categories))}
    names = tuple(categories[cat_id] for cat_id in sorted(categories))
    problems = Problems()
    entries = {}
    for image in data["images"]:
        ok = isinstance(image, dict) and _whole(image.get("id")) and isinstance(image.get("file_name"), str) \
            and all(_whole(image.get(k)) and image[k] > 0 for k in ("width", "height"))
        if not ok:
            raise DetectionDataError(f"{ann_file}: image entry {image!r}; expected id, file_name, and width and height "
                                     f"in pixels")
        if image["id"] in entries:
            problems.add(f"{ann_file}: image id {image['id']} appears twice; expected unique ids")
        if not (image_dir / image["file_name"]).is_file():
            problems.add(f"{ann_file}: image id {image['id']} file {image['file_name']!r} is not in {image_dir}")
        entries[image["id"]] = image
    objects = {image_id: ([], [], [], []) for image_id in entries}  # boxes, classes, crowd boxes, crowd classes
    for ann in data["annotations"]:
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        where = f"{ann_file}: annotation id {ann_id}"
        if not isinstance(ann, dict) or ann.get("image_id") not in entries:
            problems.add(f"{where}: image_id {ann.get('image_id') if isinstance(ann, dict) else ann!r} is not an "
                         f"image of this file")
            continue
        if ann.get("category_id") not in class_of:
            problems.add(f"{where}: category_id {ann.get('category_id')!r} is not one of the categories "
                         f"{sorted(categories)}")
            continue
        bbox, image = ann.get("bbox"), entries[ann["image_id"]]
        numbers = isinstance(bbox, list) and len(bbox) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)
        if not numbers:
            problems.add(f"{where}: bbox {bbox!r}; expected 4 numbers [x, y, width, height] in pixels")
            continue
        x, y, w, h = bbox
        width, height = image["width"], image["height"]
        tol = PIXEL_TOLERANCE
        if not (w > 0 and h > 0 and x >= -tol and y >= -tol and x + w <= width + tol and y + h <= height + tol):
            problems.add(f"{where}: bbox {bbox} is not inside image id {image['id']} ({width}x{height}); expected "
                         f"width, height > 0 and the box within [0, {width}] x [0, {height}]")
            continue
        box = np.clip([x, y, x + w, y + h], 0, [width, height, width, height])
        part = 2 if ann.get("iscrowd") else 0
        objects[image["id"]][part].append(box)
        objects[image["id"]][part + 1].append(class_of[ann["category_id"]])
    problems.raise_any()
    if not entries:
        raise DetectionDataError(f"{ann_file}: 'images' is empty; expected at least one image")
    order = sorted(entries)
    arrays = [[np.array(objects[i][k], np.float32).reshape(-1, 4) if k % 2 == 0 else np.array(objects[i][k], np.int64)
               for i in order] for k in range(4)]
    crowd = any(len(b) for b in arrays[2])
    return DetectionSet(names, tuple(image_dir / entries[i]["file_name"] for i in order),
                        tuple((entries[i]["height"], entries[i]["width"]) for i in order),
                        tuple(arrays[0]), tuple(arrays[1]), str(folder), split, "coco",
                        tuple(arrays[2]) if crowd else (), tuple(arrays[3]) if crowd else ())



"""train.detection_data: YOLO and COCO sets written by the tests (real PNG files encoded by
OpenCV), read back exactly, and malformed ones refused with the file and line named."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.metadata import Preprocess
from train.detection_data import (
    DetectionDataError,
    DetectionSet,
    detection_format,
    detection_splits,
    fit_image,
    load_detection_set,
    write_data_yaml,
    write_yolo_split,
)
from train.detection_readers import label_path

NAMES = ("cat", "dog", "emu")
H, W = 40, 60


def picture(seed: int, height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


# image name -> (boxes x1 y1 x2 y2 in pixels, classes); None: a background image
TRAIN = {
    "a.png": ([[0, 0, 60, 40], [10, 5, 30, 25]], [0, 2]),  # a box filling the whole image
    "b.png": ([[12.5, 7.25, 48, 33]], [1]),
    "c.png": ([], []),  # background
}
TEST = {"t.png": ([[1, 2, 3, 4]], [2])}


def yolo_set(root: Path, splits=None) -> Path:
    splits = splits or {"train": TRAIN, "test": TEST}
    for split, items in splits.items():
        write_yolo_split(root, split, [(name, picture(i), np.array(b, float), np.array(c, int))
                                       for i, (name, (b, c)) in enumerate(items.items())], NAMES)
    return write_data_yaml(root, NAMES, list(splits))


def test_yolo_round_trip(tmp_path):
    yaml_path = yolo_set(tmp_path)
    ds = load_detection_set(tmp_path, split="train")  # the folder holding data.yaml
    assert (ds.names, ds.split, ds.format, ds.source) == (NAMES, "train", "yolo", str(yaml_path))
    assert [p.name for p in ds.images] == ["a.png", "b.png", "c.png"] and ds.sizes == ((H, W),) * 3
    for (boxes, classes), got_boxes, got_classes in zip(TRAIN.values(), ds.boxes, ds.classes):
        assert got_boxes.dtype == np.float32 and got_classes.dtype == np.int64
        assert np.allclose(got_boxes, np.reshape(boxes, (-1, 4)), atol=1e-4)  # 6 decimals of a fraction of 60 px
        assert got_classes.tolist() == classes
    assert (len(ds), ds.num_boxes, ds.background_images) == (3, 3, 1)
    assert ds.class_counts() == {"cat": 1, "dog": 1, "emu": 1}
    assert np.array_equal(ds.read_image(1), picture(1))  # PNG is lossless: the very pixels, in RGB order
    assert (tmp_path / "labels" / "train" / "c.txt").read_text() == ""  # a background image's empty label file


def test_default_split_is_test_then_val_and_unknown_splits_are_named(tmp_path):
    yolo_set(tmp_path / "with_test")
    yolo_set(tmp_path / "no_test", {"train": TRAIN, "val": TEST})
    assert load_detection_set(tmp_path / "with_test").split == "test"
    assert load_detection_set(tmp_path / "no_test" / "data.yaml").split == "val"
    assert detection_splits(tmp_path / "no_test") == ("train", "val")
    with pytest.raises(DetectionDataError, match=r"has no split 'test'; its splits are \['train', 'val'\]"):
        load_detection_set(tmp_path / "no_test", split="test")


def test_yaml_path_key_txt_lists_and_name_lists(tmp_path):
    """Ultralytics' other forms: a relative ``path``, a split as a .txt list (lines relative to
    the list's folder, './' or not), names as a list, ``nc``; and a Roboflow-style layout
    (train/images, train/labels) where the label rule still finds the labels."""
    root = tmp_path / "sets" / "mine"
    png(root / "train" / "images" / "x.png", picture(0))
    (root / "train" / "labels").mkdir(parents=True)
    (root / "train" / "labels" / "x.txt").write_text("1 0.5 0.5 0.5 0.5\n\n")  # blank lines are allowed
    png(root / "images" / "val" / "v1.png", picture(1))
    png(root / "images" / "val" / "v2.png", picture(2))
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "v2.txt").write_text("0 0.25 0.5 0.5 1.0\n")
    (root / "val.txt").write_text("./images/val/v2.png\nimages/val/v1.png\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.yaml").write_text(
        "path: ../sets/mine\ntrain: train/images\nval: val.txt\nnc: 2\nnames: [cat, dog]\n")
    train = load_detection_set(tmp_path / "conf" / "mine.yaml", split="train")
    assert train.names == ("cat", "dog") and train.classes[0].tolist() == [1]
    assert np.allclose(train.boxes[0], [[15, 10, 45, 30]])
    val = load_detection_set(tmp_path / "conf" / "mine.yaml")
    assert [p.name for p in val.images] == ["v2.png", "v1.png"]  # the list's order
    assert np.allclose(val.boxes[0], [[0, 0, 30, 40]]) and val.background_images == 1


def test_roboflow_export_with_parent_relative_splits(tmp_path):
    """A Roboflow 'YOLOv8' export: data.yaml beside train/ valid/ test/, each with images/ and
    labels/, and splits written as '../train/images'. Ultralytics drops the '../' when the path
    as written does not exist; so does the loader. A '../' path that exists is taken as written."""
    for split, seed in (("train", 0), ("valid", 1)):
        png(tmp_path / split / "images" / f"{split}.png", picture(seed))
        (tmp_path / split / "labels").mkdir(parents=True)
        (tmp_path / split / "labels" / f"{split}.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
                                        "nc: 2\nnames: ['cat', 'dog']\nroboflow:\n  version: 1\n")
    val = load_detection_set(tmp_path / "data.yaml", split="val")
    assert [p.name for p in val.images] == ["valid.png"] and val.classes[0].tolist() == [1]
    with pytest.raises(DetectionDataError, match=r"test split '../test/images' resolves to .*test/images, which is not"):
        load_detection_set(tmp_path / "data.yaml", split="test")  # neither form exists: named as written
    elsewhere = tmp_path / "sub"
    png(tmp_path / "train2" / "images" / "t.png", picture(2))
    elsewhere.mkdir()
    (elsewhere / "data.yaml").write_text("train: ../train2/images\nnames: [cat, dog]\n")
    assert [p.name for p in load_detection_set(elsewhere / "data.yaml", split="train").images] == ["t.png"]


@pytest.mark.parametrize(
    "image, label",
    [
        ("/d/images/train/x.jpg", "/d/labels/train/x.txt"),  # Ultralytics' layout
        ("/d/train/images/x.jpg", "/d/train/labels/x.txt"),  # split folder first (Roboflow)
        ("/images/d/images/x.jpeg", "/images/d/labels/x.txt"),  # only the last images/ changes
        ("/d/images/a/b/x.png", "/d/labels/a/b/x.txt"),  # nested folders keep their place
        ("/d/pics/x.png", "/d/pics/x.txt"),  # no images/ folder: the label sits beside the image
        ("/d/images.png", "/d/images.txt"),  # a file named images is not a folder
    ],
)
def test_label_path_follows_ultralytics(image, label):
    assert label_path(Path(image)) == Path(label)


def test_tolerance_at_the_edges(tmp_path):
    png(tmp_path / "images" / "val" / "a.png", picture(0))
    (tmp_path / "labels" / "val").mkdir(parents=True)
    # 1 + 5e-7: a writer's rounding, inside the 1e-6 tolerance and clipped to the image
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.5000005 0.5 1.0 1.0\n")
    (tmp_path / "data.yaml").write_text("val: images/val\nnames: {0: a}\n")
    ds = load_detection_set(tmp_path)
    assert ds.boxes[0].tolist() == [[pytest.approx(3e-5, abs=1e-4), 0, 60, 40]]


def test_segment_polygons_are_read_as_their_tight_boxes(tmp_path):
    """A segmentation set's lines ('class x1 y1 x2 y2 x3 y3 ...', normalized) give a detector the
    tight box of each polygon, as Ultralytics' detection training reads them; box lines beside
    them stay boxes."""
    png(tmp_path / "images" / "val" / "a.png", picture(0))
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val" / "a.txt").write_text("1 0.1 0.25 0.5 0.1 0.4 0.75 0.2 0.5\n0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("val: images/val\nnames: [a, b]\n")
    ds = load_detection_set(tmp_path)
    assert ds.classes[0].tolist() == [1, 0]
    assert np.allclose(ds.boxes[0], [[0.1 * W, 0.1 * H, 0.5 * W, 0.75 * H], [15, 10, 45, 30]])


# ---------------------------------------------------------------------------------------------
# malformed YOLO sets


def broken_yolo(tmp_path: Path, labels: dict[str, str], yaml_text: str = "val: images/val\nnames: [a, b]\n",
                images=("a.png",)) -> Path:
    for name in images:
        png(tmp_path / "images" / "val" / name, picture(0))
    for name, text in labels.items():
        (tmp_path / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "val" / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    (tmp_path / "data.yaml").write_text(yaml_text)
    return tmp_path


@pytest.mark.parametrize(
    "labels, messages",
    [
        # a line with a field missing
        ({"a.txt": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n"}, ["a.txt line 2", "expected 5 fields", "got 4"]),
        # a box with an extra field, and a polygon with a lone coordinate
        ({"a.txt": "0 0.5 0.5 0.2 0.2 1\n"}, ["a.txt line 1", "or a class and 3 or more x y points", "got 6"]),
        ({"a.txt": "0 0.1 0.1 0.2 0.1 0.2 0.2 0.3\n"}, ["a.txt line 1", "got 8"]),
        # a segment polygon past the right edge, and one with no area (all points on a line)
        ({"a.txt": "0 0.1 0.1 1.2 0.1 0.2 0.2\n"}, ["a.txt line 1", "polygon of 3 points is not inside the image"]),
        ({"a.txt": "1 0.1 0.1 0.1 0.3 0.1 0.5\n"}, ["a.txt line 1", "or has no area"]),
        # a word instead of a number
        ({"a.txt": "0 0.5 half 0.2 0.2\n"}, ["a.txt line 1", "expected numbers", "'0 0.5 half 0.2 0.2'"]),
        # a class past names
        ({"a.txt": "\n2 0.5 0.5 0.2 0.2\n"}, ["a.txt line 2", "class 2 is not a class id of names (0..1)"]),
        # a fractional class
        ({"a.txt": "0.5 0.5 0.5 0.2 0.2\n"}, ["class 0.5 is not a class id"]),
        # a negative class
        ({"a.txt": "-1 0.5 0.5 0.2 0.2\n"}, ["class -1 is not a class id"]),
        # a box over the right edge
        ({"a.txt": "0 0.95 0.5 0.2 0.2\n"}, ["a.txt line 1", "cx=0.95", "not inside the image", "within [0, 1]"]),
        # pixel coordinates instead of normalized ones
        ({"a.txt": "0 30 20 10 10\n"}, ["a.txt line 1", "not inside the image"]),
        # a box of zero width
        ({"a.txt": "1 0.5 0.5 0 0.2\n"}, ["w=0", "w, h > 0"]),
        # NaN
        ({"a.txt": "1 nan 0.5 0.1 0.2\n"}, ["cx=nan", "not inside the image"]),
        # a label file whose image is missing
        ({"a.txt": "", "ghost.txt": "0 0.5 0.5 0.2 0.2\n"}, ["ghost.txt: label file without an image",
                                                            "expected an image of that name in"]),
        # a label file whose image is in a format not read
        ({"a.txt": "", "b.txt": "0 0.5 0.5 0.2 0.2\n", "../../images/val/b.gif": "GIF89a"},
         ["b.txt: label file without an image; its image b.gif is not one of .bmp"]),
        # a label file that is not text
        ({"a.txt": "\udcff"}, ["a.txt: cannot read it as a text label file"]),
        # three problems at once: the first is told, with a count of the others
        ({"a.txt": "0 0.5\n5 0.5 0.5 0.1 0.1\n0 2 2 1 1\n"}, ["a.txt line 1", "(and 2 more problems in this split)"]),
    ],
)
def test_bad_labels_name_the_file_and_line(tmp_path, labels, messages):
    broken_yolo(tmp_path, labels)
    with pytest.raises(DetectionDataError) as err:
        load_detection_set(tmp_path)
    assert str(err.value).startswith(str(tmp_path)) and "\n" not in str(err.value)
    for message in messages:
        assert message in str(err.value)


@pytest.mark.parametrize(
    "yaml_text, messages",
    [
        ("- a\n- b\n", ["expected a YAML mapping", "got a list"]),  # not a mapping
        ("val: images/val\n", ["expected 'names'", "got None"]),  # no names
        ("val: images/val\nnames: {0: a, 2: b}\n", ["names maps ids [0, 2]", "0..1"]),  # a gap in the ids
        ("val: images/val\nnames: {0: a, b: c}\n", ["names maps ids [0, 'b']", "0..1"]),  # a name as an id
        ("path: 5\nval: images/val\nnames: [a]\n", ["path must be the data set's folder as a string; got 5"]),
        ("path: {a: 1}\nval: images/val\nnames: [a]\n", ["path must be", "got {'a': 1}"]),
        ("val: images/val\nnc: 3\nnames: [a, b]\n", ["nc is 3 but names lists 2 classes"]),
        ("names: [a]\n", ["defines none of the splits"]),  # no split at all
        ("val: images/nope\nnames: [a]\n", ["val split 'images/nope'", "not a folder of images or a .txt list"]),
        ("val: list.txt\nnames: [a]\n", ["which does not exist"]),  # a list naming a missing image
        ("val: [1, 2]\nnames: [a]\n", ["must be a folder, a .txt list or a list of those"]),
        ("val: images/val\nnames: [a]\nbad: [\n", ["cannot read it as YAML"]),
        ("val: !!python/object/apply:os.system [ls]\nnames: [a]\n", ["cannot read it as YAML"]),  # safe_load only
    ],
)
def test_bad_yaml(tmp_path, yaml_text, messages):
    broken_yolo(tmp_path, {}, yaml_text)
    (tmp_path / "list.txt").write_text("images/val/a.png\nimages/val/missing.png\n")
    with pytest.raises(DetectionDataError) as err:
        load_detection_set(tmp_path / "data.yaml")
    assert str(err.value).startswith(str(tmp_path)) and "\n" not in str(err.value)
    for message in messages:
        assert message in str(err.value)


def test_undecodable_image_and_empty_split(tmp_path):
    broken_yolo(tmp_path / "bad", {})
    (tmp_path / "bad" / "images" / "val" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DetectionDataError, match=r"b\.png: cannot decode the image"):
        load_detection_set(tmp_path / "bad")
    (tmp_path / "empty" / "images" / "val").mkdir(parents=True)
    broken_yolo(tmp_path / "empty", {}, images=())
    with pytest.raises(DetectionDataError, match="holds no images"):
        load_detection_set(tmp_path / "empty")


def test_not_a_detection_set(tmp_path):
    assert detection_format(tmp_path) is None
    with pytest.raises(DetectionDataError, match="not a detection data set; expected a YOLO data.yaml"):
        load_detection_set(tmp_path)
    with pytest.raises(DetectionDataError, match="no such file or folder"):
        load_detection_set(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# COCO


def coco_set(root: Path, annotations: list[dict], split: str = "val2017", images=None, categories=None) -> Path:
    images = images if images is not None else [
        {"id": 7, "file_name": "b.png", "width": W, "height": H},
        {"id": 3, "file_name": "a.png", "width": W, "height": H},
        {"id": 9, "file_name": "empty.png", "width": W, "height": H},
    ]
    for image in images:
        png(root / split / image["file_name"], picture(image["id"]))
    categories = categories if categories is not None else [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


GOOD = [
    {"id": 1, "image_id": 3, "category_id": 18, "bbox": [10, 5, 20, 30], "iscrowd": 0},
    {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 60, 40], "iscrowd": 0},
    {"id": 3, "image_id": 3, "category_id": 1, "bbox": [1.5, 2.5, 3, 4], "iscrowd": 0},
    {"id": 4, "image_id": 7, "category_id": 1, "bbox": [30, 20, 10, 10], "iscrowd": 1},
]


def test_coco_folder(tmp_path):
    coco_set(tmp_path, GOOD)
    coco_set(tmp_path, GOOD[:1], split="train2017")
    assert detection_format(tmp_path) == "coco" and detection_splits(tmp_path) == ("train2017", "val2017")
    ds = load_detection_set(tmp_path)  # no test split: the one split starting with "val"
    assert (ds.split, ds.format, ds.names) == ("val2017", "coco", ("person", "dog"))  # sorted category ids 1, 18
    assert [p.name for p in ds.images] == ["a.png", "b.png", "empty.png"]  # image id order 3, 7, 9
    assert [b.tolist() for b in ds.boxes] == [[[10, 5, 30, 35], [1.5, 2.5, 4.5, 6.5]], [[0, 0, 60, 40]], []]
    assert [c.tolist() for c in ds.classes] == [[1, 0], [0], []]
    assert ds.crowd_regions == 1 and ds.crowd_boxes[1].tolist() == [[30, 20, 40, 30]]  # kept apart, not dropped
    assert (ds.num_boxes, ds.background_images) == (3, 1)
    assert np.array_equal(ds.read_image(0), picture(3))
    with pytest.raises(DetectionDataError, match=r"has no split 'val'; its splits are \['train2017', 'val2017'\]"):
        load_detection_set(tmp_path, split="val")  # matched literally


def test_roboflow_coco_export(tmp_path):
    """Roboflow's COCO export: <split>/_annotations.coco.json beside the images, and a category
    id 0 named after the project, the supercategory of every real class, that labels nothing: it
    is left out, so the classes are the real ones. A grouping category that does label objects,
    or one that groups only some of the classes, stays a class."""
    pets = [{"id": 0, "name": "pets", "supercategory": "none"},
            {"id": 1, "name": "cat", "supercategory": "pets"},
            {"id": 2, "name": "dog", "supercategory": "pets"}]
    images = [{"id": 0, "file_name": "a_jpg.rf.123.png", "width": W, "height": H}]
    box = {"id": 0, "image_id": 0, "category_id": 2, "bbox": [10, 5, 20, 30], "iscrowd": 0}

    def write(root, categories, annotations):
        for split in ("train", "valid"):
            png(root / split / images[0]["file_name"], picture(0))
            data = {"images": images, "annotations": annotations, "categories": categories}
            (root / split / "_annotations.coco.json").write_text(json.dumps(data))
        return root

    root = write(tmp_path / "a", pets, [box])
    assert detection_format(root) == "coco" and detection_splits(root) == ("train", "valid")
    ds = load_detection_set(root)  # no test split: the one split starting with 'val'
    assert (ds.split, ds.format, ds.names) == ("valid", "coco", ("cat", "dog"))
    assert ds.classes[0].tolist() == [1] and np.allclose(ds.boxes[0][0], [10, 5, 30, 35])
    assert ds.source == str(root) and ds.images[0] == root / "valid" / "a_jpg.rf.123.png"
    used = write(tmp_path / "b", pets, [box, {**box, "id": 1, "category_id": 0}])  # 'pets' labels an object
    assert load_detection_set(used).names == ("pets", "cat", "dog")
    partial = write(tmp_path / "c", pets + [{"id": 3, "name": "person", "supercategory": "person"}], [box])
    assert load_detection_set(partial).names == ("pets", "cat", "dog", "person")  # 'pets' groups only two


@pytest.mark.parametrize(
    "annotation, messages",
    [
        ({"bbox": [50, 5, 20, 10]}, ["annotation id 5", "bbox [50, 5, 20, 10] is not inside image id 3 (60x40)"]),
        ({"bbox": [-1, 5, 20, 10]}, ["annotation id 5", "not inside image id 3"]),  # beyond the half-pixel slack
        ({"bbox": [5, 5, 0, 10]}, ["annotation id 5", "width, height > 0"]),
        ({"bbox": [5, 5, 10]}, ["annotation id 5", "expected 4 numbers [x, y, width, height]"]),
        ({"category_id": 2}, ["annotation id 5", "category_id 2 is not one of the categories [1, 18]"]),
        ({"image_id": 4}, ["annotation id 5", "image_id 4 is not an image of this file"]),
    ],
)
def test_bad_coco_annotations_name_the_annotation(tmp_path, annotation, messages):
    bad = {"id": 5, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0, **annotation}
    coco_set(tmp_path, GOOD + [bad])
    with pytest.raises(DetectionDataError) as err:
        load_detection_set(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "annotations" / "instances_val2017.json"))
    for message in messages:
        assert message in str(err.value)


def test_coco_slack_of_half_a_pixel_is_clipped(tmp_path):
    coco_set(tmp_path, [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [-0.25, 0, 60.5, 40.25]}])
    assert load_detection_set(tmp_path).boxes[0].tolist() == [[0, 0, 60, 40]]


def test_coco_missing_image_and_folder(tmp_path):
    coco_set(tmp_path / "a", GOOD)
    (tmp_path / "a" / "val2017" / "b.png").unlink()
    with pytest.raises(DetectionDataError, match=r"image id 7 file 'b\.png' is not in .*val2017"):
        load_detection_set(tmp_path / "a")
    (tmp_path / "b" / "val2017").mkdir(parents=True)
    coco_set(tmp_path / "b", [], images=[])
    with pytest.raises(DetectionDataError, match="'images' is empty"):
        load_detection_set(tmp_path / "b", split="val2017")
    (tmp_path / "c" / "annotations").mkdir(parents=True)
    empty = {"images": [], "annotations": [], "categories": []}
    (tmp_path / "c" / "annotations" / "instances_val.json").write_text(json.dumps(empty))
    with pytest.raises(DetectionDataError, match=r"but no image folder for split 'val'; expected its images in "
                                                 r"val/, images/val/, images/"):
        load_detection_set(tmp_path / "c")


@pytest.mark.parametrize("images_in", ["images/val2017", "images"])
def test_coco_images_where_cvat_and_datumaro_put_them(tmp_path, images_in):
    """CVAT's and Datumaro's COCO exports keep annotations/instances_<split>.json but put the
    images in images/<split>/, or (one split, CVAT's 'default') in images/."""
    coco_set(tmp_path / "set", GOOD)
    (tmp_path / "set" / images_in).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "set" / "val2017").rename(tmp_path / "set" / images_in)
    ds = load_detection_set(tmp_path / "set")
    assert ds.images[0] == tmp_path / "set" / images_in / "a.png" and ds.num_boxes == 3


# ---------------------------------------------------------------------------------------------
# DetectionSet behaviour, writers, fit_image


def test_subset_to_coco_and_a_changed_image(tmp_path):
    coco_set(tmp_path, GOOD)
    ds = load_detection_set(tmp_path)
    part = ds.subset([1, 0])
    assert [p.name for p in part.images] == ["b.png", "a.png"] and part.crowd_boxes[0].shape == (1, 4)
    coco = part.to_coco()
    json.dumps(coco)  # plain Python values
    assert coco["categories"] == [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]
    assert [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in coco["annotations"]] == [
        (1, 1, [0, 0, 60, 40], 0), (1, 1, [30, 20, 10, 10], 1), (2, 2, [10, 5, 20, 30], 0), (2, 1, [1.5, 2.5, 3, 4], 0)]
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3, 4]  # never 0: pycocotools reads 0 as "no match"
    png(tmp_path / "val2017" / "a.png", picture(0, 10, 10))
    with pytest.raises(DetectionDataError, match=r"a\.png: the image is 10x10 .* but the data set says 40x60"):
        ds.read_image(0)


def test_set_checks_its_own_arrays():
    box = np.zeros((1, 4), np.float32)
    with pytest.raises(DetectionDataError, match="1 images but {'classes': 0}"):
        DetectionSet(("a",), (Path("x"),), ((1, 1),), (box,), ())
    with pytest.raises(DetectionDataError, match="expected float32"):
        DetectionSet(("a",), (Path("x"),), ((1, 1),), (box.astype(float),), (np.zeros(1, np.int64),))
    with pytest.raises(DetectionDataError, match="class 1; expected class ids 0..0"):
        DetectionSet(("a",), (Path("x"),), ((1, 1),), (box,), (np.ones(1, np.int64),))


def test_writer_checks_boxes_and_keeps_existing_files(tmp_path):
    item = ("a.png", picture(0), np.array([[0, 0, 10, 10]]), np.array([0]))
    assert write_yolo_split(tmp_path, "train", [item], NAMES) == 1
    with pytest.raises(FileExistsError, match="a.png: already exists; pass force=True"):
        write_yolo_split(tmp_path, "train", [item], NAMES)
    assert write_yolo_split(tmp_path, "train", [item], NAMES, force=True) == 1
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries
    for bad, message in [
        (("b.png", picture(0), np.array([[0, 0, 61, 10]]), [0]),
         r"box \[0.0, 0.0, 61.0, 10.0\] is not inside the 60x40 image"),
        (("b.png", picture(0), np.array([[5, 0, 5, 10]]), [0]), "is not inside"),
        (("b.png", picture(0), np.array([[0, 0, 5, 10]]), [3]), "class id in 0..2"),
        (("b.gif", picture(0), np.zeros((0, 4)), []), "needs one of the suffixes"),
    ]:
        with pytest.raises(DetectionDataError, match=message):
            write_yolo_split(tmp_path, "val", [bad], NAMES)


@pytest.mark.parametrize(
    "pre, shape, top, left, rows",
    [
        # 40x60 into 96x128: scale min(2.4, 2.13) -> 85x128, centred 5 rows down
        (Preprocess(kind="image", size=(96, 128), resize="letterbox"), (96, 128, 3), 5, 0, 85),
        # the same stretched: the whole input, no padding
        (Preprocess(kind="image", size=(96, 128)), (96, 128, 3), 0, 0, 96),
        # tall input: 40x60 into 64x32 letterboxed -> 21x32, 21 rows down
        (Preprocess(kind="image", size=(64, 32), resize="letterbox", color="gray"), (64, 32, 1), 21, 0, 21),
    ],
)
def test_fit_image_places_pixels_where_the_geometry_says(pre, shape, top, left, rows):
    rgb = np.full((H, W, 3), (200, 100, 50), np.uint8)
    x, geo = fit_image(rgb, pre)
    assert x.shape == shape and x.dtype == np.float32
    assert (geo.pad_top, geo.pad_left, geo.resized_h) == (top, left, rows)
    inside = x[top:top + rows, left:left + geo.resized_w]
    expected = [round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)] if shape[2] == 1 else [200, 100, 50]
    assert np.allclose(inside, expected, atol=0.5)
    outside = np.delete(x, np.s_[top:top + rows], axis=0)
    assert outside.size == x.size - inside.size and np.all(outside == 114)  # YOLO's grey
    # a box around the whole image maps onto exactly the resized area
    assert np.allclose(geo.to_input([[0, 0, W, H]]), [[left, top, left + geo.resized_w, top + rows]])


def test_fit_image_orders_and_normalizes_channels():
    rgb = np.full((4, 4, 3), (10, 20, 30), np.uint8)
    x, _ = fit_image(rgb, Preprocess(kind="image", size=(8, 2), color="bgr", scale=0.5, mean=(1, 2, 3),
                                     resize="letterbox", pad_value=0))
    assert np.allclose(x[3, 0], [15 - 1, 10 - 2, 5 - 3])  # reversed, scaled, minus the mean
    assert np.allclose(x[0, 0], [-1, -2, -3])  # the padding is normalized too
    with pytest.raises(ValueError, match=r"RGB uint8 image \[height, width, 3\], got float64\(4, 4\)"):
        fit_image(np.zeros((4, 4)), Preprocess(kind="image", size=(8, 8)))


def test_detector_refuses_splits_that_name_other_classes_before_training(tmp_path):
    """COCO splits each carry their own categories: a validation file whose classes differ from
    the training file's would number the boxes differently, so training stops before it starts."""
    pytest.importorskip("keras", reason="the detector recipe needs Keras")
    from train.detector import train_detector
    from train.options import TrainOptions

    coco_set(tmp_path / "set", GOOD[:1], split="train2017")
    coco_set(tmp_path / "set", [], split="val2017", categories=[{"id": 18, "name": "dog"}])
    with pytest.raises(ValueError, match=r"split 'val2017' has the classes \['dog'\] but 'train2017' has "
                                         r"\['person', 'dog'\]; expected the same classes in every split"):
        train_detector(TrainOptions(data=str(tmp_path / "set"), out=tmp_path / "run", epochs=1), progress=lambda *a: None)
    assert not (tmp_path / "run").exists()  # nothing written

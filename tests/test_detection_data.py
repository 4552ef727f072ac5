"""train.detection_data: YOLO sets written by the tests (real PNG files encoded by OpenCV), read
back exactly, and malformed ones refused with the file and line named; the DetectionSet type,
the writers and fit_image. COCO sets are in test_detection_coco.py."""
from __future__ import annotations

from pathlib import Path

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
from media_files import H, W, picture, png

NAMES = ("cat", "dog", "emu")
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
# DetectionSet behaviour, writers, fit_image


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

"""train.detection_data: COCO sets (COCO's own layout, Roboflow's, CVAT's and Datumaro's) written
by the tests with real PNG files, read back exactly, malformed annotations refused with the
annotation named, and a set written back as COCO JSON for mAP."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from media_files import H, W, picture, png
from train.detection_data import DetectionDataError, detection_format, detection_splits, load_detection_set


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

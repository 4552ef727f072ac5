"""train.metrics against values worked out by hand (COCO's 101-point interpolated AP) on ground
truth built in memory: the images are never read to compute mAP."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train.detection_data import DetectionSet
from train.metrics import classification_metrics, detection_map, top1

NAMES = ("cat", "dog", "bird")
A = [0, 0, 100, 100]
B = [200, 150, 300, 250]


def truth(*images, crowd=None) -> DetectionSet:
    """``images``: per image a list of (box, class); ``crowd``: per image crowd (box, class) lists."""
    def arrays(objects):
        return (np.array([b for b, _ in objects], np.float32).reshape(-1, 4),
                np.array([c for _, c in objects], np.int64))

    boxes, classes = zip(*[arrays(objects) for objects in images])
    crowd_boxes, crowd_classes = zip(*[arrays(objects) for objects in crowd]) if crowd else ((), ())
    return DetectionSet(NAMES, tuple(Path(f"{i}.jpg") for i in range(len(images))), ((480, 640),) * len(images),
                        boxes, classes, "memory", "test", "yolo", crowd_boxes, crowd_classes)


def found(*detections):
    """One image's predictions from (box, score, class) triples."""
    return (np.array([d[0] for d in detections], float).reshape(-1, 4), np.array([d[1] for d in detections]),
            np.array([d[2] for d in detections], int))


def shifted(box, dx):
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


def test_perfect_predictions_score_one_and_the_dict_is_exactly_the_reported_one(capsys):
    gt = truth([(A, 0), (B, 1)], [(B, 0)], [])  # the last image is background
    m = detection_map(gt, [found((A, 0.9, 0), (B, 0.8, 1)), found((B, 0.7, 0)), found()])
    assert (m.map50, m.map50_95) == (1.0, 1.0)
    assert m.to_dict() == {
        "task": "detection", "map50": 1.0, "map50_95": 1.0, "images": 3, "instances": 3,
        "per_class": {"cat": {"ap50": 1.0, "ap50_95": 1.0, "instances": 2},
                      "dog": {"ap50": 1.0, "ap50_95": 1.0, "instances": 1},
                      "bird": {"ap50": None, "ap50_95": None, "instances": 0}},  # absent from the ground truth
    }
    assert capsys.readouterr().out == ""  # pycocotools' prints stay off stdout


def test_no_predictions_score_zero():
    m = detection_map(truth([(A, 0)], [(B, 1)]), [found(), found()])
    assert (m.map50, m.map50_95) == (0.0, 0.0)
    assert m.per_class["cat"]["ap50"] == 0.0 and m.per_class["bird"]["ap50"] is None


def test_hand_computed_average_precision():
    """Two cats, three detections ranked TP (0.9), FP (0.8, far away), TP (0.7):
    precision/recall after each: 1/0.5, 0.5/0.5, 2/3/1. COCO makes precision monotone from the
    right (1, 2/3, 2/3) and reads it at 101 recall points 0, 0.01, ..., 1: the 51 points
    r <= 0.5 find the first detection (precision 1), the 50 points above 0.5 the third (2/3).
    AP = (51 * 1 + 50 * 2/3) / 101 = 0.834983..., the same at every IoU threshold (exact boxes)."""
    gt = truth([(A, 0), (B, 0)])
    m = detection_map(gt, [found((A, 0.9, 0), ([400, 300, 450, 350], 0.8, 0), (B, 0.7, 0))])
    expected = (51 + 50 * 2 / 3) / 101
    assert m.map50 == pytest.approx(expected, abs=1e-12) and m.map50_95 == pytest.approx(expected, abs=1e-12)
    assert m.per_class["cat"] == {"ap50": pytest.approx(expected), "ap50_95": pytest.approx(expected), "instances": 2}


def test_iou_two_thirds_counts_at_050_to_065_only():
    """A 100 px box shifted 20 px: IoU = 80*100 / (120*100) = 2/3, above the thresholds
    0.50, 0.55, 0.60, 0.65 and below 0.70 ... 0.95 (clear of every threshold, so no rounding
    tie). AP is 1 at four of the ten thresholds, 0 at six: mAP@0.5 = 1, mAP@0.5:0.95 = 0.4."""
    m = detection_map(truth([(A, 0)], [(B, 1)]), [found((shifted(A, 20), 0.9, 0)), found((shifted(B, -20), 0.5, 1))])
    assert m.map50 == 1.0 and m.map50_95 == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize(
    "wrong_score, cat_ap",
    [
        # the mix-up ranks below the right cat: precision 1 at recall 1 is reached first, AP 1
        (0.8, 1.0),
        # the mix-up ranks first: precision 0 then 1/2 at recall 1, made monotone: AP 0.5
        (0.95, 0.5),
    ],
)
def test_class_mix_ups(wrong_score, cat_ap):
    """Image 0 holds a cat, image 1 a dog that the model calls a cat: a false positive for
    'cat', a missed 'dog' (AP 0), and 'bird', absent from the ground truth, left out of the mean."""
    m = detection_map(truth([(A, 0)], [(B, 1)]), [found((A, 0.9, 0)), found((B, wrong_score, 0))])
    assert m.per_class["cat"]["ap50"] == pytest.approx(cat_ap) and m.per_class["dog"]["ap50"] == 0.0
    assert m.per_class["bird"]["ap50"] is None
    assert m.map50 == pytest.approx((cat_ap + 0.0) / 2) and list(m.per_class) == list(NAMES)


def test_false_positives_on_background_images_count():
    gt = truth([(A, 0)], [])
    clean = detection_map(gt, [found((A, 0.5, 0)), found()])
    noisy = detection_map(gt, [found((A, 0.5, 0)), found((B, 0.9, 0))])  # ranked above the true cat
    assert clean.map50 == 1.0 and noisy.map50 == pytest.approx(0.5)


def test_detections_on_crowd_regions_are_not_false_positives():
    """COCO's rule: a detection matching an iscrowd region is ignored, not counted wrong."""
    detections = [found((B, 0.9, 0), (A, 0.5, 0))]
    with_crowd = detection_map(truth([(A, 0)], crowd=[[(B, 0)]]), detections)
    without = detection_map(truth([(A, 0)]), detections)
    assert with_crowd.map50 == 1.0 and without.map50 == pytest.approx(0.5)
    assert with_crowd.instances == 1  # crowd regions are not instances


def test_at_most_100_detections_per_image_and_class():
    """100 confident false positives push the one true cat out of the top 100: AP 0. Allowing
    200 keeps it, at precision 1/101 for every recall point: AP = 1/101."""
    noise = [([300 + i, 300, 310 + i, 310], 0.9, 0) for i in range(100)]
    predictions = [found(*noise, (A, 0.1, 0))]
    assert detection_map(truth([(A, 0)]), predictions).map50 == 0.0
    assert detection_map(truth([(A, 0)]), predictions, max_detections=200).map50 == pytest.approx(1 / 101)


@pytest.mark.parametrize(
    "predictions, message",
    [
        ([found()], "got 1 entries for the 2 images of memory"),  # one image short
        ([found((A, 0.9, 3)), found()], "image 0 (0.jpg): class ids [3]; expected integers in 0..2"),
        ([found(([0, 0, 1, np.nan], 0.9, 0)), found()], "NaN or infinity"),
        ([found(([10, 0, 5, 5], 0.9, 0)), found()], "x2 < x1 or y2 < y1"),
        ([(np.zeros((1, 3)), [0.5], [0]), found()], "boxes (1, 3)"),
        ([(np.zeros((1, 4)), [0.5, 0.4], [0]), found()], "scores (2,)"),
        ([found(), 7], "expected a (boxes, scores, class_ids) tuple, got int"),
    ],
)
def test_bad_predictions(predictions, message):
    with pytest.raises(ValueError) as err:
        detection_map(truth([(A, 0)], [(B, 1)]), predictions)
    assert message in str(err.value)


def test_ground_truth_without_boxes_is_refused():
    with pytest.raises(ValueError, match="memory \\(test\\): holds no boxes, so mAP is undefined"):
        detection_map(truth([], []), [found((A, 0.9, 0)), found()])


# ---------------------------------------------------------------------------------------------
# classification


def test_top1_is_a_percentage():
    assert top1([0, 1, 2, 2], [0, 1, 1, 2]) == 75.0
    assert top1(np.array([3]), np.array([3])) == 100.0


def test_classification_metrics():
    predicted = [0, 0, 1, 1, 1, 2, 0]
    labels = [0, 0, 1, 1, 2, 2, 1]
    m = classification_metrics(predicted, labels, ("a", "b", "c", "d"))
    assert m.top1 == pytest.approx(100 * 5 / 7)
    assert m.confusion == ((2, 0, 0, 0), (1, 2, 0, 0), (0, 1, 1, 0), (0, 0, 0, 0))  # rows: true class
    assert m.per_class == {"a": {"accuracy": 100.0, "instances": 2},
                           "b": {"accuracy": pytest.approx(200 / 3), "instances": 3},
                           "c": {"accuracy": 50.0, "instances": 2},
                           "d": {"accuracy": None, "instances": 0}}  # no samples: no accuracy
    d = m.to_dict()
    assert d["task"] == "classification" and d["images"] == 7 and d["confusion"][1] == [1, 2, 0, 0]
    assert list(classification_metrics([1], [1]).per_class) == ["0", "1"]  # unnamed classes: their ids


@pytest.mark.parametrize(
    "predicted, labels, names, message",
    [
        ([0, 1], [0], (), "2 predictions for 1 labels"),
        ([], [], (), "at least one"),
        (np.eye(2), [0, 1], (), r"scores.argmax\(axis=-1\)"),  # scores instead of class ids
        ([0.5, 1], [0, 1], (), "integer class ids, got float64"),
        ([0, -1], [0, 1], (), "must be >= 0, got -1"),
        ([0, 2], [0, 1], ("a", "b"), r"class id 2 is out of range for the 2 class names \('a', 'b'\)"),
    ],
)
def test_bad_classification_inputs(predicted, labels, names, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(predicted, labels, names)

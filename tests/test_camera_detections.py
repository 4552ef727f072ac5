"""The Detections container: validated when built, immutable, and its helpers."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.detections import Detections, box_iou


def make(n=3, **kw):
    xyxy = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [100, 50, 200, 100]], np.float32)[:n]
    args = dict(xyxy=xyxy, scores=np.array([0.9, 0.5, 0.7])[:n], class_ids=np.array([0, 0, 1])[:n],
                labels=("person", "person", None)[:n], image_size=(100, 200))
    args.update(kw)
    return Detections(**args)


def test_fields_are_typed_and_read_only():
    dets = make()
    assert dets.xyxy.dtype == np.float32 and dets.scores.dtype == np.float32 and dets.class_ids.dtype == np.int64
    with pytest.raises(ValueError):
        dets.xyxy[0, 0] = 5
    source = np.array([[0, 0, 1, 1]], np.float32)
    d = Detections(source, [1.0], [0], ("a",), (10, 10))
    source[0, 0] = 0.5  # the container holds its own copy
    assert d.xyxy[0, 0] == 0


@pytest.mark.parametrize("kw, message", [
    (dict(xyxy=np.zeros((3, 5))), r"shape \[N, 4\]"),
    (dict(scores=np.zeros(2)), "scores has 2 entries for 3 boxes"),
    (dict(labels=("a",)), "labels has 1 entries"),
    (dict(xyxy=np.array([[10, 0, 0, 10]] * 3)), "x1 <= x2"),  # x, y, w, h given by mistake
    (dict(xyxy=np.full((3, 4), np.nan)), "NaN"),
    (dict(class_ids=np.array([0.5, 1, 2])), "whole numbers"),
    (dict(image_size=(0, 10)), "image_size"),
    (dict(keypoints=np.zeros((3, 6))), r"keypoints must have shape \[3, K, 2\]"),
    (dict(track_ids=np.zeros(2)), "track_ids has 2 entries"),
])
def test_invalid_fields_are_refused_when_built(kw, message):
    with pytest.raises(ValueError, match=message):
        make(**kw)


def test_empty_filter_and_len():
    empty = Detections.empty((480, 640))
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4) and empty.to_dicts() == []
    dets = make()
    high = dets[dets.scores > 0.6]
    assert len(high) == 2 and high.labels == ("person", None) and high.image_size == (100, 200)
    assert dets.filter([2]).class_ids.tolist() == [1]
    assert len(dets[1:]) == 2
    with pytest.raises(ValueError, match="boolean mask"):
        dets.filter(np.array([True, False]))


def test_normalized_area_centres():
    dets = make()
    np.testing.assert_allclose(dets.normalized()[2], [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(dets.area, [100, 100, 5000])
    np.testing.assert_allclose(dets.centers[0], [5, 5])


def test_iou_against_hand_computed_values():
    dets = make()
    iou = dets.iou(dets)
    assert iou.shape == (3, 3)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == pytest.approx(25 / 175)  # 5x5 overlap of two 10x10 boxes
    assert iou[0, 2] == 0.0
    assert box_iou(np.zeros((0, 4)), dets.xyxy).shape == (0, 3)


def test_to_dicts_is_the_json_form_of_the_issue():
    dets = make(keypoints=np.ones((3, 2, 2)), track_ids=[7, 8, 9])
    row = dets.to_dicts()[2]
    assert row == {"label": None, "class_id": 1, "score": pytest.approx(0.7), "box": [100.0, 50.0, 200.0, 100.0],
                   "track_id": 9, "keypoints": [[1.0, 1.0], [1.0, 1.0]]}
    assert dets.count_by_label() == {"person": 2, "1": 1}
    assert "3 in 200x100" in repr(dets)

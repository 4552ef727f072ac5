"""The IoU tracker: ids kept over frames, appear after min_hits, leave after max_missed."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.detections import Detections
from apps.camera.tracker import IouTracker


def dets(*boxes, classes=None):
    classes = classes or [0] * len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9), classes,
                      tuple("person" if c == 0 else "car" for c in classes), (480, 640))


def test_ids_appear_and_leave():
    tracker = IouTracker(iou=0.3, min_hits=3, max_missed=2)
    frames = [dets([10, 10, 50, 50], [200, 200, 260, 260]) for _ in range(2)]
    frames += [dets([12 + 2 * i, 10, 52 + 2 * i, 50], [200, 200, 260, 260]) for i in range(3)]  # the first moves
    frames += [dets([20, 10, 60, 50])] * 3  # the second disappears
    frames += [dets()] * 3  # and then the first
    log, ids = [], []
    for i, d in enumerate(frames):
        out, events = tracker.update(d, i, i * 0.1)
        ids.append(out.track_ids.tolist())
        log += [(e.event, e.track_id, e.frame) for e in events]
    assert ids[:2] == [[-1, -1], [-1, -1]]  # tentative until the 3rd frame
    assert ids[2] == [1, 2] and ids[4] == [1, 2] and ids[5] == [1]
    # the second object is missed in frames 5, 6, 7 (> max_missed 2): leaves at frame 7
    assert log == [("appear", 1, 2), ("appear", 2, 2), ("leave", 2, 7), ("leave", 1, 10)]
    assert tracker.total == 2 and tracker.active == 0


def test_a_flicker_never_makes_an_event_and_classes_do_not_mix():
    tracker = IouTracker(min_hits=3, max_missed=1)
    events = []
    for i, d in enumerate([dets([0, 0, 10, 10]), dets(), dets(), dets()]):
        events += tracker.update(d, i, 0.0)[1]
    assert events == []
    # a car in the box where a person was gets its own track
    for i in range(3):
        tracker.update(dets([0, 0, 10, 10], [0, 0, 10, 10], classes=[0, 1]), i, 0.0)
    out, _ = tracker.update(dets([0, 0, 10, 10], [0, 0, 10, 10], classes=[0, 1]), 3, 0.0)
    assert sorted(out.track_ids.tolist()) == [1, 2]


def test_finish_reports_the_objects_still_there():
    tracker = IouTracker(min_hits=1)
    _, events = tracker.update(dets([0, 0, 10, 10]), 0, 0.0)
    assert [e.event for e in events] == ["appear"]
    tracker.update(dets([1, 0, 11, 10]), 1, 0.5)
    leave = tracker.finish(1, 0.5)
    assert [(e.event, e.track_id, e.seen_frames, e.duration_s) for e in leave] == [("leave", 1, 2, 0.5)]
    assert leave[0].to_dict()["box"] == [1.0, 0.0, 11.0, 10.0]


def test_bad_settings():
    with pytest.raises(ValueError, match="min_hits"):
        IouTracker(min_hits=0)

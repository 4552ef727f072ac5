"""The threaded pipeline: the same results as a plain loop, every file frame in order, newest-only
hand-over for live sources, errors carried to the consumer."""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from apps.camera.detector import Detector
from apps.camera.pipeline import Handoff, Pipeline
from apps.camera.sources import open_source

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def blazeface(asset):
    return Detector(asset("blazeface_short_range.tflite"))


def results(detector, path, threaded, max_frames=None):
    source = open_source(str(path))
    try:
        return list(Pipeline(detector, source, max_frames, threaded=threaded))
    finally:
        source.close()


def test_threaded_equals_sequential_frame_by_frame(blazeface, face_video):
    threaded = results(blazeface, face_video, True)
    plain = results(blazeface, face_video, False)
    assert [r.frame.index for r in threaded] == list(range(45)) == [r.frame.index for r in plain]
    for a, b in zip(threaded, plain):
        np.testing.assert_array_equal(a.detections.xyxy, b.detections.xyxy)
    assert all(len(r.detections) == 1 for r in threaded[:30])  # the face, in every frame it is in
    assert all(len(r.detections) == 0 for r in threaded[30:])
    assert all(r.latency_s > r.inference_s > 0 for r in threaded)


def test_pinned_stages_run_where_the_plan_says_and_give_the_same_results(blazeface, face_video, monkeypatch):
    import os

    from apps.camera.pinning import pin_plan

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning needs Linux and two CPUs")
    plan, text = pin_plan(1)
    cpus = sorted(os.sched_getaffinity(0))
    others = set(cpus[:-1])
    assert plan == {"infer": {cpus[-1]}, "capture": others, "prepare": others, "caller": others}
    assert text.startswith(f"inference on CPU {cpus[-1]}")
    assert pin_plan(2)[0] is None and "--threads 1" in pin_plan(2)[1]
    seen = {}
    real_infer = Pipeline._infer

    def infer(self, item, detector=None):  # where the inference stage really runs
        seen.setdefault("infer", os.sched_getaffinity(0))
        return real_infer(self, item, detector)

    real_prepare = Pipeline._prepare

    def prepare(self, frame):
        seen.setdefault("prepare", os.sched_getaffinity(0))
        return real_prepare(self, frame)

    monkeypatch.setattr(Pipeline, "_infer", infer)
    monkeypatch.setattr(Pipeline, "_prepare", prepare)
    caller = os.sched_getaffinity(0)
    source = open_source(str(face_video))
    try:
        pipeline = Pipeline(blazeface, source, pin=True)
        pinned, iterating = [], set()
        for result in pipeline:  # the caller's thread decodes: pinned with capture and prepare
            pinned.append(result)
            iterating.add(frozenset(os.sched_getaffinity(0)))
    finally:
        source.close()
    assert pipeline.pinning == text and seen["infer"] == {cpus[-1]} and seen["prepare"] == others
    assert iterating == {frozenset(others)}
    assert os.sched_getaffinity(0) == caller  # the caller's thread gets its own CPUs back
    plain = results(blazeface, face_video, False)
    assert len(pinned) == len(plain) == 45
    for a, b in zip(pinned, plain):
        np.testing.assert_array_equal(a.detections.xyxy, b.detections.xyxy)


def test_max_frames(blazeface, face_video):
    assert len(results(blazeface, face_video, True, max_frames=7)) == 7


def test_live_handoff_keeps_the_newest_and_counts_drops():
    handoff = Handoff(1, latest=True, stop=threading.Event())
    for i in range(5):
        handoff.put(i)
    assert handoff.get() == 4 and handoff.dropped == 4


def test_file_handoff_makes_the_producer_wait():
    handoff = Handoff(2, latest=False, stop=threading.Event())
    put = []
    producer = threading.Thread(target=lambda: [put.append(handoff.put(i)) for i in range(4)])
    producer.start()
    time.sleep(0.3)
    assert len(put) == 2  # waiting for room
    assert [handoff.get() for _ in range(4)] == [0, 1, 2, 3] and handoff.dropped == 0
    producer.join(5)
    assert put == [True] * 4


class Failing(Detector):
    """The real BlazeFace detector, made to fail on its 4th inference (a runtime error mid-run)."""

    calls = 0
    counting = threading.Lock()  # two streams call infer at once

    def infer(self, x):
        with Failing.counting:
            Failing.calls += 1
            fail = Failing.calls == 4
        if fail:
            raise RuntimeError("inference failed on purpose")
        return super().infer(x)


def test_a_stage_error_reaches_the_consumer_and_stops_the_threads(asset, face_video):
    detector = Failing(asset("blazeface_short_range.tflite"))
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="on purpose"):
        results(detector, face_video, True)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


class Slow(Detector):
    """The real BlazeFace detector with inference made slower by a varying sleep, so that two
    streams finish frames out of order (frame n + 1 before frame n)."""

    def infer(self, x):
        time.sleep(0.002 + 0.008 * float(np.random.default_rng().random()))
        return super().infer(x)


def test_two_streams_share_the_frames_and_keep_file_order(asset, face_video, monkeypatch):
    detector = Slow(asset("blazeface_short_range.tflite"))
    plain = results(Detector(asset("blazeface_short_range.tflite")), face_video, False)
    used, finished, lock = {}, [], threading.Lock()
    real_infer = Pipeline._infer

    def infer(self, item, stream=None):
        name = threading.current_thread().name
        used.setdefault(name, set()).add(id(stream.model))
        if name == "infer-0":
            time.sleep(0.02)  # one stream slower than the other: frames finish out of order
        out = real_infer(self, item, stream)
        with lock:
            finished.append(out[0].index)
        return out

    monkeypatch.setattr(Pipeline, "_infer", infer)
    source = open_source(str(face_video))
    try:
        pipeline = Pipeline(detector, source, streams=2)
        two = list(pipeline)
    finally:
        source.close()
    assert pipeline.streams == 2 and pipeline.dropped == 0
    # each stream ran its own interpreter, and both took frames
    assert set(used) == {"infer-0", "infer-1"} and len({m for ids in used.values() for m in ids}) == 2
    assert sorted(finished) == list(range(45)) and finished != sorted(finished)  # the reordering was needed
    assert [r.frame.index for r in two] == list(range(45))  # every frame, in capture order
    for a, b in zip(two, plain):
        np.testing.assert_array_equal(a.detections.xyxy, b.detections.xyxy)


def test_live_results_never_go_back_in_time(blazeface, face_video):
    """Live, with two streams: results wait in a hand-over of two, whose oldest frame (by number,
    not by arrival) is dropped when a third arrives; a frame that finishes after a newer one was
    shown is dropped too. Both count as dropped, and the frames shown only move forward."""
    source = open_source(str(face_video))
    source.spec = replace(source.spec, kind="stream")  # live, as a camera or stream: the pipeline reads spec.live
    try:
        pipeline = Pipeline(blazeface, source, streams=2)  # threads not started: the hand-over is fed here
        assert pipeline.live and pipeline._inferred.latest and pipeline._inferred.size == 2
        for number in (1, 0, 3):  # 0 finished after 1: when 3 arrives, 0 is the oldest waiting
            pipeline._inferred.put((number, ("frame", number)))
        assert pipeline.dropped == 1
        shown = [pipeline._next_inferred() for _ in range(2)]
        assert shown == [("frame", 1), ("frame", 3)] and pipeline.dropped == 1
        for number in (2, 4):  # 2 is older than 3, which was shown: late
            pipeline._inferred.put((number, ("frame", number)))
        assert pipeline._next_inferred() == ("frame", 4) and pipeline.dropped == 2
        for number in (7, 6):  # 6 arrives to a full hand-over and is older than all it holds
            pipeline._inferred.put((number, ("frame", number)))
        pipeline._inferred.put((5, ("frame", 5)))
        assert pipeline.dropped == 3 and list(pipeline._inferred._items) == [(7, ("frame", 7)), (6, ("frame", 6))]
        assert pipeline._next_inferred() == ("frame", 7)  # live shows the newest that arrives
        pipeline._inferred.put((8, ("frame", 8)))
        assert pipeline._next_inferred() == ("frame", 8) and pipeline.dropped == 4  # 6 came late
    finally:
        pipeline.close()
        source.close()


def test_streams_option_is_checked(blazeface, face_video):
    source = open_source(str(face_video))
    try:
        with pytest.raises(ValueError, match="--streams must be a positive integer or 'auto', got 0"):
            Pipeline(blazeface, source, streams=0)
        with pytest.raises(ValueError, match="--streams 2 needs the threaded pipeline"):
            Pipeline(blazeface, source, threaded=False, streams=2)
        pipeline = Pipeline(blazeface, source, pin=True, streams=2)
        assert pipeline.pinning == "not pinned: 2 inference streams share the CPUs"
        pipeline.close()
    finally:
        source.close()


def test_two_streams_infer_at_the_same_time(asset, face_video, monkeypatch):
    """Both streams are inside an inference at once: each of the first two frames waits at a
    barrier for the other, which times out (BrokenBarrierError) if the streams ran in turn."""
    barrier = threading.Barrier(2, timeout=5)
    real_infer = Pipeline._infer

    def infer(self, item, stream=None):
        if item[0].index < 2:
            barrier.wait()
        return real_infer(self, item, stream)

    monkeypatch.setattr(Pipeline, "_infer", infer)
    source = open_source(str(face_video))
    try:
        assert [r.frame.index for r in Pipeline(Detector(asset("blazeface_short_range.tflite")), source,
                                                streams=2)] == list(range(45))
    finally:
        source.close()


def test_an_error_in_one_stream_reaches_the_consumer(asset, face_video):
    Failing.calls = 0
    detector = Failing(asset("blazeface_short_range.tflite"))
    before = threading.active_count()
    source = open_source(str(face_video))
    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            list(Pipeline(detector, source, streams=2))
    finally:
        source.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_a_stalled_stream_does_not_let_the_other_run_far_ahead(asset, face_video, monkeypatch):
    """Frame 0 takes 1 s; meanwhile the other stream may take only a few frames more, so the
    finished frames waiting for frame 0 stay few."""
    waiting = []
    real_infer = Pipeline._infer

    def infer(self, item, stream=None):
        if item[0].index == 0:
            time.sleep(1.0)
        waiting.append(self._taken - self._next_out)
        return real_infer(self, item, stream)

    monkeypatch.setattr(Pipeline, "_infer", infer)
    source = open_source(str(face_video))
    try:
        pipeline = Pipeline(Detector(asset("blazeface_short_range.tflite")), source, streams=2)
        assert [r.frame.index for r in pipeline] == list(range(45))
    finally:
        source.close()
    assert max(waiting) == pipeline._ahead == 6  # reached while frame 0 stalled, never passed

"""``--streams auto``: the rule that adds an inference stream (measured windows, made here with
a clock the test moves), the CPU reading it rests on, and the pipeline adding a stream while it
runs, or not, on a real model and a real video file."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from apps.camera import streams as auto_streams
from apps.camera.streams import AutoStreams, Window, busy_cpu_seconds

pytest.importorskip("cv2")


class Clocks:
    """Wall clock and busy-CPU clock that the test moves by hand."""

    def __init__(self):
        self.wall = 0.0
        self.busy = 0.0

    def tick(self, wall_s: float, busy_cpu_s: float) -> None:
        self.wall += wall_s
        self.busy += busy_cpu_s


def _feed(auto: AutoStreams, clocks: Clocks, frames: int, frame_s: float, inference_s: float, cpus_busy: float,
          streams: int = 1) -> list[int]:
    """Frames that take ``frame_s`` each on one stream (N streams finish N times as many), with the
    CPUs ``cpus_busy`` busy; the frames at which auto said yes."""
    added = []
    for n in range(1, frames + 1):
        clocks.tick(frame_s / streams, frame_s / streams * cpus_busy)
        if auto.observe(inference_s, streams, n):
            auto.added()
            added.append(n)
            streams += 1
    return added


def _auto(cpus=(0, 1)):
    clocks = Clocks()
    return AutoStreams(cpus, clock=lambda: clocks.wall, busy_clock=lambda _: (clocks.busy, "test")), clocks


def test_a_stream_is_added_when_the_model_is_the_bottleneck_and_a_cpu_idles():
    auto, clocks = _auto()
    # 10 ms a frame, 9.8 of them inferring, one of two CPUs busy
    added = _feed(auto, clocks, 200, 0.010, 0.0098, cpus_busy=1.1)
    # the first window starts after the warm-up and lasts 50 frames and half a second
    window_frames = max(auto_streams.WINDOW_FRAMES, round(auto_streams.WINDOW_S / 0.010))
    assert added == [auto_streams.WARMUP_FRAMES + window_frames]
    note = auto.note(2)
    assert note.startswith(f"auto: 2 (1 -> 2 at frame {added[0]} (inference busy 98%, 0.9 of 2 CPUs idle))")


def test_no_stream_when_the_cpus_are_already_busy_or_the_model_waits_for_frames():
    auto, clocks = _auto()
    assert _feed(auto, clocks, 300, 0.010, 0.0098, cpus_busy=1.8) == []  # the model is slow, but no CPU idles
    assert auto.note(1) == "auto: 1 (last window: inference busy 98%, 0.2 of 2 CPUs idle)"
    auto, clocks = _auto()
    assert _feed(auto, clocks, 300, 0.010, 0.004, cpus_busy=0.5) == []  # a CPU idles, but frames come slowly
    assert "inference busy 40%" in auto.note(1)


def test_streams_stop_at_the_cpus_and_at_the_limit():
    auto, clocks = _auto(cpus=(0, 1))
    assert len(_feed(auto, clocks, 2000, 0.010, 0.0098, cpus_busy=0.2)) == 1  # 2 CPUs: 2 streams
    auto, clocks = _auto(cpus=tuple(range(16)))
    added = _feed(auto, clocks, 5000, 0.010, 0.0098, cpus_busy=0.2)
    assert len(added) == auto_streams.MAX_STREAMS - 1
    # after each new stream it waits out a warm-up before measuring again
    assert all(b - a >= auto_streams.WARMUP_FRAMES + auto_streams.WINDOW_FRAMES for a, b in zip(added, added[1:]))


def test_a_short_run_and_a_stopped_auto_say_so():
    auto, clocks = _auto()
    _feed(auto, clocks, 30, 0.010, 0.0098, cpus_busy=0.2)
    assert auto.note(1) == "auto: 1 (too few frames to measure)"
    auto.stop("no more streams: the second interpreter runs elsewhere")
    assert not auto.observe(0.0098, 1, 31)
    assert auto.note(1) == "auto: 1 (no more streams: the second interpreter runs elsewhere)"


def test_window_arithmetic():
    w = Window(frames=100, wall_s=2.0, busy_cpu_s=1.0, inference_s=3.6, streams=2, cpus=2)
    assert w.busy == pytest.approx(0.9) and w.idle_cpus == pytest.approx(1.5)
    assert not w.wants_stream()  # already one stream per CPU
    assert Window(100, 2.0, 5.0, 1.9, 1, 2).idle_cpus == 0.0  # never below zero


def test_busy_cpu_seconds_reads_the_usable_cpus_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  900 0 100 5000 50 0 0 0 0 0\n"
                    "cpu0 300 0 50 2000 10 0 0 0 0 0\n"
                    "cpu1 600 0 50 3000 40 0 0 0 0 0\n"
                    "cpu2 999 0 0 0 0 0 0 0 0 0\n")
    ticks = os.sysconf("SC_CLK_TCK")
    assert busy_cpu_seconds((0, 1), stat) == (pytest.approx(1000 / ticks), "system")
    assert busy_cpu_seconds((1,), stat) == (pytest.approx(650 / ticks), "system")
    seconds, where = busy_cpu_seconds((0,), tmp_path / "missing")
    assert where == "process" and seconds == pytest.approx(time.process_time(), abs=0.5)


# ----- in the pipeline, on a real model and video ------------------------------------------------

def _run(detector, path, frames, **kwargs):
    from apps.camera.pipeline import Pipeline
    from apps.camera.sources import open_source

    source = open_source(str(path), loop=True)
    try:
        pipeline = Pipeline(detector, source, frames, **kwargs)
        return pipeline, list(pipeline)
    finally:
        source.close()


def test_the_pipeline_adds_a_stream_when_inference_holds_everything_up(asset, face_video, monkeypatch):
    """Inference made slow with a sleep (as a slow model would be, but leaving the CPUs idle):
    auto adds a second interpreter mid-run, and every frame still comes out once, in order, with
    the boxes a plain loop gives. Idle CPUs are read from this process's own CPU time here, not
    from /proc/stat, so that other programs on the machine cannot change the outcome."""
    from apps.camera.detector import Detector

    if len(auto_streams.usable_cpus()) < 2:
        pytest.skip("a second stream needs two usable CPUs")
    monkeypatch.setattr(auto_streams, "busy_cpu_seconds", lambda cpus: (time.process_time(), "process"))
    path = asset("blazeface_short_range.tflite")
    plain = [r.detections.xyxy for r in _run(Detector(path), face_video, 45, threaded=False)[1]]
    pipeline, out = _run(_slow(Detector)(path), face_video, 200, streams="auto")
    assert pipeline.streams >= 2, pipeline.streams_note
    assert " -> 2 at frame " in pipeline.streams_note
    assert [r.frame.index for r in out] == list(range(200)) and pipeline.dropped == 0
    for r in out:
        np.testing.assert_array_equal(r.detections.xyxy, plain[r.frame.index % 45])


def test_a_second_interpreter_that_cannot_be_made_leaves_the_run_on_one_stream(asset, face_video, monkeypatch):
    from apps.camera.detector import Detector

    if len(auto_streams.usable_cpus()) < 2:
        pytest.skip("a second stream needs two usable CPUs")
    monkeypatch.setattr(auto_streams, "busy_cpu_seconds", lambda cpus: (time.process_time(), "process"))

    class NoRoom(_slow(Detector)):
        def replica(self):
            raise MemoryError("no room for a second interpreter")

    pipeline, out = _run(NoRoom(asset("blazeface_short_range.tflite")), face_video, 150, streams="auto")
    assert len(out) == 150 and pipeline.streams == 1
    assert pipeline.streams_note == "auto: 1 (no more streams: no room for a second interpreter)"


def _slow(detector_class):
    """The real detector with each inference made 12 ms slower by a sleep (the CPUs stay idle)."""
    class Slow(detector_class):
        def infer(self, x):
            time.sleep(0.012)
            return super().infer(x)

    return Slow


def test_the_pipeline_keeps_one_stream_when_frames_arrive_slower_than_the_model(asset, face_video, monkeypatch):
    from apps.camera.detector import Detector
    from apps.camera.sources import FrameSource

    real_read = FrameSource.read

    def slow_read(self):
        time.sleep(0.012)  # a source slower than BlazeFace: the model waits for frames
        return real_read(self)

    monkeypatch.setattr(FrameSource, "read", slow_read)
    pipeline, out = _run(Detector(asset("blazeface_short_range.tflite")), face_video, 150, streams="auto")
    assert pipeline.streams == 1 and len(out) == 150
    assert pipeline.streams_note.startswith("auto: 1 (last window: inference busy "), pipeline.streams_note


def test_auto_keeps_one_stream_where_more_cannot_help(asset, face_video):
    from apps.camera.detector import Detector
    from apps.camera.pipeline import Pipeline
    from apps.camera.sources import open_source

    detector = Detector(asset("blazeface_short_range.tflite"))
    source = open_source(str(face_video))
    try:
        assert Pipeline(detector, source, threaded=False, streams="auto").streams_note == \
            "auto: 1 (the sequential loop runs one)"
        assert Pipeline(detector, source, pin=True, streams="auto").streams_note == \
            "auto: 1 (--pin keeps inference on one thread)"
        assert Pipeline(detector, source, streams=2).streams_note is None  # a number asked for: nothing to say
    finally:
        source.close()

"""``--streams auto``: the rule that adds an inference stream (measured windows, made here with
a clock the test moves), the CPU reading it rests on, and the pipeline adding a stream while it
runs, or not, on a real model and a real video file."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from apps.camera import streams as auto_streams
from apps.camera.streams import AutoStreams, Window, busy_cpu_seconds, cpu_quota

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
          streams: int = 1, scales: bool = True, drop_every: int = 0) -> list[int]:
    """Frames that take ``frame_s`` each on one stream (N streams finish N times as many, unless
    not ``scales``), with the CPUs ``cpus_busy`` busy and a frame dropped before inference every
    ``drop_every`` frames; the frames at which auto said yes."""
    added, dropped = [], 0
    for n in range(1, frames + 1):
        step = frame_s / streams if scales else frame_s
        clocks.tick(step, step * cpus_busy)
        dropped += 1 if drop_every and n % drop_every == 0 else 0
        if auto.observe(inference_s, streams, n, dropped):
            auto.added()
            added.append(n)
            streams += 1
    return added


def _auto(cpus=(0, 1), **kwargs):
    clocks = Clocks()
    return AutoStreams(cpus, clock=lambda: clocks.wall, busy_clock=lambda _: (clocks.busy, "system"), **kwargs), clocks


def test_a_stream_is_added_when_the_model_is_the_bottleneck_and_a_cpu_idles():
    auto, clocks = _auto()
    # 10 ms a frame, 9.8 of them inferring, one of two CPUs busy
    added = _feed(auto, clocks, 200, 0.010, 0.0098, cpus_busy=1.1)
    # the first window starts after the warm-up and lasts 50 frames and half a second
    window_frames = max(auto_streams.WINDOW_FRAMES, round(auto_streams.WINDOW_S / 0.010))
    assert added == [auto_streams.WARMUP_FRAMES + window_frames]
    assert auto.note(2) == (f"auto: 2 (1 -> 2 at frame {added[0]} (inference busy 98%, 0.9 of 2 CPUs idle "
                            "(/proc/stat), 100 FPS))")


def test_no_stream_when_the_cpus_are_already_busy_or_the_model_waits_for_frames():
    auto, clocks = _auto()
    assert _feed(auto, clocks, 300, 0.010, 0.0098, cpus_busy=1.8) == []  # the model is slow, but no CPU idles
    assert auto.note(1) == "auto: 1 (last window: inference busy 98%, 0.2 of 2 CPUs idle (/proc/stat), 100 FPS)"
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


def test_a_stream_that_gained_too_little_stops_auto():
    auto, clocks = _auto(cpus=tuple(range(8)))
    # the frame rate stays at 100 FPS with a second stream (memory-bound, say): no third one
    added = _feed(auto, clocks, 1000, 0.010, 0.0098, cpus_busy=0.2, scales=False)
    assert len(added) == 1
    assert auto.stopped == "stream 2 gained too little (100 -> 100 FPS)"


def test_streams_and_their_threads_must_fit_the_cpus():
    auto, clocks = _auto(cpus=(0, 1, 2), threads=2)  # a second stream of 2 threads would need 4 CPUs
    assert _feed(auto, clocks, 300, 0.010, 0.0098, cpus_busy=0.2) == []
    auto, clocks = _auto(cpus=tuple(range(8)), quota=2.0)  # docker --cpus=2 on an 8-CPU host
    assert len(_feed(auto, clocks, 2000, 0.010, 0.0098, cpus_busy=0.2)) == 1


def test_a_live_source_gets_a_stream_only_while_frames_are_dropped():
    auto, clocks = _auto(live=True)  # the model keeps up with the camera: nothing dropped
    assert _feed(auto, clocks, 300, 0.010, 0.0098, cpus_busy=0.5) == []
    auto, clocks = _auto(live=True)  # one frame in ten dropped before inference
    added = _feed(auto, clocks, 300, 0.010, 0.0098, cpus_busy=0.5, drop_every=10)
    assert len(added) == 1 and "dropped" in auto.note(2)


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
    # a container that numbers its CPUs 0.. while the affinity mask names the host's: not all found
    assert busy_cpu_seconds((0, 7), stat)[1] == "process"


def test_cpu_quota_reads_cgroup_v2_and_v1(tmp_path):
    top = tmp_path / "proc-top"
    top.write_text("0::/\n")
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path, top) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path, top) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(v1, top) == 2.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(v1, top) is None and cpu_quota(tmp_path / "none", top) is None


def test_cpu_quota_is_the_lowest_on_the_process_cgroup_and_its_ancestors(tmp_path):
    """A quota set on a nested cgroup (systemd CPUQuota=, a container without its own cgroup
    namespace) binds as one on the root does; the lowest along the path wins."""
    own = tmp_path / "proc-cgroup"
    own.write_text("0::/system.slice/edge.service\n")
    (tmp_path / "system.slice" / "edge.service").mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "system.slice" / "cpu.max").write_text("300000 100000\n")
    (tmp_path / "system.slice" / "edge.service" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path, own) == 3.0
    (tmp_path / "system.slice" / "edge.service" / "cpu.max").write_text("125000 100000\n")
    assert cpu_quota(tmp_path, own) == 1.25
    v1 = tmp_path / "v1"
    own.write_text("4:memory:/x\n2:cpu,cpuacct:/docker/abc\n")
    (v1 / "cpu" / "docker" / "abc").mkdir(parents=True)
    (v1 / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(v1, own) == 0.5


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
    threads = []
    pipeline, out = _run(_slow(Detector, threads)(path), face_video, 200, streams="auto")
    assert pipeline.streams >= 2, pipeline.streams_note
    assert " -> 2 at frame " in pipeline.streams_note
    assert threads.count("infer-1") >= 20  # the new stream really took frames
    assert [r.frame.index for r in out] == list(range(200)) and pipeline.dropped == 0
    for r in out:
        np.testing.assert_array_equal(r.detections.xyxy, plain[r.frame.index % 45])


def test_a_stream_added_mid_file_ends_with_the_file(asset, face_video, monkeypatch):
    """No loop, no --max-frames: the 45-frame file ends with two streams running, and every frame
    comes out once, in order (windows made short so that the decision comes early)."""
    from apps.camera.detector import Detector
    from apps.camera.pipeline import Pipeline
    from apps.camera.sources import open_source

    if len(auto_streams.usable_cpus()) < 2:
        pytest.skip("a second stream needs two usable CPUs")
    monkeypatch.setattr(auto_streams, "busy_cpu_seconds", lambda cpus: (time.process_time(), "process"))
    monkeypatch.setattr(auto_streams, "WARMUP_FRAMES", 3)
    monkeypatch.setattr(auto_streams, "WINDOW_FRAMES", 8)
    monkeypatch.setattr(auto_streams, "WINDOW_S", 0.05)
    threads = []
    source = open_source(str(face_video))
    try:
        pipeline = Pipeline(_slow(Detector, threads)(asset("blazeface_short_range.tflite")), source, streams="auto")
        out = list(pipeline)
    finally:
        source.close()
    assert pipeline.streams == 2 and "infer-1" in threads, pipeline.streams_note
    assert [r.frame.index for r in out] == list(range(45)) and pipeline.dropped == 0


def test_a_second_interpreter_that_cannot_be_made_leaves_the_run_on_one_stream(asset, face_video, monkeypatch):
    from apps.camera.detector import Detector

    if len(auto_streams.usable_cpus()) < 2:
        pytest.skip("a second stream needs two usable CPUs")
    monkeypatch.setattr(auto_streams, "busy_cpu_seconds", lambda cpus: (time.process_time(), "process"))

    class NoRoom(_slow(Detector)):
        def replica(self):
            raise MemoryError("no room for a second interpreter")

    pipeline, out = _run(NoRoom(asset("blazeface_short_range.tflite")), face_video, 120, streams="auto")
    assert len(out) == 120 and pipeline.streams == 1
    assert pipeline.streams_note == "auto: 1 (no more streams: no room for a second interpreter)"


def test_results_keep_coming_while_the_new_stream_loads(asset, face_video, monkeypatch):
    """Loading a second interpreter may take seconds for a big model: it happens on a thread of
    its own. Here loading does not finish until 15 more results have come out, which could
    never happen if it ran on the consumer's thread (it would then give up after 10 s and the
    run would stay on one stream); then the stream starts and takes frames."""
    import threading

    from apps.camera.detector import Detector

    if len(auto_streams.usable_cpus()) < 2:
        pytest.skip("a second stream needs two usable CPUs")
    monkeypatch.setattr(auto_streams, "busy_cpu_seconds", lambda cpus: (time.process_time(), "process"))
    shown, threads, during = [0], [], []

    class SlowToLoad(_slow(Detector, threads)):
        def replica(self):
            start = shown[0]
            deadline = time.monotonic() + 10
            while shown[0] < start + 15 and time.monotonic() < deadline:
                time.sleep(0.005)
            during.append((threading.current_thread().name, shown[0] - start))
            if shown[0] < start + 15:
                raise TimeoutError("no results came while loading")
            return super().replica()

    from apps.camera.pipeline import Pipeline
    from apps.camera.sources import open_source

    source = open_source(str(face_video), loop=True)
    try:
        pipeline = Pipeline(SlowToLoad(asset("blazeface_short_range.tflite")), source, 200, streams="auto")
        out = []
        for result in pipeline:
            out.append(result)
            shown[0] += 1
    finally:
        source.close()
    assert during and during[0][0] == "load-stream" and during[0][1] >= 15, during
    assert pipeline.streams == 2 and threads.count("infer-1") >= 20, pipeline.streams_note
    assert [r.frame.index for r in out] == list(range(200)) and pipeline.dropped == 0


def _slow(detector_class, threads: list | None = None):
    """The real detector with each inference made 30 ms slower by a sleep (the CPUs stay idle,
    and reading and preparing a frame stay far quicker even on a loaded machine); ``threads``
    collects the name of the thread of each inference."""
    class Slow(detector_class):
        def infer(self, x):
            if threads is not None:
                threads.append(__import__("threading").current_thread().name)
            time.sleep(0.030)
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
        assert Pipeline(detector, source, pin=True, streams="auto").streams_note == "auto: 1 (off with --pin)"
        assert Pipeline(detector, source, streams=2).streams_note is None  # a number asked for: nothing to say
    finally:
        source.close()


def test_auto_keeps_one_stream_for_a_model_off_the_cpu_or_too_wide_for_it():
    """A GPU or an Edge TPU cannot be had here: a stand-in model object says where it runs."""
    from types import SimpleNamespace

    on_gpu = SimpleNamespace(device="gpu", accelerator="gpu/opencl delegate", threads=1)
    assert auto_streams.why_one_stream(on_gpu, True, False, 2.0) == \
        "the model runs on gpu/opencl delegate, not on the CPU's cores"
    wide = SimpleNamespace(device="cpu", accelerator="cpu/xnnpack x2 threads", threads=2)
    assert auto_streams.why_one_stream(wide, True, False, 1.5) == \
        "a second stream of 2 thread(s) would not fit 1.5 usable CPU(s)"


def test_no_replica_of_a_model_file_that_changed_since_it_was_loaded(asset, tmp_path):
    import shutil

    from apps.camera.detector import Detector

    path = tmp_path / "face.tflite"
    shutil.copy(asset("blazeface_short_range.tflite"), path)
    detector = Detector(path)
    assert detector.replica().model.path == detector.model.path  # unchanged: a second interpreter
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # replaced by a deployment, say
    with pytest.raises(ValueError, match="changed on disk since it was loaded"):
        detector.replica()


def test_auto_pins_the_one_stream_and_releases_every_pinned_thread_for_the_second(asset, face_video, monkeypatch):
    """By default (pin=None) auto pins inference to the last CPU while it runs one stream; when
    it adds a stream, the first stream's thread goes back to every CPU and the new one is not
    pinned. Affinity is read in the inference threads themselves, as they infer."""
    import threading

    from apps.camera.detector import Detector

    cpus = auto_streams.usable_cpus()
    if not hasattr(os, "sched_setaffinity") or len(cpus) < 2:
        pytest.skip("pinning needs Linux and two usable CPUs")
    monkeypatch.setattr(auto_streams, "busy_cpu_seconds", lambda cpus: (time.process_time(), "process"))
    seen = []  # (thread name, its CPUs) per inference

    class Watched(_slow(Detector)):
        def infer(self, x):
            seen.append((threading.current_thread().name, os.sched_getaffinity(0)))
            return super().infer(x)

    caller = os.sched_getaffinity(0)
    pipeline, out = _run(Watched(asset("blazeface_short_range.tflite")), face_video, 200, streams="auto")
    assert pipeline.streams == 2 and len(out) == 200, pipeline.streams_note
    first_new = next(i for i, (name, _) in enumerate(seen) if name == "infer-1")
    before = {frozenset(c) for name, c in seen[:first_new] if name == "infer-0"}
    assert before == {frozenset({cpus[-1]})}  # pinned while alone
    assert all(c == set(cpus) for name, c in seen[first_new:]), seen[first_new:]  # both streams on every CPU
    assert pipeline.pinning.startswith(f"auto: inference on CPU {cpus[-1]}; capture, prepare and decoding on CPU ")
    assert pipeline.pinning.endswith(" while one stream runs; released at frame "
                                     f"{pipeline.pinning.rsplit('frame ', 1)[1].split()[0]} for stream 2")
    assert os.sched_getaffinity(0) == caller

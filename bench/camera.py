"""Camera pipeline benchmark on vtest.avi (768x576, people walking), per detector, side by side in
one run:

* model-only throughput: ``Detector.infer`` back to back on one prepared input (the ceiling),
  invokes over their wall time like every other frame rate here;
* capture-only: OpenCV decoding the file, nothing else (the other ceiling);
* a plain sequential loop as a user writes it: ``cap.read()`` -> ``detector.detect(frame)``;
* the pipelined loop (``apps.camera.run``: threads, tracker, summary), 1 and 2 inference threads,
  each compared with the model-only figure and the plain loop at the same thread count;
* the pipeline with two inference streams (``--streams 2``: two single-threaded interpreters
  taking frames in turn), against the model alone on one and on two streams;
* capture-to-result latency p50 / p99, from a live source (ffmpeg streaming vtest at 10 fps over
  HTTP MJPEG on loopback; the latency of a file run is mostly frames waiting in full queues);
* a long run on the looping file with RSS after the first 1,000 frames and at the end.

    python bench/camera.py --frames 795 --long-frames 50000        # the full figures
    python bench/camera.py --frames 300 --long-frames 5000         # a short run

``run(models) -> markdown`` is what ``bench/run.py`` calls.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.camera_long import VIDEO, live_latency, long_run_alone  # noqa: E402


def model_only_fps(detector, runs: int) -> float:
    """Throughput of the model alone: ``runs`` invokes back to back on one input, divided by their
    wall time, counted as every other figure here is (frames over the time they took), so the
    occasional slow invoke weighs on it as it does on the pipeline's frame rate."""
    import cv2

    capture = cv2.VideoCapture(VIDEO)
    ok, frame = capture.read()
    capture.release()
    x, _ = detector.prepare(frame)
    for _ in range(20):
        detector.infer(x)
    start = time.perf_counter()
    for _ in range(runs):
        detector.infer(x)
    return runs / (time.perf_counter() - start)


def model_streams_fps(detectors, runs: int) -> float:
    """Throughput of the model alone on ``len(detectors)`` interpreters invoked back to back, each
    on its own thread (``runs`` invokes each): the ceiling for the pipeline's ``--streams``."""
    import threading

    import cv2

    capture = cv2.VideoCapture(VIDEO)
    ok, frame = capture.read()
    capture.release()
    x, _ = detectors[0].prepare(frame)
    for detector in detectors:
        for _ in range(20):
            detector.infer(x)
    barrier = threading.Barrier(len(detectors) + 1)

    def work(detector):
        barrier.wait()
        for _ in range(runs):
            detector.infer(x)

    threads = [threading.Thread(target=work, args=(d,)) for d in detectors]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(detectors) * runs / (time.perf_counter() - start)


def capture_only_fps(frames: int) -> float:
    import cv2

    capture = cv2.VideoCapture(VIDEO)
    start, n = time.perf_counter(), 0
    while n < frames:
        ok, _ = capture.read()
        if not ok:
            break
        n += 1
    capture.release()
    return n / (time.perf_counter() - start)


def sequential_fps(detector, frames: int) -> float:
    """The loop a user writes first: read, detect (prepare + run + decode), repeat."""
    import cv2

    capture = cv2.VideoCapture(VIDEO)
    start, n = time.perf_counter(), 0
    while n < frames:
        ok, frame = capture.read()
        if not ok:
            break
        detector.detect(frame)
        n += 1
    capture.release()
    return n / (time.perf_counter() - start)


def stage_ms(detector, frames: int) -> dict:
    """Mean milliseconds per frame (wall clock) of each stage, measured in the plain loop (caches as cold
    as in the pipeline, where decoding and preparing run between inferences), and what they
    allow on this machine's cores: the pipeline can go no faster than its slowest stage (the
    inference) nor than all the work spread evenly over the cores."""
    import cv2

    capture = cv2.VideoCapture(VIDEO)
    spent = {"read": 0.0, "prepare": 0.0, "infer": 0.0, "decode": 0.0}
    n = 0
    while n < frames:
        t0 = time.perf_counter()
        ok, frame = capture.read()
        t1 = time.perf_counter()
        if not ok:
            break
        x, geometry = detector.prepare(frame)
        t2 = time.perf_counter()
        outputs = detector.infer(x)
        t3 = time.perf_counter()
        detector.decode(outputs, geometry)
        t4 = time.perf_counter()
        for key, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[key] += dt
        n += 1
    capture.release()
    if n == 0:
        raise RuntimeError(f"{VIDEO}: OpenCV read no frame")
    ms = {key: 1e3 * value / n for key, value in spent.items()}
    total = sum(ms.values())
    ms["bound_fps"] = min(1e3 / ms["infer"], 1e3 * _cores() / total)
    ms["streams_bound_fps"] = 1e3 * _cores() / total  # with two streams inference is no longer one stage
    return ms


def _cores() -> int:
    """The CPUs this process may run on."""
    from apps.camera.streams import usable_cpus

    return len(usable_cpus())


def pipeline_summary(model, frames: int, threads: int, source: str = VIDEO, pin: bool | None = None,
                     streams: int | str = 1):
    from apps.camera import DetectOptions, run

    return run(model, source, DetectOptions(max_frames=frames, threads=threads, progress=False, device="cpu", pin=pin,
                                            streams=streams))


def run(models: list[tuple[str, str]], frames: int = 795, long_frames: int = 50_000, live_frames: int = 100,
        progress=print, rounds_per_model: int = 3) -> str:
    """Markdown with the figures for each (label, model path)."""
    from apps.camera.detector import Detector

    rows, two_rows, stream_rows, bound_rows, latency_rows, long_rows, auto_rows = [], [], [], [], [], [], []
    target_rows = []
    pinning = "not measured"
    capture = capture_only_fps(frames)
    progress(f"capture only: {capture:.1f} FPS")
    for label, path in models:
        detector = Detector(path, device="cpu", threads=1)
        detector2 = Detector(path, device="cpu", threads=2)
        pair = [detector, detector.replica()]
        # this machine's speed drifts by tens of percent within minutes: each round measures
        # every variant back to back, and the ratios are medians of the rounds' own ratios
        rounds = []
        for _ in range(rounds_per_model):
            model_fps = model_only_fps(detector, runs=max(200, frames))
            plain = sequential_fps(detector, frames)
            p1, pinned = pipeline_summary(path, frames, 1), pipeline_summary(path, frames, 1, pin=True)
            stages = stage_ms(detector, frames)
            # the same three at 2 inference threads: the pipeline's 2-thread figure against a
            # plain loop that also gives the interpreter both cores
            model2, plain2 = model_only_fps(detector2, runs=max(200, frames)), sequential_fps(detector2, frames)
            p2 = pipeline_summary(path, frames, 2)
            # two single-threaded streams: the model alone on both, then the pipeline
            streams2, s2 = model_streams_fps(pair, runs=max(100, frames // 2)), pipeline_summary(path, frames, 1, streams=2)
            auto = pipeline_summary(path, frames, 1, streams="auto")  # the default: streams as measured
            rounds.append({"auto": auto.fps, "auto_note": f"{auto.streams_auto}; pinning: {auto.pinning}", "streams2": streams2, "s2": s2.fps, "model": model_fps, "plain": plain, "p1": p1.fps, "pinned": pinned.fps,
                           "latency": (p1.latency_ms_p50, p1.latency_ms_p99), "pinning": pinned.pinning,
                           "bound": stages["bound_fps"], "stages": stages, "sbound": stages["streams_bound_fps"],
                           "model2": model2, "plain2": plain2, "p2": p2.fps})

        def med(key, over=None):
            return float(np.median([r[key] / (r[over] if over else 1.0) for r in rounds]))

        latency = rounds[len(rounds) // 2]["latency"]
        rows.append(f"| {label} | {detector.decoder_name} / {detector.resize} | {med('model'):.1f} | "
                    f"{med('plain'):.1f} | {med('p1'):.1f} | {med('pinned'):.1f} | {med('p2'):.1f} | "
                    f"{med('p1', 'model'):.2f}x | {med('pinned', 'model'):.2f}x | {med('p1', 'plain'):.2f}x | "
                    f"{med('pinned', 'plain'):.2f}x | {latency[0]:.1f} / {latency[1]:.1f} |")
        pinning = rounds[0]["pinning"]
        progress(rows[-1])
        two_rows.append(f"| {label} | {med('model2'):.1f} | {med('plain2'):.1f} | {med('p2'):.1f} | "
                        f"{med('p2', 'model2'):.2f}x | {med('p2', 'plain2'):.2f}x | {med('model2', 'model'):.2f}x |")
        progress(two_rows[-1])
        stream_rows.append(f"| {label} | {med('model'):.1f} | {med('streams2'):.1f} | {med('plain'):.1f} | "
                           f"{med('plain2'):.1f} | {med('s2'):.1f} | {med('s2', 'model'):.2f}x | "
                           f"{med('s2', 'streams2'):.2f}x | {med('s2', 'plain'):.2f}x | {med('s2', 'plain2'):.2f}x |")
        progress(stream_rows[-1])
        middle = sorted(rounds, key=lambda r: r["auto"])[len(rounds) // 2]
        auto_rows.append(f"| {label} | {med('auto'):.1f} | {med('auto', 'model'):.2f}x | {med('auto', 'plain'):.2f}x | "
                         f"{med('auto', 'plain2'):.2f}x | {middle['auto_note']} |")
        progress(auto_rows[-1])
        stage = {key: float(np.median([r["stages"][key] for r in rounds])) for key in rounds[0]["stages"]}
        total = sum(stage[k] for k in ("read", "prepare", "infer", "decode"))
        bound_rows.append(f"| {label} | {stage['read']:.2f} | {stage['prepare']:.2f} | {stage['infer']:.2f} | "
                          f"{stage['decode']:.2f} | {total:.2f} | {100 * (total - stage['infer']) / total:.0f}% | "
                          f"{med('bound'):.1f} | {med('p1', 'bound'):.2f}x | {med('pinned', 'bound'):.2f}x | "
                          f"{med('bound', 'model'):.2f}x | {med('bound', 'plain'):.2f}x | "
                          f"{med('sbound'):.1f} | {med('s2', 'sbound'):.2f}x |")
        progress(bound_rows[-1])
        target = [f"{_verdict(med('auto', 'model'), 0.9)} | {_verdict(med('auto', 'plain'), 1.3)} | "
                  f"{_verdict(med('p1', 'model'), 0.9)} | {_verdict(med('p1', 'plain'), 1.3)} | "
                  f"{med('bound', 'plain'):.2f}x | {_verdict(med('s2', 'plain'), 1.3)}"]
        live = live_latency(path, live_frames) if live_frames else None
        if live is not None:
            latency_rows.append(f"| {label} | {live.frames} | {live.fps:.1f} | {live.dropped} | "
                                f"{live.latency_ms_p50:.1f} | {live.latency_ms_p99:.1f} | {live.inference_ms_p50:.2f} |")
            progress(latency_rows[-1])
        if long_frames:
            run = long_run_alone(path, long_frames)
            long_rows.append(f"| {label} | {run.frames} | {run.fps:.1f} | {run.rss_1000:.1f} | {run.peak_1000:.1f} | "
                             f"{run.rss_end:.1f} | {run.low:.1f} | {run.peak:.1f} | {100 * run.peak_vs_rss_1000:+.1f}% | "
                             f"{100 * run.peak_vs_peak_1000:+.1f}% | {run.trend_mib_per_10k:+.2f} |")
            progress(long_rows[-1])
            target.append("not measured (under 1,000 frames)" if run.rss_1000 != run.rss_1000 else
                          f"{100 * run.peak_vs_peak_1000:+.1f}% ({'holds' if run.peak_vs_peak_1000 <= 0.05 else 'misses'}); "
                          f"against the one sample at frame 1,000: {100 * run.peak_vs_rss_1000:+.1f}%")
        target_rows.append(f"| {label} | {' | '.join(target + ['not run'] * (2 - len(target)))} |")
    text = f"""## Camera pipeline (`edgepilot detect`) on vtest.avi

768x576 video, {frames} frames, CPU, inference on 1 thread unless said. OpenCV decodes the file
alone at **{capture:.1f} FPS** on this machine: no pipeline on it can go faster. "Model only" is
`Detector.infer` back to back on one prepared frame. Every FPS figure is frames (or invokes)
over the wall time they took. "Plain loop" is
`cap.read()` then `detector.detect(frame)` in one thread; "pipeline" is `apps.camera.run`
(capture, prepare and inference on their own threads, decoding, tracking and the summary on the
caller's); "pinned" is the same with `--pin` ({pinning}). The machine's speed drifts by tens
of percent within minutes, so each of {rounds_per_model} rounds measures model, plain loop, pipeline
and pinned pipeline back to back: FPS are medians over the rounds, ratios are medians of each
round's own ratio. File latency is capture to detections, mostly time spent waiting in the
bounded queues (every frame of a file is processed).

| model | decoder / resize | model only FPS | plain loop FPS | pipeline FPS (1 thr) | pinned FPS | pipeline FPS (2 thr) | pipeline / model | pinned / model | pipeline / plain | pinned / plain | file latency p50 / p99 ms |
|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

The same at 2 inference threads (the interpreter's `num_threads`), each variant measured in the
same rounds: the plain loop here also gives the interpreter both cores, as a user who found the
threads option would.

| model | model only FPS (2 thr) | plain loop FPS (2 thr) | pipeline FPS (2 thr) | pipeline / model | pipeline / plain | model 2 thr / 1 thr |
|---|---|---|---|---|---|---|
{chr(10).join(two_rows)}

Two inference streams (`--streams 2 --threads 1`): two interpreters of the model, each on
one thread, take frames in turn, and results still come out in order. "Model on 2 streams" runs
the model alone on two interpreters at once, each on its own thread: the ceiling for this
pipeline. The plain loops are those of the tables above (1 and 2 interpreter threads).

| model | model only FPS (1 thr) | model on 2 streams FPS | plain loop FPS (1 thr) | plain loop FPS (2 thr) | pipeline FPS (2 streams) | pipeline / model (1 thr) | pipeline / model on 2 streams | pipeline / plain (1 thr) | pipeline / plain (2 thr) |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(stream_rows)}

The default, `--streams auto`: the pipeline starts with one single-threaded stream, pinned as
`--pin` does (`apps/camera/pinning.py`), and adds a stream while the model is the bottleneck and
a CPU idles (`apps/camera/streams.py`), releasing the pinning then; so on a {frames}-frame file
the first part always runs on one pinned stream. The last column is what the run's summary said
(`streams_auto` and `pinning`) in the middle round.

| model | pipeline FPS (auto) | pipeline / model (1 thr) | pipeline / plain (1 thr) | pipeline / plain (2 thr) | what auto did |
|---|---|---|---|---|---|
{chr(10).join(auto_rows)}

Where the time goes: milliseconds per frame of each stage (wall clock; reading includes the
file's I/O), measured in the plain loop, where decoding and preparing run between inferences and
cool the caches as they do in the pipeline ("model only" above runs one input back to back). No
pipeline can beat its slowest stage, the inference, or all the work spread evenly over the
{_cores()} cores. The bound is the lower
of the two, and the pipeline / bound columns compare the pipeline with it. The bound falls below the
model-only figure for two reasons, both in the table. First, the work outside the model takes its
share of each frame's CPU time: decoding the 768x576 video, preparing the input and decoding the
boxes. Second, inference runs slower between those stages than back to back. Where bound / model
only is under 0.9x, the issue's 0.9x of model-only cannot be reached on this machine, however the
stages are arranged. The last column is the same limit against the plain loop: overlapping the
stages saves at most the work outside the model, so where the model takes most of each frame
(bound / plain under 1.3x), the issue's 1.3x of the plain loop is out of reach with one inference
thread; the 2-thread table above shows what giving the interpreter both cores adds. With two
inference streams the inference is no longer a single stage, and only the second limit holds:
the last two columns give it and the 2-stream pipeline against it.

| model | read ms | prepare ms | infer ms | decode ms | total ms | outside the model | {_cores()}-core bound FPS | pipeline / bound | pinned / bound | bound / model only | bound / plain | bound with 2 streams FPS | 2-stream pipeline / its bound |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(bound_rows)}
"""
    text += f"""
Against the issue's targets, from the tables in this section: the pipeline at >= 0.9x the model
alone and >= 1.3x the one-thread plain loop, with the default options (`--streams auto`) and
with one stream, and a long run's peak RSS within 5% of its RSS after
1,000 frames (peak against peak; the long-run table below says why, and gives the peak against
one RSS sample too). Where the one-stream figure misses 1.3x, the bound / plain column says
whether any one-stream arrangement could reach it on this machine.

| model | default / model (>= 0.9x) | default / plain (>= 1.3x) | 1 stream / model (>= 0.9x) | 1 stream / plain (>= 1.3x) | bound / plain, 1 stream | `--streams 2` / plain (>= 1.3x) | long-run peak vs the first 1,000 frames (<= 5%) |
|---|---|---|---|---|---|---|---|
{chr(10).join(target_rows)}
"""
    if latency_rows:
        text += f"""
Live source: ffmpeg streams vtest.avi in real time (10 fps) as HTTP MJPEG on loopback; the app
processes the newest frame. Latency = capture (frame decoded by OpenCV) to decoded detections.

| model | frames | FPS | dropped | latency p50 ms | latency p99 ms | inference p50 ms |
|---|---|---|---|---|---|---|
{chr(10).join(latency_rows)}
"""
    if long_rows:
        text += f"""
Long run: vtest.avi looping (`--loop`), tracking on, JSON rows built per frame; RSS in MiB, of a
fresh process that runs only this (`python -m bench.camera_long MODEL FRAMES`), not of the one
that made the other measurements. RSS is sampled every 25 frames. "Peak, frames 100-1,000" is
the highest over those frames (from frame 100 the model is loaded and every stage has run),
"lowest" and "peak after 1,000" the extremes from frame 1,000 on; each peak also takes the
kernel's high-water mark over its window. "Trend" is the least-squares slope of the samples
from frame 1,000 on. A
single RSS sample is a poor baseline: up to about ten 768x576 frames (1.3 MiB each) sit between
the stages at any moment, and the allocator keeps or returns freed ones as it goes, so RSS swings
between the lowest and the peak column, and a sample at frame 1,000 lands anywhere in that
swing. The issue's 5% is therefore checked peak against peak, the trend is what shows
growth, and the peak against the single sample is given beside them.

| model | frames | FPS | RSS at frame 1,000 | peak, frames 100-1,000 | RSS at end | lowest after 1,000 | peak after 1,000 | peak vs RSS at 1,000 | peak vs peak of 100-1,000 | trend, MiB per 10k frames |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(long_rows)}
"""
    return text


def _verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x ({'holds' if ratio >= target else 'misses'})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", metavar="LABEL=PATH",
                        help="a detector to measure (default: BlazeFace short range)")
    parser.add_argument("--frames", type=int, default=795)
    parser.add_argument("--long-frames", type=int, default=50_000)
    parser.add_argument("--live-frames", type=int, default=100)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    import assets

    models = [tuple(m.split("=", 1)) for m in args.model or []] or [
        ("BlazeFace short range (fp32)", str(assets.fetch("blazeface_short_range.tflite")))]
    print(run(models, args.frames, args.long_frames, args.live_frames,
              progress=lambda m: print(m, file=sys.stderr, flush=True)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())

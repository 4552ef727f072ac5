"""The camera benchmark's live and long runs: capture-to-result latency from a live source (ffmpeg
streaming vtest.avi in real time over HTTP MJPEG on loopback), and a long run on the looping file
with its RSS. ``bench/camera.py`` puts both in its report.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_latency(model, frames: int):
    """Run on vtest streamed live by ffmpeg (10 fps, real time); None without ffmpeg."""
    from apps.camera import DetectOptions, run
    from apps.camera.sources import SourceError

    if shutil.which("ffmpeg") is None:
        return None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    ffmpeg = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", VIDEO,
                               "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1", url],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # -listen 1 serves one client, so no probing connection: the run itself retries while
        # ffmpeg is still starting (a refused connection does not use up its one client)
        for attempt in range(20):
            time.sleep(0.5)
            try:
                return run(model, url, DetectOptions(max_frames=frames, threads=1, progress=False, device="cpu"))
            except SourceError:
                if attempt == 19 or ffmpeg.poll() is not None:
                    raise
    finally:
        ffmpeg.kill()
        ffmpeg.wait(5)


def _reset_peak_rss() -> bool:
    """Start VmHWM afresh (``5`` into /proc/self/clear_refs, Linux >= 4.0), so the peak is this
    run's and not that of the measurements made earlier in the same process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trend_mib_per_10k(samples: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS against frames, in MiB per 10,000 frames: growth shows here
    whatever the RSS does between two samples."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mean_f = sum(f for f, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    spread = sum((f - mean_f) ** 2 for f, _ in samples)
    return 1e4 * sum((f - mean_f) * (r - mean_r) for f, r in samples) / spread if spread else float("nan")


@dataclass(frozen=True)
class LongRun:
    """A long run's memory, in MiB. ``rss_1000`` is one sample of RSS at frame 1,000; ``peak_1000``
    the peak of frames 100 to 1,000 (once the model is loaded and every stage has run); ``low``
    and ``peak`` the lowest and highest RSS from frame 1,000 on; ``trend_mib_per_10k`` the slope
    of the RSS samples from frame 1,000 on."""

    frames: int
    fps: float
    rss_1000: float
    peak_1000: float
    rss_end: float
    low: float
    peak: float
    trend_mib_per_10k: float
    tenths: tuple = ()  # (lowest, median, highest) RSS of each tenth of the samples: does it settle?

    @property
    def peak_vs_rss_1000(self) -> float:
        """Peak after frame 1,000 against the one sample at frame 1,000, as a fraction."""
        return self.peak / self.rss_1000 - 1

    @property
    def peak_vs_peak_1000(self) -> float:
        """Peak after frame 1,000 against the peak of frames 100 to 1,000, as a fraction."""
        return self.peak / self.peak_1000 - 1


def long_run(model, frames: int, every: int = 25) -> LongRun:
    """A long run on the looping file, with tracking and the JSON rows built as `edgepilot detect
    --json` does. RSS is sampled every ``every`` frames; each window's peak is the larger of its
    samples and the kernel's VmHWM since the window began (reset at frames 100 and 1,000). VmHWM
    alone misses peaks: the kernel updates it only now and then, so it can read below a sample
    taken since the reset.

    Why two baselines: the frames in flight (up to about ten 768x576 frames between the stages'
    queues) and the allocator's free lists make RSS swing by several MiB from one moment to the
    next, so one sample at frame 1,000 may sit anywhere in that swing. The peak of frames 100 to
    1,000 is the like-for-like baseline for a later peak, and the trend says whether anything grows."""
    from apps.camera import DetectOptions, detect_stream

    start, n, rss_1000, peak_1000 = time.perf_counter(), 0, float("nan"), float("nan")
    first: list[float] = []  # RSS samples of frames 100 to 1,000
    samples: list[tuple[int, float]] = []  # (frame, RSS) from frame 1,000 on
    hwm = False
    # one stream: --streams auto may add an interpreter at any frame, a step in RSS that is no leak
    options = DetectOptions(max_frames=frames, loop=True, device="cpu", streams=1)
    for result in detect_stream(model, VIDEO, options, track=True):
        result.detections.to_dicts()
        n += 1
        if n == 100:
            hwm = _reset_peak_rss()
        if 100 <= n < 1000 and n % every == 0:
            first.append(_rss_mib()[0])
        if n == 1000:
            rss_1000, kernel_peak = _rss_mib()
            peak_1000 = max(first + [rss_1000, kernel_peak if hwm else 0.0])
            hwm = _reset_peak_rss()
        if n >= 1000 and n % every == 0:
            samples.append((n, _rss_mib()[0]))
    rss_end, kernel_peak = _rss_mib()
    peak = max([rss for _, rss in samples] + [rss_end, kernel_peak if hwm else 0.0])
    low = min((rss for _, rss in samples), default=float("nan"))
    return LongRun(n, n / (time.perf_counter() - start), rss_1000, peak_1000, rss_end, low, peak,
                   _trend_mib_per_10k(samples), _tenths([rss for _, rss in samples]))


def _tenths(values: list[float]) -> tuple:
    """(lowest, median, highest) of each tenth of ``values``, in order."""
    if len(values) < 10:
        return ()
    cuts = [round(i * len(values) / 10) for i in range(11)]
    parts = [sorted(values[a:b]) for a, b in zip(cuts, cuts[1:])]
    return tuple((part[0], part[len(part) // 2], part[-1]) for part in parts)


def long_run_alone(model, frames: int, timeout_s: float = 7200) -> LongRun:
    """:func:`long_run` in a fresh Python process, so its RSS is the app's own. In the process that
    ran the other measurements (``make bench`` runs every section in one) the libraries they loaded
    (TensorFlow for the recipes) and the memory their allocators keep would fill the baseline, and
    the growth the target is about would shrink to nothing against it."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "bench.camera_long", str(model), str(frames)], cwd=root,
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"long run of {model} failed: {done.stderr.strip()[-800:]}")
    fields = json.loads(done.stdout.strip().splitlines()[-1])
    return LongRun(**dict(fields, tenths=tuple(tuple(t) for t in fields.get("tenths", ()))))


if __name__ == "__main__":  # python -m bench.camera_long MODEL FRAMES: one long run, as JSON
    print(json.dumps(asdict(long_run(sys.argv[1], int(sys.argv[2])))))

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


def long_run(model, frames: int) -> tuple[int, float, float, float, float]:
    """(frames, fps, RSS after 1,000 frames, RSS at the end, peak RSS from frame 1,000 on) on the
    looping file, with tracking and the JSON rows built as `edgepilot detect --json` does. The
    peak is the larger of RSS sampled every 250 frames and the kernel's VmHWM since the reset at
    frame 1,000 (which catches a spike between samples)."""
    from apps.camera import DetectOptions, detect_stream

    start, n, rss_1000, sampled = time.perf_counter(), 0, float("nan"), 0.0
    hwm = False
    for result in detect_stream(model, VIDEO, DetectOptions(max_frames=frames, loop=True, device="cpu"), track=True):
        result.detections.to_dicts()
        n += 1
        if n == 1000:
            rss_1000 = _rss_mib()[0]
            hwm = _reset_peak_rss()
        if n >= 1000 and n % 250 == 0:
            sampled = max(sampled, _rss_mib()[0])
    rss_end, peak = _rss_mib()
    peak = max(sampled, rss_end, peak if hwm else 0.0)
    return n, n / (time.perf_counter() - start), rss_1000, rss_end, peak


def long_run_alone(model, frames: int, timeout_s: float = 7200) -> tuple[int, float, float, float, float]:
    """:func:`long_run` in a fresh Python process, so its RSS is the app's own. In the process that
    ran the other measurements (``make bench`` runs every section in one) the libraries they loaded
    (TensorFlow for the recipes) and the memory their allocators keep would fill the baseline, and
    the growth the target is about would shrink to nothing against it."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "bench.camera_long", str(model), str(frames)], cwd=root,
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"long run of {model} failed: {done.stderr.strip()[-800:]}")
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":  # python -m bench.camera_long MODEL FRAMES: one long run, as JSON
    print(json.dumps(long_run(sys.argv[1], int(sys.argv[2]))))

"""``--streams auto`` (the default): add an inference stream while the model is the bottleneck
and a CPU sits idle.

One single-threaded interpreter caps the pipeline at the model's own speed: when the model takes
most of each frame, a second core waits while the first infers (on 2 cores the benchmark's fp32
detector reached 1.25x a plain loop with one stream and 1.97x with two; docs/benchmarks.md).
When reading and preparing frames take as long as the model (BlazeFace on a 768x576 video), the
cores are already busy and a second interpreter only competes with them. Which case holds depends
on the model, the source and the device, so the pipeline measures it while it runs instead of
guessing: over windows of at least ``WINDOW_FRAMES`` frames and ``WINDOW_S`` seconds (after
``WARMUP_FRAMES`` frames of start-up) it adds a stream when

* the inference streams were inferring for at least ``BUSY`` of the window on average (frames
  wait for the model, not the other way round);
* at least ``IDLE_CPUS`` of a CPU, summed over the CPUs this process may use, sat idle (read
  from ``/proc/stat`` for those CPUs, so another program's load counts too; this process's own
  CPU time where ``/proc/stat`` does not list them or a cgroup CPU quota applies);
* one more stream of ``threads`` interpreter threads still fits the usable CPUs (and the quota);
* for a live source, frames were being dropped (the model is slower than the camera, not just
  keeping up with it);
* the stream added before, if any, raised the frame rate by at least ``GAIN``.

It never goes past ``MAX_STREAMS`` and never removes a stream. :meth:`AutoStreams.note` says
what was decided and on which measurement, for the run's summary.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"
WARMUP_FRAMES = 20  # skipped after the start and after each new stream (loading, cold caches)
WINDOW_FRAMES = 50
WINDOW_S = 0.5  # 50 of /proc/stat's 10 ms ticks per CPU: 2% of a CPU
BUSY = 0.85
IDLE_CPUS = 0.6
LIVE_DROPS = 0.05  # live sources: the share of the window's frames dropped before inference
GAIN = 1.10  # a stream that did not raise the frame rate by this much stops auto
MAX_STREAMS = 4  # each stream holds its own interpreter and tensor arena


def usable_cpus() -> tuple[int, ...]:
    """The CPU numbers this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def cpu_quota(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs' worth of time a cgroup quota allows this process (docker --cpus, systemd
    CPUQuota=), or None: the lowest quota on the process's own cgroup (from ``own``) and its
    ancestors, cgroup v2 or v1."""
    v2, v1 = "/", "/"
    try:
        for line in own.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                v2 = path
            elif "cpu" in controllers.split(","):
                v1 = path
    except (OSError, ValueError):
        pass
    quotas = []
    for folder in _with_ancestors(root, v2):  # cgroup v2: "max 100000" or "200000 100000"
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError):
            pass
    for folder in _with_ancestors(root / "cpu", v1):  # cgroup v1
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            if quota > 0:
                quotas.append(quota / int((folder / "cpu.cfs_period_us").read_text()))
        except (OSError, ValueError):
            pass
    return min(quotas) if quotas else None


def _with_ancestors(root: Path, path: str) -> list[Path]:
    """``root/path`` and each folder above it up to ``root`` itself."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def busy_cpu_seconds(cpus: tuple[int, ...], stat: Path = Path("/proc/stat")) -> tuple[float, str]:
    """Seconds the given CPUs have spent busy (any process) since boot, and where that came
    from: ``"system"``, or ``"process"`` (this process's own CPU time) where ``/proc/stat`` is
    missing or does not list every one of them (a container that renumbers CPUs)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        busy, found = 0, 0
        wanted = {f"cpu{n}" for n in cpus}
        for line in stat.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] in wanted:
                # user nice system idle iowait irq softirq steal (guest time is inside user and nice)
                values = [int(v) for v in fields[1:9]]
                busy += sum(values) - values[3] - (values[4] if len(values) > 4 else 0)
                found += 1
        if found == len(cpus):
            return busy / ticks, "system"
    except (OSError, ValueError, IndexError, AttributeError):  # AttributeError: no os.sysconf (Windows)
        pass
    return _own_cpu_seconds(cpus)


def _own_cpu_seconds(cpus: tuple[int, ...]) -> tuple[float, str]:
    """This process's CPU time, all its threads (``cpus`` unused: the same call as :func:`busy_cpu_seconds`)."""
    return time.process_time(), "process"


@dataclass(frozen=True)
class Window:
    """One measuring window of a running pipeline."""

    frames: int
    wall_s: float
    busy_cpu_s: float  # CPU seconds used on the usable CPUs over the window
    inference_s: float  # summed inference time of the window's frames
    streams: int
    cpus: float  # usable CPUs (or the quota, if lower)
    threads: int = 1  # interpreter threads per stream
    dropped: int = 0  # frames dropped before inference during the window (live sources)
    source: str = "system"  # where busy_cpu_s came from

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def busy(self) -> float:
        """The fraction of the window the inference streams spent inferring, on average."""
        return self.inference_s / (self.wall_s * self.streams) if self.wall_s > 0 else 0.0

    @property
    def idle_cpus(self) -> float:
        return max(0.0, self.cpus - self.busy_cpu_s / self.wall_s) if self.wall_s > 0 else 0.0

    def wants_stream(self, live: bool = False) -> bool:
        fits = (self.streams + 1) * self.threads <= self.cpus and self.streams < MAX_STREAMS
        behind = not live or self.dropped >= LIVE_DROPS * (self.frames + self.dropped)
        return fits and behind and self.busy >= BUSY and self.idle_cpus >= IDLE_CPUS

    def describe(self) -> str:
        text = (f"inference busy {self.busy:.0%}, {self.idle_cpus:.1f} of {self.cpus:g} CPUs idle "
                f"({'/proc/stat' if self.source == 'system' else 'own CPU time'}), {self.fps:.0f} FPS")
        return text + (f", {self.dropped} dropped" if self.dropped else "")


class AutoStreams:
    """Decides, one result at a time, when the pipeline should add an inference stream."""

    def __init__(self, cpus: tuple[int, ...] | None = None, clock=time.perf_counter, busy_clock=None,
                 threads: int = 1, live: bool = False, quota: float | None = None):
        self.cpus = cpus or usable_cpus()
        self.capacity = min(len(self.cpus), quota) if quota else float(len(self.cpus))
        self.threads, self.live = max(1, threads), live
        if busy_clock is None and self.capacity < len(self.cpus):  # the quota binds before the CPUs idle
            busy_clock = _own_cpu_seconds
        self._clock, self._busy_clock = clock, busy_clock or busy_cpu_seconds
        self._since_change = 0
        self._start: tuple[float, float, str, int] | None = None
        self._frames = 0
        self._inference_s = 0.0
        self.last: Window | None = None
        self.changes: list[str] = []  # each stream added, with the measurement that asked for it
        self._pending = ""
        self._before: Window | None = None  # the window that asked for the last stream
        self.stopped: str | None = None

    def observe(self, inference_s: float, streams: int, frame: int, dropped: int = 0) -> bool:
        """Count one result (``frame``: its capture index; ``dropped``: frames dropped before
        inference so far); True when a stream should be added now."""
        if self.stopped is not None:
            return False
        self._since_change += 1
        if self._since_change < WARMUP_FRAMES:
            return False
        if self._start is None:
            self._start = (self._clock(), *self._busy_clock(self.cpus), dropped)
            self._frames, self._inference_s = 0, 0.0
            return False
        self._frames += 1
        self._inference_s += inference_s
        now = self._clock()
        if self._frames < WINDOW_FRAMES or now - self._start[0] < WINDOW_S:
            return False
        busy_s, source = self._busy_clock(self.cpus)
        start_s, start_busy, start_source, start_dropped = self._start
        self._start = None
        if source != start_source:  # the reading changed kind mid-window: measure again
            return False
        self.last = Window(self._frames, now - start_s, busy_s - start_busy, self._inference_s, streams,
                           self.capacity, self.threads, dropped - start_dropped, source)
        if self._before is not None:
            gained = self.last.fps / self._before.fps if self._before.fps else 0.0
            before, self._before = self._before, None
            if gained < GAIN:
                self.stop(f"stream {streams} gained too little ({before.fps:.0f} -> {self.last.fps:.0f} FPS)")
                return False
        if not self.last.wants_stream(self.live):
            self._since_change = WARMUP_FRAMES  # measure the next window straight away
            return False
        self._pending = f"{streams} -> {streams + 1} at frame {frame} ({self.last.describe()})"
        self._before = self.last
        self._since_change = 0
        return True

    def added(self) -> None:
        """The stream asked for by the last True of :meth:`observe` is running (it may have taken
        a while to load: the warm-up before the next window counts from here)."""
        self.changes.append(self._pending)
        self._since_change = 0

    def stop(self, reason: str) -> None:
        """No more streams (a second interpreter could not be made, or the last one gained little)."""
        self.stopped = reason

    def note(self, streams: int) -> str:
        """What auto did, for the summary, e.g. ``auto: 2 (1 -> 2 at frame 71 (inference busy 98%, ...))``."""
        parts = list(self.changes)
        if self.stopped:
            parts.append(self.stopped)
        elif self.last is not None and not self.changes:
            parts.append(f"last window: {self.last.describe()}")
        elif self.last is None and not self.changes:
            parts.append("too few frames to measure")
        return f"auto: {streams} ({'; '.join(parts)})"


def runs_on_cpu(model) -> bool:
    """Whether ``model`` (an :class:`edge_runtime.Model`) runs on the CPU's cores, not on a GPU
    or an accelerator: only then do more streams or pinned threads change its speed."""
    return str(model.device).startswith("cpu")


def why_one_stream(model, threaded: bool, pin: bool, cpus: float) -> str | None:
    """Why ``--streams auto`` keeps one stream from the start, or None when it may add more
    (``model``: an :class:`edge_runtime.Model`; ``cpus``: the usable CPUs, or the cgroup quota if lower)."""
    if not threaded:
        return "the sequential loop runs one"
    if pin:
        return "off with --pin"
    if not runs_on_cpu(model):
        return f"the model runs on {model.accelerator}, not on the CPU's cores"
    if 2 * max(1, model.threads) > cpus:
        return f"a second stream of {model.threads} thread(s) would not fit {cpus:g} usable CPU(s)"
    return None

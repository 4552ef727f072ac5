"""``--streams auto`` (the default): add an inference stream while the model is the bottleneck
and a CPU sits idle.

One single-threaded interpreter caps the pipeline at the model's own speed: when the model takes
most of each frame, a second core waits while the first infers (on 2 cores the detector of the
benchmark reached 1.25x a plain loop with one stream and 1.97x with two; docs/benchmarks.md).
When reading and preparing frames take as long as the model (BlazeFace on a 768x576 video), the
cores are already busy and a second interpreter only competes with them. Which case holds depends
on the model, the source and the device, so the pipeline measures it while it runs instead of
guessing: over windows of at least ``WINDOW_FRAMES`` frames and ``WINDOW_S`` seconds (after
``WARMUP_FRAMES`` frames of start-up) it adds a stream when

* each inference stream was inferring for at least ``BUSY`` of the window (frames wait for the
  model, not the other way round), and
* at least ``IDLE_CPUS`` of the CPUs this process may use sat idle (read from ``/proc/stat`` for
  those CPUs, so another program's load counts too; elsewhere from this process's own CPU time).

It never goes past ``MAX_STREAMS`` or the number of usable CPUs, and never removes a stream.
:attr:`AutoStreams.note` says what was decided and on which measurement, for the run's summary.
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
MAX_STREAMS = 4  # each stream holds its own interpreter and tensor arena


def usable_cpus() -> tuple[int, ...]:
    """The CPU numbers this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def busy_cpu_seconds(cpus: tuple[int, ...], stat: Path = Path("/proc/stat")) -> tuple[float, str]:
    """Seconds the given CPUs have spent busy (any process) since boot, and where that came
    from; without ``/proc/stat``, this process's own CPU time."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        busy = 0
        wanted = {f"cpu{n}" for n in cpus}
        for line in stat.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] in wanted:
                values = [int(v) for v in fields[1:]]
                busy += sum(values) - values[3] - (values[4] if len(values) > 4 else 0)  # minus idle, iowait
        return busy / ticks, "system"
    except (OSError, ValueError, IndexError):
        return time.process_time(), "process"


@dataclass(frozen=True)
class Window:
    """One measuring window of a running pipeline."""

    frames: int
    wall_s: float
    busy_cpu_s: float  # CPU seconds used on the usable CPUs over the window
    inference_s: float  # summed inference time of the window's frames
    streams: int
    cpus: int

    @property
    def busy(self) -> float:
        """The fraction of the window each inference stream spent inferring."""
        return self.inference_s / (self.wall_s * self.streams) if self.wall_s > 0 else 0.0

    @property
    def idle_cpus(self) -> float:
        return max(0.0, self.cpus - self.busy_cpu_s / self.wall_s) if self.wall_s > 0 else 0.0

    def wants_stream(self) -> bool:
        return (self.busy >= BUSY and self.idle_cpus >= IDLE_CPUS
                and self.streams < min(self.cpus, MAX_STREAMS))

    def describe(self) -> str:
        return f"inference busy {self.busy:.0%}, {self.idle_cpus:.1f} of {self.cpus} CPUs idle"


class AutoStreams:
    """Decides, one result at a time, when the pipeline should add an inference stream."""

    def __init__(self, cpus: tuple[int, ...] | None = None, clock=time.perf_counter, busy_clock=None):
        self.cpus = cpus or usable_cpus()
        self._clock, self._busy_clock = clock, busy_clock or busy_cpu_seconds
        self._since_change = 0
        self._start: tuple[float, float] | None = None
        self._frames = 0
        self._inference_s = 0.0
        self.last: Window | None = None
        self.changes: list[str] = []  # each stream added, with the measurement that asked for it
        self._pending = ""
        self.stopped: str | None = None

    def observe(self, inference_s: float, streams: int, frame: int) -> bool:
        """Count one result (``frame``: results so far); True when a stream should be added now."""
        if self.stopped is not None:
            return False
        self._since_change += 1
        if self._since_change < WARMUP_FRAMES:
            return False
        if self._start is None:
            self._start = (self._clock(), self._busy_clock(self.cpus)[0])
            self._frames, self._inference_s = 0, 0.0
            return False
        self._frames += 1
        self._inference_s += inference_s
        now = self._clock()
        if self._frames < WINDOW_FRAMES or now - self._start[0] < WINDOW_S:
            return False
        self.last = Window(self._frames, now - self._start[0], self._busy_clock(self.cpus)[0] - self._start[1],
                           self._inference_s, streams, len(self.cpus))
        self._start = None
        if not self.last.wants_stream():
            self._since_change = WARMUP_FRAMES  # measure the next window straight away
            return False
        self._pending = f"{streams} -> {streams + 1} at frame {frame} ({self.last.describe()})"
        self._since_change = 0
        return True

    def added(self) -> None:
        """The stream asked for by the last True of :meth:`observe` is running."""
        self.changes.append(self._pending)

    def stop(self, reason: str) -> None:
        """No more streams (e.g. a second interpreter could not be made)."""
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

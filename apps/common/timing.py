"""Loop timing: how fast, how late and how steady a loop ran, from monotonic timestamps.

A camera pipeline, a keyword spotter and a 500 Hz control loop all ask the same questions:
frames (or steps) per second, latency percentiles, jitter of the interval between results,
dropped items and missed deadlines. :class:`LoopTimer` records them in fixed-size rings, so a
run of millions of steps keeps constant memory (percentiles then cover the latest ``window``
samples, which the summary says)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TimingSummary:
    """What a loop achieved. Latencies and jitter in milliseconds; ``rate_hz`` = results per
    second between the first and the last result; ``jitter_ms`` = standard deviation of the
    interval between consecutive results; ``missed`` = results later than their deadline."""

    count: int
    dropped: int
    duration_s: float
    rate_hz: float
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_mean: float
    latency_ms_max: float
    interval_ms_mean: float
    jitter_ms: float
    missed: int
    window: int  # how many of the latest samples the percentiles cover

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v) for k, v in asdict(self).items()}


class Samples:
    """Values a loop records (latencies, intervals, jitter), in constant memory: the count, mean
    and maximum of all of them exactly, percentiles over the latest ``window`` (a ring). The ring
    is written when made (np.zeros would map its pages lazily), so it is resident from the start
    and a long run's RSS does not creep by 8 bytes a sample as it fills."""

    def __init__(self, window: int = 65536):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.values = np.full(window, np.nan)
        self.n = 0
        self._sum = 0.0
        self._max = -math.inf

    def add(self, value: float) -> None:
        self.values[self.n % len(self.values)] = value
        self.n += 1
        self._sum += value
        self._max = max(self._max, value)

    def __len__(self) -> int:
        return self.n

    def view(self) -> np.ndarray:
        """The latest ``window`` values (in ring order, which percentiles do not mind)."""
        return self.values[: min(self.n, len(self.values))]

    @property
    def mean(self) -> float:
        return self._sum / self.n if self.n else float("nan")

    @property
    def max(self) -> float:
        return self._max if self.n else float("nan")

    def percentile(self, q: float) -> float:
        values = self.view()
        return float(np.percentile(values, q)) if len(values) else float("nan")


class LoopTimer:
    """Record one result per :meth:`record` call.

    Args:
        window: samples kept for percentiles (default 65,536: half a megabyte per ring).
    """

    def __init__(self, window: int = 65536):
        self._latency = Samples(window)  # raises ValueError for a window under 1
        self.window = window
        self._interval = Samples(window)
        self.count = 0
        self.dropped = 0
        self.missed = 0
        self.first_t: float | None = None
        self.last_t: float | None = None

    def record(self, t: float, latency_s: float | None = None, deadline: float | None = None) -> None:
        """A result ready at monotonic time ``t`` (seconds), ``latency_s`` after its input was
        taken; late when ``t`` is after ``deadline``."""
        if self.last_t is not None:
            self._interval.add(t - self.last_t)
        else:
            self.first_t = t
        self.last_t = t
        self.count += 1
        if latency_s is not None:
            self._latency.add(latency_s)
        if deadline is not None and t > deadline:
            self.missed += 1

    @property
    def rate_hz(self) -> float:
        """Results per second so far (cheap: for a live display)."""
        if self.count < 2 or self.last_t == self.first_t:
            return 0.0
        return (self.count - 1) / (self.last_t - self.first_t)

    def drop(self, n: int = 1) -> None:
        """Inputs skipped (a stale frame replaced by a newer one, a step not taken)."""
        self.dropped += n

    def summary(self) -> TimingSummary:
        duration = (self.last_t - self.first_t) if self.count > 1 else 0.0
        interval = self._interval.view() * 1000
        nan = float("nan")
        return TimingSummary(
            count=self.count, dropped=self.dropped, duration_s=duration,
            rate_hz=(self.count - 1) / duration if duration > 0 else 0.0,
            latency_ms_p50=self._latency.percentile(50) * 1000,
            latency_ms_p99=self._latency.percentile(99) * 1000,
            latency_ms_mean=self._latency.mean * 1000,
            latency_ms_max=self._latency.max * 1000,
            interval_ms_mean=float(interval.mean()) if len(interval) else nan,
            jitter_ms=float(interval.std()) if len(interval) > 1 else nan,
            missed=self.missed, window=self.window,
        )

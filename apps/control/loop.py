"""A fixed-rate loop on absolute deadlines, with exact miss accounting.

Slot ``k`` starts at ``t0 + k * period``; the tick in it must finish by the start of slot
``k + 1``. The loop sleeps until the next slot's start (never ``sleep(period)`` after the work,
which adds the work time and the oversleep to every period and drifts). When a tick overruns,
the slots that began while it ran are skipped, each counted as missed, and the loop resumes at
the first slot that has not started yet: no burst of catch-up ticks. The same holds when the
process was not scheduled for a while (a stall while sleeping).

The clock is pluggable so the accounting can be tested exactly: :class:`MonotonicClock` reads
``time.monotonic_ns``; the tests drive a fake one."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from apps.common.timing import Samples


class MonotonicClock:
    """``time.monotonic_ns`` and a wait until an absolute time: sleep, then spin.

    A sleeping thread wakes late: by the kernel's timer slack (50 us by default, set to 1 ns for
    the loop's thread while it runs, which needs no privileges) and by however long the CPU takes
    to come back from idle. On bare metal that is tens of microseconds; in a virtual machine an
    idle vCPU is descheduled by the host, and this machine's p99 wake-up is 0.5-1.2 ms, more
    than half a 500 Hz period. So the last part of each wait is spent polling the clock
    (``spin``), which keeps the CPU awake at the price of that much CPU time per tick:

    * ``spin_ns=None`` (the default, ``--spin-us auto``): adaptive. Every wake-up's lateness is
      recorded, and the spin margin is the 99th percentile of the recent ones (x 1.25, at least
      ``min_spin_ns``), so a quiet machine spins little and a VM spins what it must. At most
      the whole wait is spun; while every wait is spun whole the margin halves every 5 s, so
      the loop measures again now and then (one late start cannot make it spin for good).
    * ``spin_ns=0`` sleeps all the way (the least CPU; the kernel's wake-up latency shows as jitter).
    * ``spin_ns=N`` spins the last N ns of every wait.

    ``max_spin_ns`` caps the spin. Under SCHED_FIFO the loop sets it to half the period: Linux
    throttles real-time tasks that keep a CPU busy for more than 95% of a second
    (``sched_rt_runtime_us``) by stopping them for the rest of it, a 50 ms stall.

    ``spin_fraction()`` is the share of waiting time spent spinning (reported in the summary)."""

    WINDOW = 256  # wake-ups the adaptive margin looks at
    UPDATE_EVERY = 32  # recompute the margin this often (a percentile costs microseconds)
    HALF_LIFE_NS = 5_000_000_000  # of the margin, over waits spun from their start (see sleep_until)

    def __init__(self, spin_ns: int | None = None, min_spin_ns: int = 50_000):
        self.adaptive = spin_ns is None
        self.spin_ns = int(min_spin_ns if spin_ns is None else spin_ns)
        self.min_spin_ns = int(min_spin_ns)
        self.max_spin_ns: int | None = None
        self.half_life_ns = self.HALF_LIFE_NS
        self._late: list[int] = []
        self._waits = 0
        self.waited_ns = 0
        self.spun_ns = 0

    @staticmethod
    def now_ns() -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        start = time.monotonic_ns()
        wake = deadline_ns - self.effective_spin_ns
        slept = wake > start
        if slept:
            while True:
                remaining = wake - time.monotonic_ns()
                if remaining <= 0:
                    break
                time.sleep(remaining / 1e9)
            if self.adaptive:
                self._record(time.monotonic_ns() - wake)
        elif self.adaptive and deadline_ns > start:
            # a wait spun from its start measures no wake-up: the margin halves every 5 s of such
            # waiting, so the loop sleeps (and measures) again now and then; late wake-ups push it
            # straight back. Each such probe risks one late tick: a few per minute at most
            shrink = 0.5 ** ((deadline_ns - start) / self.half_life_ns)
            self.spin_ns = max(self.min_spin_ns, int(self.spin_ns * shrink))
        spin_from = time.monotonic_ns() if slept else start  # a wait that did not sleep spun throughout
        while time.monotonic_ns() < deadline_ns:
            pass
        end = time.monotonic_ns()
        self.waited_ns += max(0, end - start)
        self.spun_ns += max(0, end - max(spin_from, start))

    def _record(self, late_ns: int) -> None:
        self._late.append(late_ns)
        if len(self._late) > self.WINDOW:
            del self._late[: len(self._late) - self.WINDOW]
        self._waits += 1
        if self._waits % self.UPDATE_EVERY == 0 or self._waits < self.UPDATE_EVERY:
            p99 = float(np.percentile(self._late, 99))
            self.spin_ns = max(self.min_spin_ns, int(p99 * 1.25))

    def spin_fraction(self) -> float | None:
        return round(self.spun_ns / self.waited_ns, 3) if self.waited_ns else None

    @property
    def effective_spin_ns(self) -> int:
        """The spin the next wait uses: the margin, within ``max_spin_ns``."""
        return self.spin_ns if self.max_spin_ns is None else min(self.spin_ns, self.max_spin_ns)

    def describe(self) -> dict:
        return {"mode": "auto" if self.adaptive else ("sleep" if self.spin_ns == 0 else "fixed"),
                "spin_us": round(self.effective_spin_ns / 1e3, 1), "spin_fraction": self.spin_fraction(),
                "max_spin_us": None if self.max_spin_ns is None else round(self.max_spin_ns / 1e3, 1)}


@dataclass
class TickRecord:
    """One executed tick: its slot, start jitter and compute time (ns), and whether it
    finished after its deadline."""

    slot: int
    start_ns: int
    jitter_ns: int
    compute_ns: int
    missed: bool


@dataclass
class Schedule:
    """The deadline bookkeeping of one run. Call :meth:`wait` before each tick and
    :meth:`done` after it; read the totals when the run ends."""

    period_ns: int
    clock: object = field(default_factory=MonotonicClock)
    t0_ns: int | None = None
    end_slot: int | None = None  # slots from here on are past the run's end and never counted
    slot: int = 0  # the slot the next tick runs in
    ticks: int = 0
    late_ticks: int = 0
    skipped_slots: int = 0
    miss_streak: int = 0  # consecutive missed slots up to now (late ticks and skipped slots)
    # constant memory however long the loop runs: exact count and max, percentiles over the latest
    # ticks (apps.common.timing.Samples); a list grew by ~36 bytes a tick (190 MB an hour at 500 Hz)
    jitter_ns: Samples = field(default_factory=Samples)
    compute_ns: Samples = field(default_factory=Samples)
    _start_ns: int = 0

    def start(self) -> None:
        self.t0_ns = self.clock.now_ns()
        self.slot = 0

    def slot_start(self, slot: int) -> int:
        return self.t0_ns + slot * self.period_ns

    def wait(self) -> int:
        """Sleep until the current slot starts; return the tick's start time. A wake-up past
        the end of the slot (the process was stalled) skips to the slot that is now running."""
        if self.t0_ns is None:
            self.start()
        self.clock.sleep_until(self.slot_start(self.slot))
        now = self.clock.now_ns()
        current = (now - self.t0_ns) // self.period_ns
        if current > self.slot:
            self._skip(self.slot, current - self.slot)
            self.slot = current
        self._start_ns = now
        return now

    def time_left_ns(self) -> int:
        """Nanoseconds from now until the slot the next tick runs in starts (negative when late)."""
        return self.slot_start(self.slot) - self.clock.now_ns()

    def done(self) -> TickRecord:
        """Account for the tick that started at the last :meth:`wait` and choose the next slot."""
        end = self.clock.now_ns()
        jitter = self._start_ns - self.slot_start(self.slot)
        compute = end - self._start_ns
        deadline = self.slot_start(self.slot + 1)
        missed = end > deadline
        record = TickRecord(self.slot, self._start_ns, jitter, compute, missed)
        self.ticks += 1
        self.jitter_ns.add(jitter)
        self.compute_ns.add(compute)
        if missed:
            self.late_ticks += 1
            self.miss_streak += 1
            # the next slot is the first one that has not started when the tick ended
            next_slot = -(-(end - self.t0_ns) // self.period_ns)
            self._skip(self.slot + 1, next_slot - self.slot - 1)
            self.slot = next_slot
        else:
            self.miss_streak = 0
            self.slot += 1
        return record

    def _skip(self, first: int, count: int) -> None:
        if self.end_slot is not None:
            count = min(count, self.end_slot - first)
        if count > 0:
            self.skipped_slots += count
            self.miss_streak += count

    @property
    def missed(self) -> int:
        return self.late_ticks + self.skipped_slots

    @property
    def slots(self) -> int:
        """Slots scheduled so far: ticks run plus slots skipped."""
        return self.ticks + self.skipped_slots

    def elapsed_ns(self) -> int:
        return self.clock.now_ns() - (self.t0_ns or self.clock.now_ns())

    def stats(self) -> dict:
        jitter, compute = self.jitter_ns, self.compute_ns
        return {
            "missed": self.missed,
            "late_ticks": self.late_ticks,
            "skipped_slots": self.skipped_slots,
            "missed_pct": round(100.0 * self.missed / self.slots, 4) if self.slots else 0.0,
            "jitter_p50_us": us(jitter.percentile(50)), "jitter_p99_us": us(jitter.percentile(99)),
            "jitter_max_us": us(jitter.max),
            "compute_p50_us": us(compute.percentile(50)), "compute_p99_us": us(compute.percentile(99)),
            "compute_max_us": us(compute.max),
            "percentiles_over_ticks": len(jitter.view()),
        }


def us(ns: float) -> float | None:
    """Nanoseconds as microseconds to 0.1, None for no value (NaN: nothing recorded)."""
    return None if math.isnan(ns) else round(ns / 1e3, 1)

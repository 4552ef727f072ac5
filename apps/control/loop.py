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

import os
import time
from dataclasses import dataclass, field

import numpy as np


class MonotonicClock:
    """``time.monotonic_ns`` and a sleep until an absolute time.

    ``spin_ns``: the last part of each wait is spent polling the clock instead of sleeping,
    which removes the kernel's wake-up latency (~50-100 us) at the price of that much CPU per
    tick. 0 (the default) sleeps all the way: on a shared 2-core machine spinning steals time
    from the others."""

    def __init__(self, spin_ns: int = 0):
        self.spin_ns = int(spin_ns)

    @staticmethod
    def now_ns() -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        while True:
            remaining = deadline_ns - time.monotonic_ns()
            if remaining <= self.spin_ns:
                break
            time.sleep((remaining - self.spin_ns) / 1e9)
        while time.monotonic_ns() < deadline_ns:
            pass


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
    jitter_ns: list = field(default_factory=list)
    compute_ns: list = field(default_factory=list)
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

    def done(self) -> TickRecord:
        """Account for the tick that started at the last :meth:`wait` and choose the next slot."""
        end = self.clock.now_ns()
        jitter = self._start_ns - self.slot_start(self.slot)
        compute = end - self._start_ns
        deadline = self.slot_start(self.slot + 1)
        missed = end > deadline
        record = TickRecord(self.slot, self._start_ns, jitter, compute, missed)
        self.ticks += 1
        self.jitter_ns.append(jitter)
        self.compute_ns.append(compute)
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
        jitter = np.asarray(self.jitter_ns, dtype=np.float64) / 1e3
        compute = np.asarray(self.compute_ns, dtype=np.float64) / 1e3

        def pct(values, q):
            return round(float(np.percentile(values, q)), 1) if len(values) else None

        return {
            "missed": self.missed,
            "late_ticks": self.late_ticks,
            "skipped_slots": self.skipped_slots,
            "missed_pct": round(100.0 * self.missed / self.slots, 4) if self.slots else 0.0,
            "jitter_p50_us": pct(jitter, 50), "jitter_p99_us": pct(jitter, 99),
            "jitter_max_us": round(float(jitter.max()), 1) if len(jitter) else None,
            "compute_p50_us": pct(compute, 50), "compute_p99_us": pct(compute, 99),
            "compute_max_us": round(float(compute.max()), 1) if len(compute) else None,
        }


@dataclass(frozen=True)
class Realtime:
    """What ``--realtime`` got: SCHED_FIFO or not, the CPU the loop was pinned to, and why not."""

    fifo: bool = False
    cpu: int | None = None
    why_not: str | None = None

    def to_dict(self) -> dict:
        return {"fifo": self.fifo, "cpu": self.cpu, "why_not": self.why_not}


def request_realtime(priority: int = 50, cpu: int | None = None) -> Realtime:
    """Ask for SCHED_FIFO at ``priority`` and pin the process to ``cpu`` (the last CPU it may
    use when None). Applied when the OS permits; otherwise the reason is returned and the loop
    goes on without it (an ordinary user gets EPERM). Only ever called on request."""
    reasons, fifo, pinned = [], False, None
    if not hasattr(os, "sched_setscheduler"):
        return Realtime(False, None, "this OS has no sched_setscheduler (SCHED_FIFO is Linux/POSIX only)")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        fifo = True
    except PermissionError as exc:
        reasons.append(f"SCHED_FIFO refused ({exc.strerror}: needs root or CAP_SYS_NICE / an rtprio limit)")
    except OSError as exc:
        reasons.append(f"SCHED_FIFO failed: {exc}")
    try:
        allowed = sorted(os.sched_getaffinity(0))
        target = allowed[-1] if cpu is None else cpu
        os.sched_setaffinity(0, {target})
        pinned = target
    except (OSError, AttributeError) as exc:
        reasons.append(f"CPU pinning failed: {exc}")
    return Realtime(fifo, pinned, "; ".join(reasons) or None)


def release_realtime(before: Realtime, affinity: set[int] | None) -> None:
    """Undo :func:`request_realtime` (back to SCHED_OTHER and the earlier CPU set)."""
    if before.fifo:
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass
    if before.cpu is not None and affinity:
        try:
            os.sched_setaffinity(0, affinity)
        except OSError:
            pass

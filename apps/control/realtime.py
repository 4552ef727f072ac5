"""What ``--realtime`` asks of the OS, and the one thing the loop always asks.

* :class:`FineTimerSlack` (always, no privileges): the loop thread's timer slack goes from
  Linux's default 50 us to 1 ns, so a sleep ends when asked.
* :func:`request_realtime` (only on ``--realtime``, never by default, even as root):
  - SCHED_FIFO, so no ordinary process preempts a tick;
  - the process pinned to one CPU;
  - CPUs kept out of idle states while the loop runs. It writes 0 to ``/dev/cpu_dma_latency``,
    the PM QoS request that cyclictest and real-time guides use; the request holds while the
    file stays open. A CPU coming back from a deep idle state wakes late. A VM's halted vCPU
    is worse: the host deschedules it, and a 500 Hz sleep here woke 0.3-1.9 ms late at p99
    without the request, 80-110 us with it. The cost is power: idle CPUs poll instead of
    halting.

Each is applied when the OS permits. Otherwise the reason is reported and the loop goes on
without it: an ordinary user is refused SCHED_FIFO (EPERM) and the device (EACCES); pinning
its own process to a CPU it may use needs no privileges.
"""
from __future__ import annotations

import gc
import os
import struct
import sys
import time
from dataclasses import dataclass, field

CPU_DMA_LATENCY = "/dev/cpu_dma_latency"


class FineTimerSlack:
    """While entered, the calling thread's timer slack is 1 ns instead of Linux's default 50 us
    (``prctl(PR_SET_TIMERSLACK)``: no privileges needed), so sleeps end when asked. ``applied``
    says whether it took (False off Linux); the old value is restored on exit."""

    PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30

    def __init__(self):
        self.applied, self._before, self._prctl = False, None, None

    def __enter__(self) -> "FineTimerSlack":
        if not sys.platform.startswith("linux"):
            return self
        import ctypes

        try:
            self._prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return self
        self._prctl.restype = ctypes.c_int
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        before = self._prctl(self.PR_GET_TIMERSLACK, 0, 0, 0, 0)
        if before >= 0 and self._prctl(self.PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0:
            self.applied, self._before = True, before
        return self

    def __exit__(self, *exc) -> None:
        if self.applied:
            self._prctl(self.PR_SET_TIMERSLACK, self._before, 0, 0, 0)


class _LatencyRequest:
    """The open ``/dev/cpu_dma_latency`` fd that holds the request; ``close()`` drops it, once."""

    def __init__(self, fd: int):
        self._fd: int | None = fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass(frozen=True)
class Realtime:
    """What ``--realtime`` got: SCHED_FIFO or not, the CPU the loop was pinned to, whether the
    CPUs were kept out of idle states (``idle_poll``), and why not, for each that failed."""

    fifo: bool = False
    cpu: int | None = None
    idle_poll: bool = False
    why_not: str | None = None
    _latency: _LatencyRequest | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"fifo": self.fifo, "cpu": self.cpu, "idle_poll": self.idle_poll, "why_not": self.why_not}


def hold_cpu_latency(path: str = CPU_DMA_LATENCY) -> tuple[int | None, str | None]:
    """Open ``path`` and write a 0 us wake-up latency request. Returns ``(fd, None)``: keep the
    fd open while the loop runs, and close it to drop the request. Returns ``(None, why)`` when
    the OS refuses (no such device, not root)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return None, f"{path} not found (no PM QoS on this OS): CPUs may idle between ticks"
    except PermissionError as exc:
        return None, f"{path} refused ({exc.strerror}: needs root)"
    except OSError as exc:
        return None, f"{path} failed: {exc}"
    try:
        os.write(fd, struct.pack("i", 0))
    except OSError as exc:
        os.close(fd)
        return None, f"writing 0 to {path} failed: {exc}"
    return fd, None


def request_realtime(priority: int = 50, cpu: int | None = None,
                     latency_path: str = CPU_DMA_LATENCY) -> Realtime:
    """Ask for SCHED_FIFO at ``priority``, pin the process to ``cpu`` (the last CPU it may use
    when None) and hold the CPUs out of idle states (see the module's doc). Each is applied
    when the OS permits; otherwise the reasons are returned and the loop goes on without it.
    Only ever called on request; undo with :func:`release_realtime`."""
    reasons, fifo, pinned = [], False, None
    if not hasattr(os, "sched_setscheduler"):
        return Realtime(why_not="this OS has no sched_setscheduler (SCHED_FIFO is Linux/POSIX only)")
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
    fd, why = hold_cpu_latency(latency_path)
    if why:
        reasons.append(why)
    return Realtime(fifo, pinned, fd is not None, "; ".join(reasons) or None,
                    None if fd is None else _LatencyRequest(fd))


def release_realtime(before: Realtime, affinity: set[int] | None) -> None:
    """Undo :func:`request_realtime`: back to SCHED_OTHER and the earlier CPU set, and drop the
    idle-state request."""
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
    if before._latency is not None:
        before._latency.close()


class QuietGC:
    """While entered, Python's garbage collector runs only between ticks, when there is time.

    CPython collects whenever enough objects have been allocated, inside whatever code is
    running. In this loop a gen-1 collection took 1.5-2 ms (measured with ``gc.callbacks`` at
    500 Hz), most of a 2 ms period, and it landed inside inference. So on entry everything
    that exists is collected once and frozen (``gc.freeze``: later collections skip it), and
    automatic collection is off. :meth:`collect_if_due` then runs the collection CPython would
    have run, with the same thresholds (CPython 3.10-3.13 semantics), between ticks:

    * when the time left before the next deadline covers its estimated cost, which is the
      pending object count times the nanoseconds per object that generation has cost so far;
    * else the cheaper gen-0 collection when that fits;
    * and regardless after ``force_after`` thresholds' worth of allocations, so memory stays
      bounded even in a loop with no slack.

    Process-wide state is restored on exit. Objects are unfrozen only if this froze them (an
    application that froze its own before a fork keeps them frozen), and automatic collection
    comes back only if it was on. If the caller had turned collection off, nothing is
    collected. Nested or concurrent loops share one freeze: the last to leave restores."""

    FIRST_GUESS_NS_PER_OBJECT = (100.0, 300.0, 1000.0)  # before a generation's first collection
    _depth = 0
    _owns_freeze = False
    _was_enabled = True

    def __init__(self, force_after: int = 20):
        self.force_after = force_after
        self.collections, self.deferred, self.forced = 0, 0, 0
        self.ns_per_object = list(self.FIRST_GUESS_NS_PER_OBJECT)
        self.max_ns = 0
        self.active = False
        self._collect = True

    def __enter__(self) -> QuietGC:
        cls = QuietGC
        if cls._depth == 0:
            cls._was_enabled = gc.isenabled()
            cls._owns_freeze = gc.get_freeze_count() == 0
            if cls._was_enabled:
                gc.collect()
            if cls._owns_freeze:
                gc.freeze()
            gc.disable()
        cls._depth += 1
        self._collect = cls._was_enabled  # the caller's "off" stays off
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        self.active = False
        cls = QuietGC
        cls._depth -= 1
        if cls._depth == 0:
            if cls._owns_freeze:
                gc.unfreeze()
            if cls._was_enabled:
                gc.enable()

    def _cost_ns(self, generation: int, pending: int) -> float:
        return self.ns_per_object[generation] * pending

    def collect_if_due(self, budget_ns: int | None) -> bool:
        """Collect if CPython would have by now and ``budget_ns`` (the time left before the
        next deadline; None: no deadline) covers the estimated cost (see the class). Returns
        whether it collected."""
        if not (self.active and self._collect):
            return False
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if t0 <= 0 or c0 < t0:
            return False
        generation = 2 if c1 >= t1 and c2 >= t2 else 1 if c1 >= t1 else 0
        if budget_ns is not None and self._cost_ns(generation, c0) > budget_ns:
            if generation > 0 and self._cost_ns(0, c0) <= budget_ns:
                generation = 0  # the cheap collection now; the due one when there is room
            elif c0 >= self.force_after * t0:
                self.forced += 1
            else:
                self.deferred += 1
                return False
        start = time.monotonic_ns()
        gc.collect(generation)
        took = time.monotonic_ns() - start
        # nanoseconds per pending object: a forced collection of many objects says nothing new
        # about what a small one costs, and the estimate follows the latest up and decays down
        rate = took / max(c0, 1)
        self.ns_per_object[generation] = max(rate, 0.9 * self.ns_per_object[generation])
        self.max_ns = max(self.max_ns, took)
        self.collections += 1
        return True

    def describe(self) -> dict:
        return {"collections": self.collections, "deferred": self.deferred, "forced": self.forced,
                "max_us": round(self.max_ns / 1e3, 1)}

"""The deadline scheduler against a fake clock: exact miss, skip and jitter accounting."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from apps.control import run
from apps.control.loop import Schedule
from apps.control.realtime import release_realtime, request_realtime

MS = 1_000_000


class FakeClock:
    """A clock that only moves when told: ``advance(ns)`` is work, ``sleep_until`` jumps
    ahead, plus an optional oversleep per call (a stall while sleeping)."""

    def __init__(self):
        self.now = 0
        self.oversleep: list[int] = []

    def now_ns(self) -> int:
        return self.now

    def sleep_until(self, deadline_ns: int) -> None:
        extra = self.oversleep.pop(0) if self.oversleep else 0
        self.now = max(self.now, deadline_ns) + extra

    def advance(self, ns: int) -> None:
        self.now += ns


def drive(schedule: Schedule, clock: FakeClock, compute: list[int]) -> list:
    records = []
    for work in compute:
        schedule.wait()
        clock.advance(work)
        records.append(schedule.done())
    return records


def test_on_time_ticks_have_no_misses_and_no_drift():
    clock = FakeClock()
    s = Schedule(MS, clock)
    records = drive(s, clock, [MS // 2] * 100)
    assert [r.slot for r in records] == list(range(100))
    assert s.missed == 0 and s.slots == 100
    assert all(r.jitter_ns == 0 for r in records)
    assert clock.now == 99 * MS + MS // 2  # the 100th tick starts exactly at 99 ms: no drift


def test_overrun_skips_lost_slots_without_catch_up():
    clock = FakeClock()
    s = Schedule(MS, clock)
    # tick 1 (slot 1, starts at 1 ms) takes 2.5 ms: it ends at 3.5 ms, slots 2 and 3 have begun
    records = drive(s, clock, [MS // 2, 5 * MS // 2, MS // 2, MS // 2])
    assert [r.slot for r in records] == [0, 1, 4, 5]
    assert [r.missed for r in records] == [False, True, False, False]
    assert s.late_ticks == 1 and s.skipped_slots == 2 and s.missed == 3
    assert s.slots == 6 and s.ticks == 4
    assert s.stats()["missed_pct"] == pytest.approx(50.0)
    assert [r.start_ns for r in records] == [0, MS, 4 * MS, 5 * MS]  # no burst: one tick per slot


def test_overrun_ending_exactly_on_a_slot_start_skips_nothing_extra():
    clock = FakeClock()
    s = Schedule(MS, clock)
    records = drive(s, clock, [2 * MS, MS // 4])  # ends at 2 ms exactly: late, slot 1 skipped, next is slot 2
    assert [r.slot for r in records] == [0, 2]
    assert s.late_ticks == 1 and s.skipped_slots == 1


def test_a_stall_while_sleeping_skips_to_the_running_slot_and_records_jitter():
    clock = FakeClock()
    s = Schedule(MS, clock)
    clock.oversleep = [0, 0, 2 * MS + 200_000]  # the third wait wakes 2.2 ms late
    records = drive(s, clock, [100_000] * 4)
    assert [r.slot for r in records] == [0, 1, 4, 5]
    assert records[2].jitter_ns == 200_000
    assert s.skipped_slots == 2 and s.late_ticks == 0 and s.missed == 2


def test_slots_past_the_end_of_the_run_are_not_counted():
    clock = FakeClock()
    s = Schedule(MS, clock, end_slot=3)
    drive(s, clock, [MS // 2, MS // 2, 5 * MS])  # the last tick overruns past the end (slot 3)
    assert s.late_ticks == 1 and s.skipped_slots == 0 and s.slots == 3


def test_miss_streak_counts_consecutive_misses_and_resets():
    clock = FakeClock()
    s = Schedule(MS, clock)
    drive(s, clock, [3 * MS // 2])  # late, skips slot 1
    assert s.miss_streak == 2
    drive(s, clock, [MS // 2])
    assert s.miss_streak == 0


class ScriptedPolicy:
    """A policy whose inference advances the fake clock by a scripted time."""

    def __init__(self, clock: FakeClock, times_ns: list[int]):
        self.clock, self.times = clock, list(times_ns)

    def __call__(self, obs):
        self.clock.advance(self.times.pop(0) if self.times else 0)
        return np.zeros(1, np.float32)


def test_run_reports_the_schedule_exactly(pendulum_env):
    clock = FakeClock()
    policy = ScriptedPolicy(clock, [100_000, 2_500_000] + [100_000] * 8)
    summary = run(policy, pendulum_env, rate_hz=1000, ticks=10, clock=clock, seed=0, safety=False)
    assert summary["ticks"] == 10 and summary["stop_reason"] == "ticks"
    assert summary["late_ticks"] == 1 and summary["skipped_slots"] == 2 and summary["missed"] == 3
    assert summary["slots"] == 12 and summary["missed_pct"] == pytest.approx(25.0)


def test_duration_counts_slots_not_ticks(pendulum_env):
    clock = FakeClock()
    policy = ScriptedPolicy(clock, [100_000] * 5 + [3_500_000] + [100_000] * 100)
    summary = run(policy, pendulum_env, rate_hz=1000, duration_s=0.02, clock=clock, seed=0, safety=False)
    # 20 slots of 1 ms: tick 5 overruns into slots 6, 7, 8, so 17 ticks run
    assert summary["stop_reason"] == "duration"
    assert summary["slots"] == 20 and summary["ticks"] == 17 and summary["missed"] == 4


@pytest.fixture
def pendulum_env():
    from apps.control import sim_env

    return sim_env("Pendulum-v1", 1000)


def test_realtime_is_reported_applied_or_why_not():
    before = set(os.sched_getaffinity(0))
    rt = request_realtime()
    try:
        assert rt.fifo or (rt.why_not and "SCHED_FIFO" in rt.why_not)
        assert rt.cpu is None or rt.cpu in before
        if rt.cpu is not None:
            assert os.sched_getaffinity(0) == {rt.cpu}
    finally:
        release_realtime(rt, before)
    assert set(os.sched_getaffinity(0)) == before
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_the_real_clock_never_returns_before_the_deadline_in_each_wait_mode():
    import time as _time

    from apps.control.loop import MonotonicClock

    capped = MonotonicClock(10_000_000)
    capped.max_spin_ns = 0  # what SCHED_FIFO's cap does at its extreme: sleep all the way
    for clock, spun in ((MonotonicClock(0), (0.0, 0.5)), (MonotonicClock(10_000_000), (0.95, 1.0)),
                        (capped, (0.0, 0.5))):
        for _ in range(20):
            deadline = _time.monotonic_ns() + 2_000_000
            clock.sleep_until(deadline)
            assert _time.monotonic_ns() >= deadline
        assert spun[0] <= clock.spin_fraction() <= spun[1], clock.describe()
    assert MonotonicClock(0).describe()["mode"] == "sleep" and MonotonicClock(5).describe()["mode"] == "fixed"


def test_adaptive_spin_margin_follows_the_measured_wake_up_lateness():
    from apps.control.loop import MonotonicClock

    clock = MonotonicClock(None, min_spin_ns=50_000)
    assert clock.describe()["mode"] == "auto" and clock.spin_ns == 50_000
    for _ in range(MonotonicClock.WINDOW):
        clock._record(400_000)  # a VM that wakes 0.4 ms late
    assert clock.spin_ns == 500_000  # p99 x 1.25
    for _ in range(MonotonicClock.WINDOW):
        clock._record(5_000)  # a quiet machine: back to the floor once the window has forgotten
    assert clock.spin_ns == 50_000


def test_an_adaptive_margin_longer_than_the_wait_shrinks_until_the_loop_measures_again():
    import time as _time

    from apps.control.loop import MonotonicClock

    clock = MonotonicClock(None)
    for _ in range(MonotonicClock.WINDOW):
        clock._record(5_000_000)  # one bad stretch: every wake-up 5 ms late
    assert clock.spin_ns == 6_250_000 and len(clock._late) == MonotonicClock.WINDOW
    clock._late.clear()
    clock.half_life_ns = 20_000_000  # 20 ms instead of 5 s, for the test
    for _ in range(2000):  # 0.5 ms waits, spun whole while the margin exceeds them
        clock.sleep_until(_time.monotonic_ns() + 500_000)
        if clock._late:
            break
    assert clock._late, f"never slept again: margin {clock.spin_ns} ns"


def test_fine_timer_slack_is_applied_and_restored():
    import ctypes
    import sys

    from apps.control.realtime import FineTimerSlack

    if not sys.platform.startswith("linux"):
        pytest.skip("timer slack is a Linux prctl")
    prctl = ctypes.CDLL(None).prctl
    before = prctl(FineTimerSlack.PR_GET_TIMERSLACK, 0, 0, 0, 0)
    with FineTimerSlack() as slack:
        assert slack.applied and prctl(FineTimerSlack.PR_GET_TIMERSLACK, 0, 0, 0, 0) == 1
    assert prctl(FineTimerSlack.PR_GET_TIMERSLACK, 0, 0, 0, 0) == before


def _cpu_latency_request() -> int:
    import struct

    fd = os.open("/dev/cpu_dma_latency", os.O_RDONLY)
    try:
        return struct.unpack("i", os.read(fd, 4))[0]
    finally:
        os.close(fd)


def test_realtime_holds_cpus_out_of_idle_and_lets_go():
    """--realtime writes a 0 us PM QoS request and drops it on release. As root the request must
    take; as an ordinary user the reason must name the device. A container without the device
    node (Docker's default /dev) cannot test it: skipped, naming it."""
    from apps.control.realtime import CPU_DMA_LATENCY

    if not os.path.exists(CPU_DMA_LATENCY):
        pytest.skip(f"{CPU_DMA_LATENCY} is not on this machine (a container's /dev, or not Linux)")
    before_request = _cpu_latency_request()
    before = set(os.sched_getaffinity(0))
    rt = request_realtime()
    try:
        if os.geteuid() == 0:
            assert rt.idle_poll and _cpu_latency_request() == 0
            assert rt.to_dict()["idle_poll"] is True
        else:
            assert not rt.idle_poll and CPU_DMA_LATENCY in rt.why_not
    finally:
        release_realtime(rt, before)
    release_realtime(rt, before)  # twice is harmless: the fd is closed once
    assert _cpu_latency_request() == before_request  # our request is gone with the closed fd


def test_a_failing_first_reset_still_undoes_realtime():
    """The robot's first reset raises: the run fails, and SCHED_FIFO, the CPU pinning and the
    idle-state request are undone all the same."""
    import gymnasium as gym

    from apps.control import sim_env

    class Broken(gym.Wrapper):
        def reset(self, **kwargs):
            raise RuntimeError("reset refused")

    before = set(os.sched_getaffinity(0))
    latency = _cpu_latency_request() if os.path.exists("/dev/cpu_dma_latency") else None
    with pytest.raises(RuntimeError, match="reset refused"):
        run(lambda obs: np.zeros(1, np.float32), Broken(sim_env("Pendulum-v1", 200)), rate_hz=200, ticks=5, realtime=True)
    assert set(os.sched_getaffinity(0)) == before
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    if latency is not None:
        assert _cpu_latency_request() == latency


def test_cpu_latency_hold_names_a_missing_device(tmp_path):
    from apps.control.realtime import hold_cpu_latency

    fd, why = hold_cpu_latency(str(tmp_path / "no-such-device"))
    assert fd is None and "no-such-device" in why and "not found" in why


def test_quiet_gc_collects_only_when_the_budget_allows_and_restores_gc():
    import gc

    from apps.control.realtime import QuietGC

    assert gc.isenabled()
    quiet = QuietGC(force_after=3)
    with quiet:
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        threshold = gc.get_threshold()[0]
        keep = [{} for _ in range(threshold + 10)]  # tracked objects: the gen-0 count passes its threshold
        assert not quiet.collect_if_due(budget_ns=1)  # no time before the deadline: deferred
        assert quiet.deferred == 1 and quiet.collections == 0
        assert quiet.collect_if_due(budget_ns=None)  # no deadline: collected
        assert quiet.collections == 1 and gc.get_count()[0] < threshold
        keep += [{} for _ in range(3 * threshold + 10)]
        assert quiet.collect_if_due(budget_ns=1)  # deferred too long: collected anyway, counted
        assert quiet.forced == 1
        assert not quiet.collect_if_due(budget_ns=None)  # nothing due
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert quiet.describe()["collections"] == 2 and quiet.describe()["max_us"] > 0
    del keep


def test_quiet_gc_leaves_the_callers_gc_state_as_it_found_it():
    import gc

    from apps.control.realtime import QuietGC

    gc.disable()  # the caller turned collection off: nothing is collected, and it stays off
    try:
        with QuietGC() as quiet:
            keep = [{} for _ in range(gc.get_threshold()[0] * 2)]
            assert not quiet.collect_if_due(budget_ns=None)
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()  # objects the application froze itself (before a fork) stay frozen
    try:
        frozen = gc.get_freeze_count()
        with QuietGC(), QuietGC():  # nested loops share one state; the last out restores it
            assert not gc.isenabled()
        assert gc.isenabled() and gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
    del keep

"""The machine's floor for a fixed-rate loop: how often the host takes the CPU away from a
thread that does nothing but read the clock. ``bench.control`` puts it beside the control
loop's missed deadlines, so a reader can tell the loop's misses from the machine's."""
from __future__ import annotations

import os
import time


def stall_probe(seconds: float, gap_ns: int) -> dict:
    """The machine's floor for any loop: under ``--realtime``'s settings (SCHED_FIFO, a pinned
    CPU, CPUs held out of idle), read the clock in a tight loop and count the gaps longer than
    ``gap_ns``: times the thread lost its CPU with nothing else of ours running (in a VM, the
    host stealing the vCPU). Spins 8 ms, sleeps 2 ms, to stay under the RT throttle. Runs in a
    child process (see :func:`host_stalls`) so its scheduling does not leak."""
    from apps.control.realtime import release_realtime, request_realtime

    def steal_ticks(cpu) -> int:  # /proc/stat: the 8th number is time stolen by the hypervisor
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    return int(line.split()[8])
        return 0

    affinity = set(os.sched_getaffinity(0))
    rt = request_realtime()
    steal0, gaps, spun_ns = steal_ticks(rt.cpu), 0, 0
    try:
        end = time.monotonic_ns() + int(seconds * 1e9)
        while (t := time.monotonic_ns()) < end:
            stop = start = t
            stop += 8_000_000
            while t < stop:
                now = time.monotonic_ns()
                gaps += now - t > gap_ns
                t = now
            spun_ns += t - start
            time.sleep(0.002)
    finally:
        release_realtime(rt, affinity)
    return {"gaps": int(gaps), "spun_s": spun_ns / 1e9, "steal_s": (steal_ticks(rt.cpu) - steal0) / os.sysconf("SC_CLK_TCK"),
            "realtime": rt.to_dict()}


def host_stalls(seconds: float, rate_hz: float, compute_us: float) -> dict:
    """Run :func:`stall_probe` in a child process with the slack of a tick (period minus the
    loop's median compute) as the gap: each such stall is a deadline no loop could keep. The
    floor is those stalls per slot, in percent."""
    import multiprocessing

    slack_ns = int(1e9 / rate_hz - compute_us * 1e3)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        probe = pool.apply(stall_probe, (seconds, slack_ns))
    probe["slack_us"] = slack_ns / 1e3
    probe["floor_pct"] = 100.0 * probe["gaps"] / (probe["spun_s"] * rate_hz) if probe["spun_s"] else None
    return probe

"""``apps.control.run``: one fixed-rate control loop over a robot or a gymnasium environment.

Each tick: read the observation, run the policy through ``edge_runtime``, pass the result
through the safety layer, send the action. Deadlines come from :mod:`apps.control.loop`,
interventions from :mod:`apps.control.safety`. The result is the summary dict that
``edgepilot control --json`` prints."""
from __future__ import annotations

import math
import os
import time
from dataclasses import fields

import numpy as np

from apps.common.signals import StopSignals
from apps.common.timing import Samples
from apps.control.loop import MonotonicClock, Schedule, us
from apps.control.policy import Policy, PolicyError
from apps.control.realtime import (
    FineTimerSlack,
    QuietGC,
    Realtime,
    release_realtime,
    request_realtime,
)
from apps.control.robot import GymRobot, Robot
from apps.control.safety import SafetyConfig, SafetyLayer

STOP_REASONS = ("duration", "ticks", "episode", "sigterm", "sigint", "fault")
GC_MARGIN_NS = 100_000  # left free before the next deadline when collecting between ticks


def as_robot(env) -> Robot:
    """A :class:`Robot` as it is; a gymnasium environment wrapped in :class:`GymRobot`."""
    if isinstance(env, Robot):
        return env
    if hasattr(env, "step") and hasattr(env, "reset") and hasattr(env, "action_space"):
        return GymRobot(env)
    raise TypeError(f"expected a gymnasium environment or an apps.control.Robot, got {type(env).__name__}")


def as_policy(model, obs_size: int, action_size: int):
    """A :class:`Policy` for a path or an ``edge_runtime.Model``; a :class:`Policy` or any
    other callable ``obs -> action`` (an expert, a fault-injecting wrapper) as it is."""
    import edge_runtime

    if isinstance(model, (str, os.PathLike, edge_runtime.Model)):
        return Policy(model, obs_size, action_size)
    if callable(model):
        return model
    raise TypeError(f"model must be a path, an edge_runtime.Model or a callable obs -> action, got {type(model).__name__}")


def safety_config(safety, **overrides) -> SafetyConfig:
    """``safety`` may be True/False or a :class:`SafetyConfig`; keyword overrides name its fields."""
    known = {f.name for f in fields(SafetyConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown safety option(s) {unknown}; expected any of {sorted(known - {'enabled'})}")
    if isinstance(safety, SafetyConfig):
        base = safety
    elif isinstance(safety, bool):
        base = SafetyConfig(enabled=safety)
    else:
        raise TypeError(f"safety must be True, False or a SafetyConfig, got {type(safety).__name__}")
    values = {f.name: getattr(base, f.name) for f in fields(SafetyConfig)}
    for key, value in overrides.items():
        values[key] = tuple(np.ravel(value).tolist()) if key in ("low", "high", "safe_action") and value is not None else value
    return SafetyConfig(**values)


def _percentiles(samples: Samples) -> tuple:
    """(p50, p99, max) in microseconds of nanosecond samples; Nones when there are none."""
    return us(samples.percentile(50)), us(samples.percentile(99)), us(samples.max)


def run(model, env, rate_hz: float | None = None, ticks: int | None = None, duration_s: float | None = None, *,
        seed: int | None = None, safety=True, fallback=None, realtime: bool = False, clock=None,
        spin_us: float | None = None,
        on_tick=None, telemetry=None, telemetry_every: int | None = None, **safety_options) -> dict:
    """Drive ``env`` (a gymnasium env or a :class:`Robot`) with ``model`` and return the summary.

    ``rate_hz``: pace the loop on absolute deadlines at this rate; None runs unpaced (as fast as
    possible; times are then robot time, ``sim_dt`` per tick). ``ticks``: exactly that many
    env steps. ``duration_s``: seconds (wall time when paced, robot time when unpaced). With
    neither, one episode. ``seed`` seeds the first reset; later resets continue its generator.
    ``safety=False`` turns the safety layer off; keywords such as ``max_rate=``,
    ``safe_action=``, ``stale_after_s=``, ``budget_s=``, ``low=``/``high=`` set its options
    (:class:`SafetyConfig`). ``fallback``: a second model used when the first raises or gives a
    non-finite action. ``realtime``: ask for SCHED_FIFO, a pinned CPU and CPUs held out of idle
    states (:mod:`apps.control.realtime`; each reported as applied or why not, never required). ``spin_us``: how the loop waits for each deadline (see
    :class:`~apps.control.loop.MonotonicClock`): None adapts the final busy-wait to the
    machine's measured wake-up latency, 0 sleeps all the way, N spins the last N us; the
    summary's ``wait`` says what it did. ``clock`` replaces the clock (tests). ``on_tick(row)`` is called with every tick's record (used for ``--log``);
    ``telemetry(event)`` every ``telemetry_every`` ticks (default: 10 times a second) and with
    the summary."""
    if ticks is not None and ticks < 1:
        raise ValueError(f"ticks must be >= 1, got {ticks}")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration_s must be > 0 seconds, got {duration_s}")
    if rate_hz is not None and not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise ValueError(f"rate_hz must be a positive number of ticks per second, got {rate_hz}")
    config = safety_config(safety, **safety_options)
    robot = as_robot(env)
    if spin_us is not None and not (spin_us >= 0 and math.isfinite(spin_us)):
        raise ValueError(f"spin_us must be >= 0 microseconds (or None: adaptive), got {spin_us}")
    clock = clock or MonotonicClock(None if spin_us is None else int(spin_us * 1e3))
    with robot:
        obs_size, action_size = robot.observation_spec.size, robot.action_spec.size
        policy = as_policy(model, obs_size, action_size)
        backup = as_policy(fallback, obs_size, action_size) if fallback is not None else None
        period_s = 1.0 / rate_hz if rate_hz else robot.sim_dt
        if period_s is None:
            raise ValueError(f"{robot.name}: unpaced runs need a robot that knows its step time (sim_dt); pass rate_hz")
        low, high = _limits(robot, policy)
        layer = SafetyLayer(config, low, high, period_s)
        summary = _loop(policy, backup, robot, layer, rate_hz, period_s, ticks, duration_s, seed, realtime, clock,
                        on_tick, telemetry, telemetry_every)
    return summary


def _limits(robot: Robot, policy) -> tuple[np.ndarray, np.ndarray]:
    """The action limits: the robot's, narrowed by the policy's metadata when both are known."""
    low = np.asarray(robot.action_spec.low, np.float64)
    high = np.asarray(robot.action_spec.high, np.float64)
    limits = getattr(policy, "action_limits", None)
    if limits is not None:
        low, high = np.maximum(low, limits[0]), np.minimum(high, limits[1])
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise PolicyError(f"{robot.name}: the action limits are not finite ({low.tolist()}..{high.tolist()}); "
                          "give them with --action-limits LO,HI (or low=/high=)")
    return low.astype(np.float32), high.astype(np.float32)


def _loop(policy, backup, robot, layer, rate_hz, period_s, ticks, duration_s, seed, realtime, clock,
          on_tick, telemetry, telemetry_every) -> dict:
    schedule = Schedule(int(round(period_s * 1e9)), clock) if rate_hz else None
    if schedule is not None and duration_s is not None:
        schedule.end_slot = int(round(duration_s / period_s))
    max_ticks = ticks
    if duration_s is not None and schedule is None:  # unpaced: duration in robot time
        max_ticks = min(max_ticks or 1 << 62, max(1, int(round(duration_s / period_s))))
    every = telemetry_every or max(1, int(round(0.1 / period_s)))
    rt, affinity = Realtime(), None
    if realtime:
        affinity = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        rt = request_realtime()
        if rt.fifo and schedule is not None and hasattr(clock, "max_spin_ns"):
            clock.max_spin_ns = schedule.period_ns // 2  # see MonotonicClock: RT throttling
    total, episodes, terminated, truncated, n = 0.0, 1, 0, 0, 0
    inference_ns, tick_ns = Samples(), Samples()  # constant memory however long the run
    first_error, stop_reason = None, None
    started = time.monotonic()
    slack, quiet_gc = FineTimerSlack(), QuietGC()
    try:
        robot.reset(seed=seed)  # inside: a failing reset still undoes --realtime and halts the robot
        with StopSignals() as signals, slack, quiet_gc:
            if schedule is not None:
                schedule.start()
            while True:
                start = schedule.wait() if schedule is not None else clock.now_ns()
                obs = robot.observe()
                fault = layer.observation_fault(obs)
                raw, fallback_for = None, None
                t0 = clock.now_ns()
                if fault is None or not layer.config.enabled:
                    raw, error = _infer(policy, obs)
                    if error is not None:
                        first_error = first_error or error
                    failed = "exception" if error is not None else ("nonfinite" if not np.all(np.isfinite(raw)) else None)
                    if failed and backup is not None:
                        alt, alt_error = _infer(backup, obs)
                        if alt_error is None and np.all(np.isfinite(alt)):
                            raw, fallback_for, failed = alt, failed, None
                    if failed == "exception":
                        fault = "exception"
                inference = clock.now_ns() - t0
                inference_ns.add(inference)
                decision = layer.decide(raw, fault, inference / 1e9, schedule.miss_streak if schedule else 0,
                                        fallback_for=fallback_for)
                try:
                    sent = robot.send(decision.action)
                except ValueError as exc:  # a non-finite action with the safety layer off: the robot refuses it
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                    stop_reason = "fault"
                    if schedule is not None:
                        schedule.done()
                    break
                outcome = robot.outcome()
                total += outcome.reward
                n += 1
                ended = outcome.terminated or outcome.truncated
                terminated += outcome.terminated
                truncated += outcome.truncated and not outcome.terminated
                record = schedule.done() if schedule is not None else None
                tick = record.compute_ns if record is not None else clock.now_ns() - start
                if record is None:
                    tick_ns.add(tick)
                row = {"tick": n - 1, "t_s": (start - schedule.t0_ns) / 1e9 if schedule else (n - 1) * period_s,
                       "slot": record.slot if record else n - 1,
                       "jitter_us": record.jitter_ns / 1e3 if record else 0.0,
                       "compute_us": tick / 1e3,
                       "inference_us": inference / 1e3, "missed": bool(record.missed) if record else False,
                       "obs": None if obs is None else np.asarray(obs, np.float64), "raw": raw, "sent": sent,
                       "reward": outcome.reward, "interventions": decision.kinds, "episode": episodes}
                if on_tick is not None:
                    on_tick(row)
                if telemetry is not None and (n - 1) % every == 0:
                    telemetry({"tick": row["tick"], "t_s": row["t_s"], "obs": _listed(obs), "action": _listed(sent),
                               "missed": schedule.missed if schedule else 0,
                               "interventions": dict(layer.counts), "return": total})
                if signals.received:
                    stop_reason = signals.received
                elif layer.should_stop:
                    stop_reason = "fault"
                elif max_ticks is not None and n >= max_ticks:
                    stop_reason = "ticks" if ticks is not None and n >= ticks else "duration"
                elif schedule is not None and schedule.end_slot is not None and schedule.slot >= schedule.end_slot:
                    stop_reason = "duration"
                elif ended and ticks is None and duration_s is None:
                    stop_reason = "episode"
                if stop_reason:
                    break
                # the spin part of the wait is fine for collecting: the clock spins to the deadline after
                quiet_gc.collect_if_due(None if schedule is None else schedule.time_left_ns() - GC_MARGIN_NS)
                if ended:
                    robot.reset()
                    episodes += 1
    except KeyboardInterrupt:
        stop_reason = "sigint"
    finally:
        try:
            robot.halt(layer.safe)
        finally:
            if realtime:
                release_realtime(rt, affinity)
    inference = _percentiles(inference_ns)
    summary = {"ticks": n}
    if schedule is not None:
        summary.update(schedule.stats())
        summary["slots"] = schedule.slots
    else:
        compute = _percentiles(tick_ns)
        summary.update({"missed": 0, "late_ticks": 0, "skipped_slots": 0, "missed_pct": 0.0, "jitter_p50_us": None,
                        "jitter_p99_us": None, "jitter_max_us": None, "compute_p50_us": compute[0],
                        "compute_p99_us": compute[1], "compute_max_us": compute[2], "slots": n,
                        "percentiles_over_ticks": len(tick_ns.view())})
    summary.update({
        "inference_p50_us": inference[0], "inference_p99_us": inference[1], "inference_max_us": inference[2],
        "interventions": layer.report(), "return": round(total, 6), "terminated": int(terminated),
        "truncated": int(truncated), "episodes": episodes, "sim_dt": robot.sim_dt,
        "rate_hz": rate_hz, "paced": rate_hz is not None,
        "gc": quiet_gc.describe(),
        "wait": dict(clock.describe(), timer_slack_1ns=slack.applied) if schedule is not None and hasattr(clock, "describe")
        else None, "realtime": rt.to_dict() if realtime else
        dict(Realtime().to_dict(), why_not="not requested (--realtime)"),
        "stop_reason": stop_reason, "safety": layer.config.enabled, "robot": robot.name,
        "model": getattr(getattr(policy, "model", None), "path", type(policy).__name__),
        "accelerator": getattr(getattr(policy, "model", None), "accelerator", None),
        "wall_s": round(time.monotonic() - started, 3), "first_error": first_error,
    })
    summary.update(robot.stats())
    if getattr(policy, "warning", None):
        summary["warning"] = policy.warning
    if telemetry is not None:
        telemetry({"summary": summary})
    return summary


def _infer(policy, obs) -> tuple[np.ndarray | None, str | None]:
    try:
        return np.asarray(policy(obs), dtype=np.float32).reshape(-1), None
    except Exception as exc:  # any failure of inference is a safety event, not a crash of the loop
        return None, f"{type(exc).__name__}: {exc}"


def _listed(values) -> list | None:
    return None if values is None else [float(v) for v in np.ravel(values)]

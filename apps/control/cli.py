"""``edgepilot control MODEL --robot ROBOT --rate HZ``: argument parsing and output only; the
loop is :func:`apps.control.run`. Registered by :mod:`edgepilot.cli`; nothing heavy is
imported until the command runs."""
from __future__ import annotations

import argparse
import math
import sys

EXAMPLE = ("edgepilot control runs/pendulum/out/pendulum_tflite_int8.tflite --robot sim:InvertedPendulum-v5 "
           "--rate 500 --duration 10 --json")
EPILOG = f"""robots: sim:ENV (a gymnasium/MuJoCo env, rate-matched: one step = 1/rate s), serial:/dev/ttyX[?baud=N]
  (the frame protocol of docs/control.md)
stop_reason in the summary: duration, ticks, episode, sigterm, sigint, fault
exit codes: 0 ran to the end, 1 error before the robot moved, 5 stopped by a fault
example: {EXAMPLE}"""
EXIT_FAULT = 5


def add_parser(sub) -> None:
    p = sub.add_parser("control", help="drive a robot or simulator with a policy at a fixed rate, with safety",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="policy model (.tflite or .onnx; edgepilot metadata gives normalization and limits)")
    p.add_argument("--robot", required=True, help="sim:ENV or serial:/dev/ttyX[?baud=N]")
    p.add_argument("--rate", type=float, default=None,
                   help="control rate in Hz (default: the rate the policy was trained at)")
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default: one episode)")
    p.add_argument("--ticks", type=int, default=None, help="run exactly this many ticks")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulator's first reset (default 0)")
    p.add_argument("--unpaced", action="store_true", help="sim only: step as fast as possible (no deadlines)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout: telemetry events, then the summary")
    p.add_argument("--log", help="write every tick as a row to this .csv or .parquet file")
    p.add_argument("--plot", help="draw actions, observations, compute time and misses to this .png")
    p.add_argument("--force", action="store_true", help="overwrite --log / --plot files")
    p.add_argument("--realtime", action="store_true",
                   help="ask for SCHED_FIFO, pin a CPU and keep CPUs out of idle states (/dev/cpu_dma_latency); "
                        "each reported as applied or why not; never by default")
    p.add_argument("--spin-us", default="auto", metavar="auto|US",
                   help="busy-wait the last US microseconds before each deadline (default auto: what this "
                        "machine's measured wake-up latency needs; 0: sleep only, the least CPU)")
    p.add_argument("--mqtt", metavar="URL", help="publish telemetry and the summary to mqtt://HOST[:PORT]/TOPIC")
    g = p.add_argument_group("safety (on by default)")
    g.add_argument("--no-safety", action="store_true", help="turn the safety layer off (for comparisons)")
    g.add_argument("--safe-action", help="comma-separated safe action (default: 0, or the middle of the limits)")
    g.add_argument("--action-limits", metavar="LO,HI", help="action limits for every action value (serial robots "
                   "without policy metadata need them)")
    g.add_argument("--max-rate", type=float, default=None, help="largest change of the action per second")
    g.add_argument("--stale-after", type=float, default=0.05, help="seconds without a new observation = stale (0.05)")
    g.add_argument("--budget-ms", type=float, default=None, help="inference time allowed per tick (default: the period)")
    g.add_argument("--miss-streak", type=int, default=5, help="missed deadlines in a row -> safe action (5)")
    g.add_argument("--stop-after", type=float, default=0.5, help="seconds of continuous faults before stopping (0.5)")
    g.add_argument("--fallback", help="a second model used when the first fails (e.g. the fp32 one)")
    g.add_argument("--inject", choices=("nan", "slow", "exception", "freeze"),
                   help="inject a fault for a tenth of the run (demo and tests): NaN from inference, inference "
                        "5x the budget, an inference error, a frozen sensor")
    s = p.add_argument_group("serial")
    s.add_argument("--timeout-ms", type=float, default=20.0, help="wait this long for each state frame (20)")
    p.set_defaults(func=run_control)


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def run_control(args) -> int:
    from pathlib import Path

    import numpy as np

    import edge_runtime
    from apps.common.events import EventWriter
    from apps.control.faults import PolicyFault, sensor_wrappers
    from apps.control.policy import Policy
    from apps.control.record import TickLog
    from apps.control.robot import GymRobot, SerialRobot
    from apps.control.runner import run
    from apps.control.sim import sim_env

    for option, value in (("--log", args.log), ("--plot", args.plot)):
        if value and Path(value).exists() and not args.force:  # refuse before the robot moves, not after
            raise ValueError(f"{option} {value}: already exists; pass --force to overwrite it")
    if args.log:
        from apps.control.record import LOG_SUFFIXES

        if Path(args.log).suffix.lower() not in LOG_SUFFIXES:
            raise ValueError(f"--log {args.log}: expected a .csv or .parquet file name")
        if Path(args.log).suffix.lower() == ".parquet":
            from edge_runtime.deps import require

            require("pyarrow", "--log FILE.parquet")
    spin_us = _spin_us(args.spin_us)
    events = EventWriter(enabled=args.json)
    model = edge_runtime.load(args.model, device="cpu")
    info = model.info
    spec = None
    if info is not None and info.task == "policy" and "policy" in info.extra:
        from apps.control.policy import PolicySpec

        spec = PolicySpec.from_json(info.extra["policy"])
    rate = args.rate if args.rate is not None else (spec.rate_hz if spec else None)
    if rate is None and not args.unpaced:
        raise ValueError(f"{args.model}: no control rate in its metadata; pass --rate HZ")
    safety = {"stale_after_s": args.stale_after, "miss_streak": args.miss_streak, "stop_after_s": args.stop_after,
              "max_rate": args.max_rate, "budget_s": args.budget_ms / 1e3 if args.budget_ms else None}
    if args.safe_action:
        safety["safe_action"] = _floats(args.safe_action, "--safe-action")
    limits = _floats(args.action_limits, "--action-limits") if args.action_limits else None
    if limits is not None and len(limits) != 2:
        raise ValueError(f"--action-limits: expected LO,HI, got {args.action_limits!r}")
    if args.robot.startswith("sim:"):
        env = sim_env(args.robot[4:], None if args.unpaced else rate, duration_s=args.duration)
        if args.inject == "freeze":
            frozen, _, _ = sensor_wrappers()
            total = _planned_ticks(args, rate, env)
            env = frozen(env, start=total // 2, length=max(1, total // 10))
        robot = GymRobot(env, name=args.robot)
    elif args.robot.startswith("serial:"):
        action_size = int(np.prod(model.outputs[0].shape[1:])) if model.outputs else 0
        if limits is not None:
            low, high = [limits[0]] * action_size, [limits[1]] * action_size
        elif spec is not None:
            low, high = spec.action_low, spec.action_high
        else:
            raise ValueError(f"{args.robot}: the model has no policy metadata with action limits; pass --action-limits LO,HI")
        robot = SerialRobot.from_url(args.robot, low, high, timeout_s=args.timeout_ms / 1e3,
                                     safe_action=safety.get("safe_action"))
        if args.inject == "freeze":
            raise ValueError("--inject freeze is for sim: robots (a serial device freezes by itself)")
    else:
        raise ValueError(f"--robot {args.robot!r}: expected sim:ENV or serial:/dev/ttyX[?baud=N]")
    if limits is not None:
        safety["low"], safety["high"] = [limits[0]] * robot.action_spec.size, [limits[1]] * robot.action_spec.size

    log = TickLog() if (args.log or args.plot) else None
    publisher = None
    if args.mqtt:
        from apps.common.mqtt import MqttPublisher

        publisher = MqttPublisher(args.mqtt).start()
        publisher.wait_connected(2.0)

    def telemetry(event):
        if "summary" not in event:  # the summary line is printed once, last, below
            events.emit(event)
        if publisher is not None:
            publisher.publish("summary" if "summary" in event else "telemetry", event)

    with robot:  # connect first: a serial robot's observation size comes from its first answer
        policy = Policy(model, robot.observation_spec.size, robot.action_spec.size)
        if args.inject in ("nan", "slow", "exception"):
            total = _planned_ticks(args, rate, getattr(robot, "env", None))
            period = 1.0 / rate if rate else (robot.sim_dt or 0.02)
            budget = safety["budget_s"] or period
            policy = PolicyFault(policy, args.inject, start=total // 2, length=max(1, total // 10), delay_s=5 * budget)
        fallback = Policy(edge_runtime.load(args.fallback, device="cpu"), robot.observation_spec.size,
                          robot.action_spec.size) if args.fallback else None
        print(f"[edgepilot] control: {args.model} ({model.accelerator}) -> {robot.name} at "
              f"{'unpaced' if args.unpaced else f'{rate:g} Hz'}", file=sys.stderr, flush=True)
        for warning in model.warnings:
            print(f"[edgepilot] control: warning: {warning}", file=sys.stderr, flush=True)
        summary = run(policy, robot, rate_hz=None if args.unpaced else rate, ticks=args.ticks,
                      duration_s=args.duration, seed=args.seed, safety=not args.no_safety, fallback=fallback,
                      realtime=args.realtime, spin_us=spin_us, on_tick=log, telemetry=telemetry,
                      **safety)
    if args.inject:
        summary["injected"] = args.inject
    if publisher is not None:
        publisher.close()
        summary["mqtt"] = publisher.stats()
    if args.json:  # the summary first: a file that cannot be written must not hide what the robot did
        events.summary(summary)
    else:
        print(render(summary))
    if log is not None and not log.rows:
        print("[edgepilot] control: no tick completed; --log / --plot not written", file=sys.stderr)
    elif log is not None:
        if args.log:
            log.write(args.log, force=args.force)
        if args.plot:
            log.plot(args.plot, title=f"{args.model} on {robot.name}", force=args.force)
    return EXIT_FAULT if summary["stop_reason"] == "fault" else 0


def _spin_us(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"--spin-us: expected 'auto' or microseconds >= 0, got {text!r}")
    return value


def _planned_ticks(args, rate, env) -> int:
    if args.ticks:
        return args.ticks
    if args.duration and rate:
        return int(args.duration * rate)
    limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
    return int(limit or 1000)


def render(s: dict) -> str:
    """The summary for people."""
    kinds = ", ".join(f"{k} {v}" for k, v in s["interventions"].items() if v) or "none"
    rt = s["realtime"]
    lines = [
        f"robot {s['robot']}  model {s['model']}",
        f"ticks {s['ticks']}  episodes {s['episodes']}  return {s['return']:.2f}  stop: {s['stop_reason']}",
        f"missed {s['missed']} ({s['missed_pct']:.3f}% of {s['slots']} slots)  jitter p50/p99/max "
        f"{s['jitter_p50_us']}/{s['jitter_p99_us']}/{s['jitter_max_us']} us  compute p50/p99 "
        f"{s['compute_p50_us']}/{s['compute_p99_us']} us",
        f"interventions: {kinds}",
        f"realtime: fifo {rt['fifo']}, cpu {rt['cpu']}, idle poll {rt['idle_poll']}" + (f" ({rt['why_not']})" if rt["why_not"] else ""),
    ]
    if s.get("wait"):
        w = s["wait"]
        lines.append(f"wait: {w['mode']}, spin {w['spin_us']} us at the end, {w['spin_fraction']} of waiting spent "
                     f"spinning; timer slack 1 ns {'applied' if w['timer_slack_1ns'] else 'not applied'}")
    if s.get("first_error"):
        lines.append(f"first inference error: {s['first_error']}")
    return "\n".join(lines)

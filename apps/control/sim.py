"""Rate-matched simulators: one environment step is one tick of the control loop.

``sim_env("InvertedPendulum-v5", 500)`` makes the MuJoCo env with ``frame_skip=1`` and
``model.opt.timestep = 1/500``; Pendulum-v1 gets ``dt = 1/500``. Each step then advances the
simulation by exactly one loop period, so a loop paced at 500 Hz runs simulated time as real
time. The time limit is kept in seconds: the env's own (e.g. 1000 steps x 0.04 s = 40 s for
InvertedPendulum-v5) unless ``duration_s`` says otherwise.

Policies trained at the env's native rate are static maps from observation to action; at a
higher rate they act more often on a finer simulation and keep their behaviour, while per-step
rewards add up over more steps (the return grows with the number of steps)."""
from __future__ import annotations

import math

from edge_runtime.deps import require


def sim_env(env_id: str, rate_hz: float | None = None, duration_s: float | None = None, **make_kwargs):
    """The gymnasium env ``env_id`` stepped at ``rate_hz`` (its native rate when None), with a
    time limit of ``duration_s`` of simulated time (the env's own limit when None)."""
    gym = require("gymnasium", f"the simulator {env_id}")
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"sim:{env_id}: not a registered gymnasium environment ({exc})") from None
    native = gym.make(env_id, **make_kwargs)
    native_dt = float(native.unwrapped.dt)
    native_limit_s = (spec.max_episode_steps or 0) * native_dt or None
    is_mujoco = hasattr(native.unwrapped, "frame_skip")
    native.close()
    rate = 1.0 / native_dt if rate_hz is None else float(rate_hz)
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"sim:{env_id}: rate_hz must be a positive number of steps per second, got {rate_hz}")
    dt = 1.0 / rate
    limit_s = duration_s if duration_s is not None else native_limit_s
    steps = None if limit_s is None else max(1, int(round(limit_s / dt)))
    kwargs = dict(make_kwargs)
    if is_mujoco and rate_hz is not None:
        kwargs["frame_skip"] = 1
    env = gym.make(env_id, max_episode_steps=steps, **kwargs)
    raw = env.unwrapped
    if rate_hz is not None:
        if is_mujoco:
            raw.model.opt.timestep = dt
        elif hasattr(raw, "dt"):
            raw.dt = dt
        else:
            raise ValueError(f"sim:{env_id}: cannot set the timestep of this environment (neither MuJoCo nor a 'dt')")
    if abs(float(raw.dt) - dt) > 1e-12:
        raise ValueError(f"sim:{env_id}: the env steps {raw.dt} s, expected {dt} s")
    return env

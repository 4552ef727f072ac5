"""Closed-loop evaluation of a policy: the return it earns, which is what a policy is worth
(a small per-step action error can still drop the pendulum).

``evaluate_policy`` runs any model ``edge_runtime`` loads (.tflite, .onnx) through the same
loop and safety layer as ``edgepilot control`` (:func:`apps.control.run`, unpaced, at the
env's native rate), one episode per seed."""
from __future__ import annotations

import os

import numpy as np


def evaluate_policy(model_path: str | os.PathLike, env_id: str | None = None, episodes: int = 20, seed: int = 0,
                    rate_hz: float | None = None, safety: bool = True) -> dict:
    """Mean / std / min / max return of ``model_path`` on ``episodes`` seeds ``seed, seed+1, ...``.

    ``env_id`` defaults to the one in the model's policy metadata; ``rate_hz`` to the env's
    native rate (the simulator is rate-matched otherwise). Interventions of the safety layer
    are summed over the episodes, so a return that needed clamping shows it."""
    import edge_runtime
    from apps.control import Policy, run, sim_env

    model = edge_runtime.load(model_path, device="cpu")
    info = model.info
    if env_id is None:
        if info is None or info.task != "policy" or "policy" not in info.extra:
            raise ValueError(f"{model_path}: no policy metadata; pass env_id")
        from apps.control.policy import PolicySpec

        env_id = PolicySpec.from_json(info.extra["policy"]).env_id
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    returns, interventions, lengths = [], {}, []
    policy = None
    for i in range(episodes):
        env = sim_env(env_id, rate_hz)
        if policy is None:
            policy = Policy(model, int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)))
        summary = run(policy, env, seed=seed + i, safety=safety)
        returns.append(summary["return"])
        lengths.append(summary["ticks"])
        for kind, count in summary["interventions"].items():
            interventions[kind] = interventions.get(kind, 0) + count
    r = np.asarray(returns, dtype=np.float64)
    return {"env_id": env_id, "model": str(model_path), "episodes": episodes, "seed": seed,
            "return_mean": float(r.mean()), "return_std": float(r.std()), "return_min": float(r.min()),
            "return_max": float(r.max()), "steps_mean": float(np.mean(lengths)), "interventions": interventions,
            "returns": [float(v) for v in r]}

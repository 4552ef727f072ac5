"""``train_policy(env_id, out_dir)``: expert -> behaviour cloning + DAgger -> a training folder
that ``edgepilot convert DIR`` converts as it is.

The folder holds ``saved_model/`` and ``model.keras`` (the same Keras 3 MLP), ``calib.npz``
(``x``: observations in the model's input form, i.e. already standardized, visited by the
student in the last DAgger round and by the expert, for int8 calibration) and
``training.json``: what was trained, the model's metadata (task ``policy``, per-feature
standardization in ``preprocess.mean/std``, :class:`~apps.control.policy.PolicySpec` in
``extra["policy"]``), the expert's and the student's returns, and the DAgger history."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from apps.control.policy import POLICY_TASK, PolicySpec
from edge_runtime.metadata import ModelMetadata, Preprocess
from train.policy.bc import BCConfig, default_config, numpy_forward, train_bc
from train.policy.experts import make_expert, rollout_return

# Units of each observation / action value, as the environments document them.
UNITS = {
    "InvertedPendulum-v5": (("m", "rad", "m/s", "rad/s"), ("actuator command (gear 100)",)),
    "InvertedDoublePendulum-v5": (("m", "1", "1", "1", "1", "m/s", "rad/s", "rad/s", "N"),
                                  ("actuator command (gear 500)",)),
    "Pendulum-v1": (("1", "1", "rad/s"), ("N m",)),
    "Reacher-v5": (("1", "1", "1", "1", "m", "m", "rad/s", "rad/s", "m", "m"),
                   ("actuator command (gear 200)", "actuator command (gear 200)")),
}

CALIB_SAMPLES = 1000


def policy_metadata(env, norm, rate_hz: float) -> ModelMetadata:
    env_id = env.spec.id
    obs_units, action_units = UNITS.get(env_id, ((), ()))
    o, a = env.observation_space, env.action_space
    spec = PolicySpec(env_id=env_id, rate_hz=float(rate_hz), obs_size=int(np.prod(o.shape)),
                      action_size=int(np.prod(a.shape)), obs_low=tuple(np.ravel(o.low).astype(float).tolist()),
                      obs_high=tuple(np.ravel(o.high).astype(float).tolist()),
                      action_low=tuple(np.ravel(a.low).astype(float).tolist()),
                      action_high=tuple(np.ravel(a.high).astype(float).tolist()),
                      obs_units=obs_units, action_units=action_units)
    pre = Preprocess(kind="array", mean=tuple(float(v) for v in norm.obs_mean), std=tuple(float(v) for v in norm.obs_std))
    return ModelMetadata(task=POLICY_TASK, input_layout="NC", preprocess=pre, extra={"policy": spec.to_json()})


def train_policy(env_id: str, out_dir: str | os.PathLike, *, rate_hz: float | None = None, config: BCConfig | None = None,
                 eval_episodes: int = 10, seed: int = 0, force: bool = False, progress=None, **overrides) -> dict:
    """Train a policy for ``env_id`` into ``out_dir`` and return what ``training.json`` holds.

    ``rate_hz``: the control rate to train at (the env's native rate when None; otherwise the
    rate-matched simulator of :func:`apps.control.sim_env`). ``config`` or keyword overrides
    of :class:`~train.policy.bc.BCConfig` (e.g. ``dagger_rounds=1, epochs=2`` for a quick run).
    Existing outputs are kept unless ``force``; the folder is written atomically."""
    from apps.control.sim import sim_env

    say = progress or (lambda message: None)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out}: already exists and is not empty; pass force=True (--force) to replace it")
    config = config or default_config(env_id, seed=seed, **overrides)
    env = sim_env(env_id, rate_hz)
    rate = 1.0 / float(env.unwrapped.dt)
    expert = make_expert(env)
    started = time.monotonic()
    model, norm, data, history = train_bc(env, expert, config, progress=say)
    train_s = time.monotonic() - started

    forward = numpy_forward(model, config.activation)

    def student(o):
        return norm.action_out(forward(norm.obs_in(np.asarray(o, np.float64)[None]))[0])

    eval_seeds = [10_000 + seed * 1000 + i for i in range(eval_episodes)]
    expert_returns = [rollout_return(env, expert, s) for s in eval_seeds]
    student_returns = [rollout_return(env, student, s) for s in eval_seeds]
    say(f"expert return {np.mean(expert_returns):.2f}, student (float, Keras) {np.mean(student_returns):.2f} "
        f"over {eval_episodes} seeds")

    metadata = policy_metadata(env, norm, rate)
    obs, _ = data.arrays()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(obs), size=min(CALIB_SAMPLES, len(obs)), replace=False)
    calib = norm.obs_in(obs[pick])
    report = {
        "kind": "policy", "env_id": env_id, "rate_hz": rate, "model": "model.keras", "saved_model": "saved_model",
        "calib": "calib.npz", "metadata": json.loads(metadata.to_json()), "config": _jsonable(asdict(config)),
        "expert": {"name": type(expert).__name__, "return_mean": float(np.mean(expert_returns)),
                   "return_std": float(np.std(expert_returns)), "returns": expert_returns},
        "student": {"return_mean": float(np.mean(student_returns)), "return_std": float(np.std(student_returns)),
                    "returns": student_returns},
        "eval_seeds": eval_seeds, "history": history, "samples": len(data), "train_s": round(train_s, 1),
        "qat": False,
    }
    _write_folder(out, model, calib, report, force)
    say(f"wrote {out}/saved_model, model.keras, calib.npz, training.json")
    return report


def _write_folder(out: Path, model, calib: np.ndarray, report: dict, force: bool) -> None:
    """Write everything into a temporary sibling folder, then move it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save(work / "model.keras")
        model.export(str(work / "saved_model"), format="tf_saved_model", verbose=False)
        np.savez(work / "calib.npz", x=calib.astype(np.float32))
        (work / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            if not force:
                raise FileExistsError(f"{out}: appeared while training; pass force=True to replace it")
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value

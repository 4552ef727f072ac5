"""``train_policy(env_id, out_dir)``: expert -> behaviour cloning + DAgger -> a training folder
that ``edgepilot convert DIR`` converts as it is.

The folder holds ``saved_model/`` and ``model.keras`` (the same Keras 3 MLP), the sidecar
``saved_model.json`` with the model's edgepilot metadata (which convert stores in every variant), ``calib.npz``
(``x``: observations in the model's input form, i.e. already standardized, for int8
calibration: see :func:`calibration_samples`) and
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
from convert.files import usual_permissions
from edge_runtime.metadata import METADATA_KEY, ModelMetadata, Preprocess
from train.policy.bc import BCConfig, default_config, numpy_forward, rollout, train_bc
from train.policy.experts import make_expert, rollout_return
from train.qat import QAT_FILE

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
CALIB_LIMIT_SIGMA = 6.0


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


def calibration_samples(norm, trained_on: np.ndarray, deployed: np.ndarray, seed: int,
                        limit_sigma: float = CALIB_LIMIT_SIGMA) -> np.ndarray:
    """int8 calibration samples in the model's input form: half from the states the trained
    student visits (what it meets when deployed), half from all the training data (the
    recoveries DAgger taught it, so a push does not saturate the int8 input). Samples with a
    feature beyond ``limit_sigma`` standard deviations are left out: early DAgger students
    wander far, and one such state would stretch the input scale for all the others."""
    rng = np.random.default_rng(seed)
    parts = []
    for pool in (norm.obs_in(deployed), norm.obs_in(trained_on)):
        pool = pool[np.all(np.abs(pool) <= limit_sigma, axis=1)]
        if len(pool):
            parts.append(pool[rng.choice(len(pool), size=min(CALIB_SAMPLES // 2, len(pool)), replace=False)])
    if not parts:
        raise ValueError(f"no observation within {limit_sigma} standard deviations to calibrate with")
    return np.concatenate(parts).astype(np.float32)


QAT_EPOCHS = 10


def train_policy(env_id: str, out_dir: str | os.PathLike, *, rate_hz: float | None = None, config: BCConfig | None = None,
                 eval_episodes: int = 10, seed: int = 0, force: bool = False, qat: bool = False,
                 qat_epochs: int = QAT_EPOCHS, progress=None, **overrides) -> dict:
    """Train a policy for ``env_id`` into ``out_dir`` and return what ``training.json`` holds.

    ``rate_hz``: the control rate to train at (the env's native rate when None; otherwise the
    rate-matched simulator of :func:`apps.control.sim_env`). ``config`` or keyword overrides
    of :class:`~train.policy.bc.BCConfig` (e.g. ``dagger_rounds=1, epochs=2`` for a quick run).
    Existing outputs are kept unless ``force``; the folder is written atomically.

    ``qat``: after behaviour cloning, fine-tune with fake quantization (tfmot, in a tf_keras
    child process) for ``qat_epochs`` on the same data and write ``model_qat_int8.tflite``
    (full integer, the learned ranges), with its closed-loop return on the evaluation seeds
    in ``training.json["qat"]`` next to the float student's."""
    from apps.control.sim import sim_env

    say = progress or (lambda message: None)
    if qat:  # before minutes of training, not after
        from edge_runtime.deps import require

        require("tf_keras", "--qat")
        require("tensorflow_model_optimization", "--qat")
        if qat_epochs < 1:
            raise ValueError(f"--qat-epochs must be >= 1, got {qat_epochs}")
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
    student_runs = [rollout(env, student, expert, s, None) for s in eval_seeds]
    student_returns = [total for _, _, total in student_runs]
    visited = np.concatenate([o for o, _, _ in student_runs])
    labels = np.concatenate([a for _, a, _ in student_runs])
    predicted = np.array([student(o) for o in visited[:: max(1, len(visited) // 2000)]])
    action_rmse = float(np.sqrt(np.mean((predicted - labels[:: max(1, len(visited) // 2000)]) ** 2)))
    say(f"expert return {np.mean(expert_returns):.2f}, student (float, Keras) {np.mean(student_returns):.2f} "
        f"over {eval_episodes} seeds")

    metadata = policy_metadata(env, norm, rate)
    calib = calibration_samples(norm, data.arrays()[0], visited, seed)
    report = {
        "kind": "policy", "task": POLICY_TASK, "env_id": env_id, "rate_hz": rate, "model": "model.keras", "saved_model": "saved_model",
        "calib": "calib.npz", "metadata": json.loads(metadata.to_json()), "config": _jsonable(asdict(config)),
        "expert": {"name": type(expert).__name__, "return_mean": float(np.mean(expert_returns)),
                   "return_std": float(np.std(expert_returns)), "returns": expert_returns},
        "student": {"return_mean": float(np.mean(student_returns)), "return_std": float(np.std(student_returns)),
                    "returns": student_returns, "action_rmse": action_rmse},
        "eval_seeds": eval_seeds, "history": history, "samples": len(data), "train_s": round(train_s, 1),
        "qat": False,
    }
    qat_file, qat_error = None, None
    if qat:
        try:
            qat_file, report["qat"] = _quantization_aware(model, config, norm, data, calib, metadata, env_id,
                                                          rate_hz, eval_seeds, qat_epochs,
                                                          report["student"]["return_mean"], say)
        except (RuntimeError, OSError, ValueError) as exc:  # the float policy is trained: keep it
            qat_error = f"{type(exc).__name__}: {exc}"
            report["qat"] = {"error": qat_error}
    _write_folder(out, model, calib, report, force, qat_file)
    say(f"wrote {out}/saved_model, model.keras, calib.npz, training.json" + (f", {QAT_FILE}" if qat_file else ""))
    if qat_error:
        raise RuntimeError(f"--qat failed ({qat_error}); the float policy is in {out}")
    return report


def _quantization_aware(model, config, norm, data, calib, metadata, env_id, rate_hz, eval_seeds, epochs,
                        float_return, say) -> tuple[tuple, dict]:
    """``((int8 bytes with metadata embedded, their metadata), metrics)``: the QAT model and its
    closed-loop return on ``eval_seeds``, through the same loop as ``edgepilot control``."""
    from dataclasses import replace

    from convert.metadata_io import embed_tflite
    from train.policy.evaluate import evaluate_policy
    from train.qat import qat_policy

    obs, act = data.arrays()
    content = qat_policy(model, config, norm.obs_in(obs), norm.action_in(act), calib, epochs, progress=say)
    qat_meta = replace(metadata, variant="tflite_int8_qat", source="model.keras")
    content = embed_tflite(content, qat_meta)
    with tempfile.TemporaryDirectory(prefix="edgepilot-qat-") as tmp:
        path = Path(tmp) / QAT_FILE
        path.write_bytes(content)
        result = evaluate_policy(path, env_id, episodes=len(eval_seeds), seed=eval_seeds[0], rate_hz=rate_hz)
    metrics = {"return_mean": result["return_mean"], "return_std": result["return_std"],
               "return_min": result["return_min"], "returns": result["returns"],
               "interventions": result["interventions"], "float_return_mean": float_return, "epochs": epochs}
    say(f"qat: int8 return {result['return_mean']:.2f} (float student {float_return:.2f}) over {len(eval_seeds)} seeds")
    return (content, qat_meta), metrics


def _write_folder(out: Path, model, calib: np.ndarray, report: dict, force: bool, qat_file: tuple | None = None) -> None:
    """Write everything into a temporary sibling folder, then move it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    usual_permissions(work)
    try:
        if qat_file is not None:
            from convert.metadata_io import sidecar_json

            content, qat_meta = qat_file
            (work / QAT_FILE).write_bytes(content)
            (work / QAT_FILE).with_suffix(".json").write_text(sidecar_json(qat_meta), encoding="utf-8")
        model.save(work / "model.keras")
        model.export(str(work / "saved_model"), format="tf_saved_model", verbose=False)
        np.savez(work / "calib.npz", x=calib.astype(np.float32))
        (work / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        # the sidecar convert reads next to the SavedModel (edge_runtime's sidecar form)
        sidecar = {METADATA_KEY: report["metadata"]}
        (work / "saved_model.json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            if not force and any(out.iterdir()):
                raise FileExistsError(f"{out}: appeared while training; pass force=True to replace it")
            shutil.rmtree(out)  # an empty folder given as --out, or the one --force replaces
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

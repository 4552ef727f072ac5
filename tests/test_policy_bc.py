"""Behaviour cloning for a few steps, end to end: train -> the training folder -> convert to
float and int8 TFLite -> drive the simulator through the control loop."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("gymnasium")


@pytest.mark.slow
def test_bc_into_convert_and_the_loop(tmp_path):
    from apps.control import run, sim_env
    from convert.options import ConvertOptions
    from convert.workflow import convert_model
    from edge_runtime.metadata import ModelMetadata
    from train.policy import evaluate_policy, train_policy

    out = tmp_path / "ip"
    report = train_policy("InvertedPendulum-v5", out, eval_episodes=2, expert_episodes=2, dagger_rounds=1,
                          dagger_episodes=1, epochs=15, max_steps=300)
    assert {p.name for p in out.iterdir()} == {"saved_model", "saved_model.json", "model.keras", "calib.npz",
                                               "training.json"}
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's private one
    saved = json.loads((out / "training.json").read_text())
    assert saved["kind"] == "policy" and saved["env_id"] == "InvertedPendulum-v5" and saved["rate_hz"] == 25.0
    assert report["expert"]["return_mean"] == 1000.0
    calib = np.load(out / "calib.npz")["x"]
    assert calib.dtype == np.float32 and calib.shape[1] == 4
    # standardized (the model's input form; raw observations here are ~0.01), far outliers left out
    assert np.abs(calib).max() <= 6.0 and calib.std() > 0.1
    with pytest.raises(FileExistsError):
        train_policy("InvertedPendulum-v5", out, epochs=1)

    meta = ModelMetadata.from_json(json.dumps(saved["metadata"]))
    card = convert_model(ConvertOptions(model=out / "saved_model", out_dir=tmp_path / "conv", calib=out / "calib.npz",
                                 targets=("tflite_fp32", "tflite_int8"), metadata=meta, bench_runs=5))
    assert all(r.ok for r in card.results), [(r.target, r.reason) for r in card.results]
    # a policy's report card shows its closed-loop return next to the action error
    assert all(r.closed_loop_return is not None and r.closed_loop_return > 0 for r in card.results)
    assert "Closed-loop return" in card.markdown()
    (int8,) = (tmp_path / "conv").glob("*_tflite_int8.tflite")
    result = evaluate_policy(int8, episodes=2, seed=0)
    assert result["env_id"] == "InvertedPendulum-v5" and result["episodes"] == 2
    # a student trained for seconds balances far longer than doing nothing (which falls after ~20 steps);
    # the full-length training reaches 1000 (bench/control.py measures that)
    assert result["return_mean"] >= 100
    summary = run(str(int8), sim_env("InvertedPendulum-v5", 500, duration_s=1.0), rate_hz=500, duration_s=0.5, seed=0)
    assert summary["stop_reason"] == "duration" and summary["terminated"] == 0
    assert summary["accelerator"].startswith("cpu")


@pytest.mark.slow
def test_train_policy_qat_writes_a_full_integer_model_with_its_return(tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter

    import edge_runtime
    from edgepilot.cli import main
    from train.policy import evaluate_policy

    out = tmp_path / "ip"
    code = main(["train", "policy", "--env", "InvertedPendulum-v5", "--out", str(out), "--expert-episodes", "2",
                 "--rounds", "1", "--dagger-episodes", "1", "--epochs", "15", "--eval-episodes", "2",
                 "--qat", "--qat-epochs", "2"])
    assert code == 0, capsys.readouterr().err
    assert "int8 after QAT" in capsys.readouterr().out
    qat_file = out / "model_qat_int8.tflite"
    assert {"model_qat_int8.tflite", "model_qat_int8.json", "saved_model", "calib.npz"} <= {p.name for p in out.iterdir()}
    # full integer: int8 in and out, and no float op or (de)quantize step inside
    interpreter = Interpreter(str(qat_file))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert {d["op_name"] for d in interpreter._get_ops_details()} <= {"FULLY_CONNECTED", "TANH"}
    info = edge_runtime.load(qat_file, device="cpu").info
    assert info.task == "policy" and info.variant == "tflite_int8_qat" and len(info.preprocess.mean) == 4
    # the recorded return is the file's own, measured through the control loop on the evaluation seeds
    record = json.loads((out / "training.json").read_text())
    again = evaluate_policy(qat_file, episodes=2, seed=record["eval_seeds"][0])
    assert record["qat"]["returns"] == again["returns"] and record["qat"]["epochs"] == 2
    assert record["qat"]["float_return_mean"] == record["student"]["return_mean"]
    assert again["return_mean"] >= 0.95 * record["student"]["return_mean"]
    assert main(["train", "policy", "--env", "Pendulum-v1", "--out", str(tmp_path / "p"), "--qat-epochs", "2"]) == 1
    assert "--qat-epochs: only with --qat" in capsys.readouterr().err
    assert main(["train", "policy", "--env", "Pendulum-v1", "--out", str(tmp_path / "p"), "--qat",
                 "--qat-epochs", "0"]) == 1
    assert "--qat-epochs must be >= 1, got 0" in capsys.readouterr().err

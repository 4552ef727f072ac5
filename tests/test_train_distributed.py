"""Training beyond one device with TensorFlow's own engine: MirroredStrategy over two logical CPU
devices, and MultiWorkerMirroredStrategy with two worker processes on loopback that must end
with the same weights (they all-reduce every gradient)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, has

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not has("tensorflow"), reason="needs TensorFlow")]
CHILD = Path(__file__).with_name("distributed_child.py")


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    """64 images of 16x16: class 1 has a bright square, class 0 does not."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, (64, 16, 16), dtype=np.uint8)
    y = np.arange(64) % 2
    x[y == 1, 4:10, 4:10] = 250
    path = tmp_path_factory.mktemp("dist") / "tiny.npz"
    np.savez(path, x=x, y=y, labels=np.array(["plain", "square"]))
    return path


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def test_mirrored_strategy_trains_on_two_logical_cpus(tiny_npz, tmp_path):
    done = subprocess.run([sys.executable, str(CHILD), "mirrored", str(tiny_npz), str(tmp_path / "out")],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESULT 2 MirroredStrategy" in done.stdout
    record = json.loads((tmp_path / "out" / "training.json").read_text())
    assert record["replicas"] == 2 and record["strategy"] == "MirroredStrategy"
    assert (tmp_path / "out" / "saved_model" / "saved_model.pb").is_file()


def _two_workers(tiny_npz, tmp_path, *extra: str, timeout_s: float = 600) -> list[tuple[str, str]]:
    """Both workers of a loopback cluster, each with its own --out (out0, out1); their (stdout, stderr)."""
    from conftest import free_port

    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, str(CHILD), "multiworker", str(tiny_npz), str(tmp_path / f"out{index}"), *extra],
            env=_env(TF_CONFIG=config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=timeout_s) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return outputs


def test_two_workers_on_loopback_agree_on_the_weights(tiny_npz, tmp_path):
    _two_workers(tiny_npz, tmp_path)
    # the same cluster again over the same folders with --force: each worker starts over from
    # its own cleared checkpoints (a worker that restored the first run's would skip the epochs
    # the chief trains, and the two would fail at their first mismatched all-reduce)
    outputs = _two_workers(tiny_npz, tmp_path, "--force", timeout_s=300)
    assert (tmp_path / "out1" / "worker-1" / "checkpoints" / "history.csv").is_file()
    assert not (tmp_path / "out1" / "checkpoints").exists()  # a worker writes only inside worker-1/
    chief = _weights(tmp_path / "out0" / "model.keras")
    worker = _weights(tmp_path / "out1" / "worker-1" / "model.keras")
    assert len(chief) == len(worker) > 0
    for a, b in zip(chief, worker):
        np.testing.assert_array_equal(a, b)
    record = json.loads((tmp_path / "out0" / "training.json").read_text())
    assert record["replicas"] == 2 and record["strategy"] == "MultiWorkerMirroredStrategy"
    assert len(record["history"]["loss"]) == 2
    # each worker reports where it saved (the other worker's result names its own copy)
    assert outputs[0][0].startswith(f"{tmp_path / 'out0'}: ") and outputs[1][0].startswith(f"{tmp_path / 'out1' / 'worker-1'}: ")

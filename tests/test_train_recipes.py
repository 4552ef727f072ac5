"""The vision recipes: each recipe trained for a few steps end to
end through `edgepilot train`, `edgepilot convert DIR` (which finds model, metadata and data by
itself), the runtime and `edgepilot eval`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, has

needs_tf = pytest.mark.skipif(not has("tensorflow"), reason="needs TensorFlow")


# ----- end to end ----------------------------------------------------------------------------

def _edgepilot(*argv, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("EDGEPILOT_VERBOSE", None)
    return subprocess.run([sys.executable, "-m", "edgepilot.cli", *map(str, argv)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    from train.scenes import make_scenes

    if not Path("/usr/share/datasets/fashion-mnist").is_dir() or not Path("/usr/share/darknet/data").is_dir():
        from conftest import require_system

        require_system(False, "Debian packages dataset-fashion-mnist and darknet (make test installs them)")
    out = tmp_path_factory.mktemp("scenes") / "set"
    make_scenes(out, seed=5, counts={"train": 24, "val": 8, "test": 8})
    return out


@needs_tf
@pytest.mark.slow
def test_detector_trains_converts_runs_and_evaluates(scenes, tmp_path):
    run = tmp_path / "det"
    done = _edgepilot("train", "detector", "--data", scenes / "data.yaml", "--out", run, "--epochs", "1",
                      "--batch-size", "8", "--input-size", "96x128", "--quiet", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    # stdout is the result alone: Keras' epoch lines went to stderr with the progress
    assert json.loads(done.stdout)["metrics"]["task"] == "detection" and " - loss: " in done.stderr
    assert "cudart_stub" not in done.stderr and "oneDNN" not in done.stderr  # TensorFlow's start-up lines
    for name in ("model.keras", "model.json", "saved_model/saved_model.pb", "saved_model.json", "training.json",
                 "training.png", "checkpoints/history.csv"):
        assert (run / name).exists(), name
    meta = json.loads((run / "saved_model.json").read_text())["edgepilot"]
    assert meta["task"] == "detection" and meta["extra"]["decoder"] == "edgepilot"
    assert meta["labels"] == ["Trouser", "Pullover", "Sneaker", "Bag", "Ankle boot"]
    assert meta["preprocess"]["resize"] == "letterbox" and meta["preprocess"]["size"] == [96, 128]
    record = json.loads((run / "training.json").read_text())
    assert record["metrics"]["task"] == "detection" and record["metrics"]["images"] == 8
    assert len(record["history"]["loss"]) == 1 and "val_map50" in record["history"]

    again = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "1")
    assert again.returncode == 1 and "--resume" in again.stderr  # never over an earlier run
    other = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "2", "--batch-size", "8",
                       "--input-size", "96x128", "--width", "2", "--resume", "--quiet")  # a checkpoint of width 1
    message = [line for line in other.stderr.splitlines() if line.startswith("edgepilot train: error:")]
    assert other.returncode == 1 and len(message) == 1, other.stderr[-3000:]
    assert f"{run}: --resume: this run was trained with --width 1.0; resume it with --width 1.0 (got 2.0)" in message[0]
    other = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "2", "--batch-size", "8",
                       "--input-size", "96x128", "--head", "decoupled", "--resume", "--quiet")  # a shared head's
    message = [line for line in other.stderr.splitlines() if line.startswith("edgepilot train: error:")]
    assert other.returncode == 1 and len(message) == 1, other.stderr[-3000:]
    assert "this run was trained with --head shared; resume it with --head shared (got decoupled)" in message[0]
    # without the choices file (a run of an earlier edgepilot), the checkpoint loader's own check still names the folder
    (run / "checkpoints" / "run.json").rename(run / "run.json.kept")
    (run / "training.json").rename(run / "training.json.kept")
    other = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "2", "--batch-size", "8",
                       "--input-size", "96x128", "--head", "decoupled", "--resume", "--quiet")
    message = [line for line in other.stderr.splitlines() if line.startswith("edgepilot train: error:")]
    assert other.returncode == 1 and len(message) == 1, other.stderr[-3000:]
    assert f"{run / 'checkpoints'}: --resume cannot load this checkpoint" in message[0] and "--head" in message[0]
    (run / "run.json.kept").rename(run / "checkpoints" / "run.json")
    (run / "training.json.kept").rename(run / "training.json")
    resumed = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "2", "--batch-size", "8",
                         "--input-size", "96x128", "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    second = json.loads((run / "training.json").read_text())
    assert len(second["history"]["loss"]) == 2  # one more epoch, not two
    finished = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "2", "--batch-size", "8",
                          "--input-size", "96x128", "--resume", "--quiet")
    assert finished.returncode == 1 and f"{run}: --resume: this run has already trained 2 epochs" in finished.stderr
    # time covers both runs; images/s is the resumed process's one epoch over its own time
    images = record["images_per_s"] * record["seconds"]  # training images per epoch
    assert second["seconds"] > record["seconds"]
    assert second["images_per_s"] * (second["seconds"] - record["seconds"]) == pytest.approx(images, rel=1e-6)

    conv = tmp_path / "conv"
    done = _edgepilot("convert", run, "--out", conv, "--targets", "tflite_fp32", "tflite_int8", "--bench-runs", "3",
                      "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cudart_stub" not in done.stderr and "oneDNN" not in done.stderr
    card = json.loads(done.stdout)
    assert card["reference_map50"] is not None and card["metric"] == "mAP@0.5 (x100)"
    assert all(r["map50"] is not None and r["map50_95"] is not None for r in card["results"])
    int8 = conv / "det_tflite_int8.tflite"
    assert int8.is_file() and json.loads(int8.with_suffix(".json").read_text())["edgepilot"]["extra"]["decoder"] == "edgepilot"

    import edge_runtime
    from apps.camera.detector import Detector

    model = edge_runtime.load(int8, device="cpu")
    assert model.inputs[0].dtype == np.int8 and model.info.task == "detection"
    detector = Detector(model)
    assert detector.decoder_name == "edgepilot" and detector.resize == "letterbox"

    done = _edgepilot("eval", int8, "--data", scenes, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["task"] == "detection" and result["split"] == "test" and result["images"] == 8
    assert set(result["per_class"]) == set(meta["labels"]) and 0.0 <= result["map50"] <= 1.0
    assert result["map50_95"] <= result["map50"]
    # labels of other names: evaluated by class id, and the CLI says so on stderr
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(f"path: {scenes}\ntrain: images/train\ntest: images/test\nnames: [a, Pullover, c, Bag, e]\n")
    done = _edgepilot("eval", int8, "--data", renamed, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["label_mismatch"]["data"] == ["a", "Pullover", "c", "Bag", "e"]
    assert "warning: the model's labels differ from the data set's" in done.stderr
    assert "0: Trouser / a; 2: Sneaker / c; 4: Ankle boot / e" in done.stderr
    # the Keras file gives the float model's figure through TensorFlow
    done = _edgepilot("eval", run / "model.keras", "--data", scenes / "data.yaml", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert abs(json.loads(done.stdout)["map50"] - card["reference_map50"]) < 1e-6


@needs_tf
@pytest.mark.slow
@pytest.mark.parametrize("head", ["shared", "decoupled"])
def test_detector_qat_fine_tunes_and_exports_full_int8_with_its_metadata(scenes, tmp_path, head):
    run = tmp_path / "det"
    done = _edgepilot("train", "detector", "--data", scenes, "--out", run, "--epochs", "1", "--batch-size", "8",
                      "--input-size", "96x128", "--qat", "--qat-epochs", "1", "--quiet", "--patience", "0",
                      "--head", head)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "training.json").read_text())
    qat = record["qat"]
    assert qat["epochs"] == 1 and qat["split"] == "test" and 0.0 <= qat["map50"] <= 1.0
    assert qat["float_map50"] == record["metrics"]["map50"]

    import edge_runtime

    model = edge_runtime.load(run / "model_qat_int8.tflite", device="cpu")
    assert model.inputs[0].dtype == np.int8 and model.info.task == "detection"
    assert model.info.extra["decoder"] == "edgepilot" and model.info.preprocess.size == (96, 128)
    assert model.info.extra["head"] == head and record["options"]["head"] == head
    assert model.op_histogram().get("DEQUANTIZE", 0) == 0  # no layer fell back to float
    # batch 1, no TILE: XNNPACK takes the whole graph, as for the post-training int8 model
    assert model.inputs[0].shape[0] == 1 and model.delegation.full, str(model.delegation)


@pytest.fixture(scope="module")
def squares_npz(tmp_path_factory) -> Path:
    """A tiny two-class set: class 1 images hold a bright square, class 0 do not (uint8 pixels)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 70, (160, 20, 20), dtype=np.uint8)
    y = np.arange(160) % 2
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, 12, 2)
        x[i, r:r + 8, c:c + 8] = 240
    path = tmp_path_factory.mktemp("cls") / "squares.npz"
    np.savez(path, x=x[:120], y=y[:120], x_test=x[120:], y_test=y[120:], labels=np.array(["plain", "square"]))
    return path


@needs_tf
@pytest.mark.slow
def test_classifier_trains_with_qat_and_converts_from_its_folder(squares_npz, tmp_path):
    run = tmp_path / "cls"
    # 12 epochs of 14 steps: enough for batch norm's running statistics to follow the data
    done = _edgepilot("train", "classifier", "--data", squares_npz, "--out", run, "--epochs", "12", "--batch-size",
                      "8", "--qat", "--qat-epochs", "1", "--quiet", "--patience", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "training.json").read_text())
    assert record["metrics"]["task"] == "classification" and record["metrics"]["images"] == 40
    assert record["metrics"]["top1"] >= 75.0, record["metrics"]  # a bright square is easy to see
    assert record["qat"]["top1"] >= record["metrics"]["top1"] - 10.0, record["qat"]
    import edge_runtime

    qat = edge_runtime.load(run / "model_qat_int8.tflite", device="cpu")
    assert qat.inputs[0].dtype == np.int8 and qat.info.labels == ("plain", "square")
    assert qat.info.preprocess.scale == pytest.approx(1 / 255)
    conv = tmp_path / "conv"
    done = _edgepilot("convert", run, "--out", conv, "--targets", "tflite_int8", "--bench-runs", "3", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads(done.stdout)
    assert card["labelled"] and card["eval_samples"] == 40 and card["results"][0]["top1"] is not None
    done = _edgepilot("eval", conv / "cls_tflite_int8.tflite", "--data", run / "eval.npz", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["top1"] == pytest.approx(card["results"][0]["top1"])


def test_train_errors_are_one_line(tmp_path):
    done = _edgepilot("train", "detector", "--data", tmp_path / "missing.yaml", "--out", tmp_path / "o")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.yaml" in lines[0] and "Traceback" not in done.stderr
    bad = tmp_path / "bad"
    (bad / "images" / "train").mkdir(parents=True)
    (bad / "labels" / "train").mkdir(parents=True)
    import cv2

    cv2.imwrite(str(bad / "images" / "train" / "a.jpg"), np.zeros((40, 40, 3), np.uint8))
    (bad / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    (bad / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [thing]\n")
    done = _edgepilot("train", "detector", "--data", bad, "--out", tmp_path / "o2", "--epochs", "1")
    assert done.returncode == 1 and "a.txt" in done.stderr and "line 2" in done.stderr
    # a run that fails on its data leaves no folder behind, so the fixed command runs as it is
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()
    (bad / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    done = _edgepilot("train", "detector", "--data", bad, "--out", tmp_path / "o3", "--input-size", "50")
    assert done.returncode == 1 and "multiples of 32" in done.stderr and not (tmp_path / "o3").exists()


def test_eval_refuses_a_data_set_with_another_number_of_classes_and_flags_other_names():
    from edge_runtime.metadata import ModelMetadata
    from train.evaluate import _label_mismatch

    meta = ModelMetadata(task="detection", labels=("cat", "dog"))
    assert _label_mismatch(Path("m.tflite"), meta, ("cat", "dog"), "d.yaml") == {}
    assert _label_mismatch(Path("m.tflite"), None, ("cat", "dog"), "d.yaml") == {}  # nothing to compare with
    assert _label_mismatch(Path("m.tflite"), meta, ("dog", "cat"), "d.yaml") == {
        "label_mismatch": {"model": ["cat", "dog"], "data": ["dog", "cat"]}}
    with pytest.raises(ValueError, match=r"^m.tflite: the model has 2 classes \(cat, dog\) but d.yaml names 3 "
                                         r"\(cat, dog, bird\); expected the data set the model was trained for$"):
        _label_mismatch(Path("m.tflite"), meta, ("cat", "dog", "bird"), "d.yaml")
    coco = ModelMetadata(task="detection", labels=tuple(f"class{i}" for i in range(80)))
    with pytest.raises(ValueError, match=r"has 80 classes \(class0, .*, class7, \.\.\. \(72 more\)\) but d.yaml names 1"):
        _label_mismatch(Path("m.tflite"), coco, ("person",), "d.yaml")


def _earlier_run(out: Path) -> None:
    for name in ("checkpoints/history.csv", "model.keras", "saved_model/saved_model.pb", "training.json",
                 "model_qat_int8.tflite", "model_qat_int8.json", "worker-1/model.keras", ".model.json.x1.tmp",
                 "converted/run_tflite_int8.tflite", "worker-notes/a.txt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"earlier run")


def test_force_starts_over_without_leaving_the_earlier_runs_files(tmp_path, monkeypatch):
    from train import fit
    from train.options import TrainOptions

    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "run"
    _earlier_run(out)
    with pytest.raises(FileExistsError, match=f"{out}: the output folder is not empty"):
        fit.check_out(TrainOptions(data="d", out=out))
    assert (out / "model_qat_int8.tflite").is_file()  # refused: nothing touched
    said = []
    fit.prepare_out(TrainOptions(data="d", out=out, force=True), progress=said.append)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "converted", "worker-notes"]
    assert not any((out / "checkpoints").iterdir())
    assert (out / "converted" / "run_tflite_int8.tflite").read_bytes() == b"earlier run"  # not ours to delete
    assert said == [f"{out}: --force kept converted, worker-notes (not files of the training run itself; anything "
                    "made from the earlier model is now stale)"]
    # in a cluster each process clears only its own: worker 1 its worker-1/ (where its checkpoints
    # live: a stale one there would make it skip epochs the chief trains), never the chief's files
    _earlier_run(out)
    for stale in ("worker-1/checkpoints/backup/training_metadata.json", "worker-1/model.keras",
                  "worker-5/model.keras"):
        (out / stale).parent.mkdir(parents=True, exist_ok=True)
        (out / stale).write_bytes(b"earlier run")
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert fit.checkpoint_dir(out) == out / "worker-1" / "checkpoints"
    fit.prepare_out(TrainOptions(data="d", out=out, force=True), progress=said.append)
    assert (out / "model.keras").is_file() and (out / "checkpoints" / "history.csv").is_file()
    assert sorted(p.name for p in (out / "worker-1").iterdir()) == ["checkpoints"]
    assert not any((out / "worker-1" / "checkpoints").iterdir())
    # the chief: its own files and workers this cluster does not have (worker-5), not worker-1's
    (out / "worker-1" / "checkpoints" / "history.csv").write_text("epoch\n")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert fit.checkpoint_dir(out) == out / "checkpoints"
    fit.prepare_out(TrainOptions(data="d", out=out, force=True), progress=said.append)
    assert not (out / "model.keras").exists() and not (out / "worker-5").exists()
    assert (out / "worker-1" / "checkpoints" / "history.csv").is_file()
    monkeypatch.delenv("TF_CONFIG")
    # --out that cannot be a folder
    (tmp_path / "file").write_text("x")
    for bad, message in ((tmp_path / "file", "--out is a file"), (tmp_path / "file" / "run", "which is a file")):
        with pytest.raises(NotADirectoryError, match=message):
            fit.check_out(TrainOptions(data="d", out=bad))


@needs_tf
def test_a_force_run_that_fails_before_training_keeps_the_earlier_run(tmp_path):
    out = tmp_path / "run"
    _earlier_run(out)
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 8, 8), np.uint8), y=np.arange(20) % 2)
    done = _edgepilot("train", "classifier", "--data", tmp_path / "d.npz", "--out", out, "--force", "--distribute",
                      "multiworker")  # no TF_CONFIG: refused when the strategy is made, after the data loaded
    assert done.returncode == 1 and "--distribute multiworker needs TF_CONFIG" in done.stderr, done.stderr[-2000:]
    assert (out / "model.keras").read_bytes() == b"earlier run" and (out / "checkpoints" / "history.csv").is_file()


@needs_tf
def test_train_policy_keeps_tensorflows_start_up_lines_off_the_terminal(tmp_path):
    pytest.importorskip("gymnasium")  # the [control] extra
    done = _edgepilot("train", "policy", "--env", "Pendulum-v1", "--out", tmp_path / "p", "--epochs", "1", "--rounds", "0",
                      "--expert-episodes", "1", "--eval-episodes", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[edgepilot] " in done.stderr
    for start_up in ("cudart_stub", "absl::InitializeLog", "oneDNN", "cuInit"):  # TensorFlow's C++ start-up lines
        assert start_up not in done.stderr, done.stderr[-3000:]


def test_convert_names_a_missing_model_before_anything_else(tmp_path):
    done = _edgepilot("convert", tmp_path / "missing.keras", "--out", tmp_path / "o")
    assert done.returncode == 1
    assert "missing.keras: no such model file" in done.stderr and "calib" not in done.stderr


def test_runtime_model_and_loader_do_not_import_each_other():
    import ast

    source = (ROOT / "edge_runtime" / "model.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "edge_runtime.loader" not in imported

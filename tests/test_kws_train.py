"""``edgepilot train kws`` for a few steps, end to end: synthetic voices -> features -> a streaming
int8 model that ``edgepilot listen`` runs, and a training folder ``edgepilot convert`` takes as it
is. The window model convert makes gives the streaming model's probabilities (same weights)."""
import json
import wave

import numpy as np
import pytest

from edgepilot.cli import main

pytestmark = pytest.mark.slow
WORDS = ["yes", "no"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("kws") / "run"
    assert main(["train", "kws", "--words", *WORDS, "--out", str(out), "--epochs", "2", "--limit", "30",
                 "--channels", "16", "--qat", "--qat-epochs", "1", "--json"]) == 0
    return out


def _wav(path, audio):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_training_folder_holds_what_the_issue_names(trained):
    record = json.loads((trained / "training.json").read_text())
    for name in ("model.keras", "saved_model", "kws_stream_fp32.tflite", "kws_stream_int8.tflite",
                 "kws_stream_int8.json", "calib.npz", "eval.npz"):
        assert (trained / name).exists(), name
    assert record["classes"] == ["_silence_", "_unknown_", *WORDS]
    assert set(record["voices"]["val"]).isdisjoint(record["voices"]["train"])  # leave-voices-out
    assert record["voices"]["val"]
    for key in ("val_top1_float", "val_top1_stream_fp32", "val_top1_stream_int8"):
        assert 0 <= record["metrics"][key] <= 100
    import edge_runtime

    meta = edge_runtime.load(trained / "kws_stream_int8.tflite", device="cpu", xnnpack=False).info
    assert meta.task == "keyword_spotting" and json.loads(meta.extra["words"]) == WORDS
    assert meta.extra["streaming"] == "true" and json.loads(meta.extra["frontend"])["name"] == "micro_frontend"


def test_qat_writes_a_fine_tuned_int8_streaming_model_that_listen_runs(trained, tmp_path, capsys):
    import edge_runtime

    record = json.loads((trained / "training.json").read_text())
    qat_path = trained / "kws_stream_qat_int8.tflite"
    assert qat_path.exists() and (trained / "kws_stream_qat_int8.json").exists()
    assert record["files"]["streaming_qat_int8"] == qat_path.name
    assert 0 <= record["metrics"]["val_top1_stream_qat_int8"] <= 100 and record["metrics"]["qat_epochs"] == 1
    qat = edge_runtime.load(qat_path, device="cpu", xnnpack=False)
    ptq = edge_runtime.load(trained / "kws_stream_int8.tflite", device="cpu", xnnpack=False)
    assert qat.info.variant == "tflite_int8_qat" and qat.inputs[0].shape == ptq.inputs[0].shape
    # fine-tuning moved the weights: the two int8 models answer differently on the same steps
    steps = np.random.default_rng(0).uniform(0, 20, (20, 1) + tuple(ptq.inputs[0].shape[1:])).astype(np.float32)
    differs = any(not np.array_equal(qat.run(x)[0], ptq.run(x)[0]) for x in steps)
    assert differs
    wav = _wav(tmp_path / "noise.wav", np.random.default_rng(1).normal(0, 0.05, 32000))
    capsys.readouterr()
    assert main(["listen", str(qat_path), "--wav", str(wav), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["seconds"] == 2.0


def test_listen_runs_the_trained_folder(trained, tmp_path, capsys):
    from train.speech import running_speech

    record = json.loads((trained / "training.json").read_text())
    audio, _ = running_speech(WORDS, voices=record["voices"]["val"][:2], seconds=6, seed=3)
    wav = _wav(tmp_path / "speech.wav", audio)
    capsys.readouterr()
    assert main(["listen", str(trained), "--wav", str(wav), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = lines[-1]["summary"]
    assert abs(summary["seconds"] - len(audio) / 16000) < 0.01
    assert set(summary["per_keyword"]) == set(WORDS)  # events named by the words, exactly
    assert summary["detections"] == len(lines) - 1
    for event in lines[:-1]:
        assert event["keyword"] in WORDS and 0 <= event["t"] <= summary["seconds"]


def test_convert_takes_the_folder_and_its_window_model_streams_alike(trained, tmp_path):
    from apps.speech.models import open_model
    from apps.speech.spotter import Spotter

    out = tmp_path / "converted"
    assert main(["convert", str(trained), "--out", str(out), "--targets", "tflite_int8", "onnx_fp32"]) == 0
    window = next(out.glob("*_onnx_fp32.onnx"))
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.05, 16000 * 3) * np.sin(np.linspace(0, 40, 16000 * 3))).astype(np.float32)
    scores = {}
    for name, path in (("stream", trained / "kws_stream_fp32.tflite"), ("window", window)):
        seen = []
        spotter = Spotter(open_model(path), smoothing_steps=1, on_step=lambda t, s, seen=seen: seen.append(np.array(s)))
        spotter.process(audio)
        scores[name] = np.stack(seen)
    assert scores["stream"].shape == scores["window"].shape
    # once a whole window has streamed in, the two forms see the same frames and agree
    np.testing.assert_allclose(scores["stream"][40:], scores["window"][40:], atol=1e-4)

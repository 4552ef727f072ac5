"""``edgepilot kws-calibrate``: the offline replay gives the real spotter's detections, the
operating point keeps the false-accept target on its data, it is written into the model's
metadata (a microWakeWord manifest, our ONNX file and its sidecar, a trained folder) and
``listen`` then uses it; bad input is one line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from speech_helpers import kws_onnx, noise_burst, silence, stream, trim, tts

pytest.importorskip("pymicro_features")

from apps.speech.audio import write_wav
from apps.speech.calibrate import Clip, choose, detect, record, smooth, sweep
from apps.speech.models import open_model
from apps.speech.spotter import Spotter


@pytest.fixture(scope="module")
def nabu_data(tmp_path_factory, asset):
    """A copy of microWakeWord's okay_nabu (+ manifest); positives: "okay nabu" by six voices in
    four files (one file says it twice); negatives: sentences by four voices and noise (~25 s)."""
    root = tmp_path_factory.mktemp("calib")
    model = root / "model" / "okay_nabu.tflite"
    model.parent.mkdir()
    shutil.copy(asset("wakeword_okay_nabu.tflite"), model)
    shutil.copy(asset("wakeword_okay_nabu.json"), model.with_suffix(".json"))
    say = lambda engine, voice: trim(tts("okay nabu", engine, voice))
    positives = {
        "a": [say("espeak-ng", "en-us")],
        "b": [say("flite", "kal"), say("espeak-ng", "en-gb")],
        "c": [say("flite", "awb")],
        "d": [say("flite", "slt"), say("flite", "rms")],
    }
    (root / "pos" / "okay_nabu").mkdir(parents=True)
    for name, utterances in positives.items():
        parts = [("s", silence(0.4))]
        for u in utterances:
            parts += [("kw", u), ("s", silence(1.2))]
        write_wav(root / "pos" / "okay_nabu" / f"{name}.wav", stream(parts)[0], 16000)
    (root / "neg").mkdir()
    sentences = [("the weather is nice today, said the man", "flite", "slt"),
                 ("please turn off the kitchen light and close the door", "espeak-ng", "en-us"),
                 ("okay, now we are going to the market to buy bread", "flite", "awb"),
                 ("a journey of a thousand miles begins with a single step", "espeak-ng", "en-gb")]
    parts = []
    for text, engine, voice in sentences:
        parts += [("s", silence(0.5)), ("x", trim(tts(text, engine, voice)))]
    write_wav(root / "neg" / "talk.wav", stream(parts + [("s", silence(0.5))])[0], 16000)
    write_wav(root / "neg" / "noise.wav", stream([("n", noise_burst(3.0, 0.05)), ("s", silence(1.0))])[0], 16000)
    return model, root / "pos", root / "neg", sum(len(u) for u in positives.values())


def spotter_events(model, clips, thresholds, smoothing_steps):
    """The real spotter (as listen runs it, 100 ms blocks) on each clip: [(clip, keyword, t, score)]."""
    spotter = Spotter(model, thresholds=thresholds, smoothing_steps=smoothing_steps)
    out = []
    for i, clip in enumerate(clips):
        spotter.reset()
        for start in range(0, len(clip.audio), 1600):
            out += [(i, d.keyword, d.t, d.score) for d in spotter.process(clip.audio[start:start + 1600])]
    return out


def replay_events(recordings, thresholds, smoothing_steps, refractory_s):
    """The offline replay of the same settings: [(clip, keyword, t, score)]."""
    out = []
    for i, rec in enumerate(recordings):
        scores = smooth(rec.probs, smoothing_steps)
        n, k, _ = detect(rec.t, scores, np.asarray(thresholds, np.float64)[:, None], refractory_s)
        out += [(i, int(kk), round(float(rec.t[nn]), 6), float(scores[nn, kk])) for nn, kk in zip(n, k)]
    return out


def _named(events, keywords):
    return [(i, keywords[k], t, s) for i, k, t, s in events]


def test_the_replay_gives_the_real_spotters_detections(nabu_data, tmp_path):
    """Every setting tried, and the chosen one: the same detections, same times, same scores."""
    from apps.speech.calibration_data import negatives_from_dir, positives_from_dir

    model_path, pos, neg, _ = nabu_data
    model = open_model(model_path)
    clips = positives_from_dir(pos, model.spec.keywords) + negatives_from_dir(neg)
    recordings = record(model, clips)
    point = choose(sweep(recordings, model.spec.keywords, model.spec.refractory_s), 0.5)
    settings = [(point.thresholds["okay_nabu"], point.smoothing_steps)]
    settings += [(thr, w) for w in (1, 3, 8) for thr in (0.2, 0.6, 0.95)]
    compared = 0
    for thr, w in settings:
        model.reset()
        real = spotter_events(model, clips, thr, w)
        replay = _named(replay_events(recordings, [thr], w, model.spec.refractory_s), model.spec.keywords)
        assert replay == real, (thr, w)
        compared += len(real)
    assert compared >= 10  # the settings do fire, on positives and (at low thresholds) on negatives

    # several keywords at once (K > 1, different thresholds per keyword, ring sums over a [w, K] buffer)
    two = open_model(kws_onnx(tmp_path / "two.onnx", words=("beep", "boop"), window_frames=9))
    bursts = [Clip("b", stream([("s", silence(0.5)), ("b", noise_burst(0.5, 0.3)), ("s", silence(0.3)),
                                ("b", noise_burst(0.3, 0.2, seed=4)), ("s", silence(1.3)),
                                ("b", noise_burst(0.6, 0.25, seed=5)), ("s", silence(0.5))])[0], negative=True)]
    recs = record(two, bursts)
    for thr, w in (((0.3, 0.45), 1), ((0.45, 0.3), 4), ((0.2, 0.4), 8), ((0.4, 0.35), 2)):
        two.reset()
        real = spotter_events(two, bursts, dict(zip(two.spec.keywords, thr)), w)
        assert _named(replay_events(recs, thr, w, two.spec.refractory_s), two.spec.keywords) == real
        assert real, (thr, w)


def test_calibration_meets_the_target_and_listen_uses_it(nabu_data, tmp_path, capsys):
    from edgepilot.cli import main

    model_path, pos, neg, n_utterances = nabu_data
    model = tmp_path / "okay_nabu.tflite"
    shutil.copy(model_path, model)
    shutil.copy(model_path.with_suffix(".json"), model.with_suffix(".json"))
    png = tmp_path / "curve.png"
    argv = ["kws-calibrate", str(model), "--positives", str(pos), "--negatives", str(neg), "--json", "--png", str(png)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    op = result["operating_point"]
    point = op["keywords"]["okay_nabu"]
    assert point["target_met"] and point["fa_per_hour"] <= 0.5 and point["false_accepts"] == 0
    assert point["utterances"] == n_utterances and point["frr"] <= 0.5  # most of the six voices are found
    assert result["written"] == [str(model.with_suffix(".json"))]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    manifest = json.loads(model.with_suffix(".json").read_text())
    assert manifest["micro"]["probability_cutoff"] == op["thresholds"]["okay_nabu"]
    assert manifest["micro"]["sliding_window_size"] == op["smoothing_steps"]
    assert manifest["calibration"]["target_fa_per_hour"] == 0.5 and manifest["type"] == "micro"

    # listen now runs at that point: no detection on the negatives, every found utterance on the positives
    wavs_neg = sorted(str(p) for p in neg.iterdir())
    assert main(["listen", str(model), "--wav", *wavs_neg, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert summary["thresholds"] == op["thresholds"] and summary["smoothing_steps"] == op["smoothing_steps"]
    assert summary["detections"] == 0
    wavs_pos = sorted(str(p) for p in (pos / "okay_nabu").iterdir())
    assert main(["listen", str(model), "--wav", *wavs_pos, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert summary["detections"] == n_utterances - point["misses"]

    # a second calibration is refused unless --force
    assert main(argv[:-2]) == 1  # (without --png, which exists too and would be refused first)
    err = capsys.readouterr().err
    assert "already calibrated" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert main(argv + ["--force", "--target-fa-per-hour", "2000"]) == 0
    capsys.readouterr()


def test_our_model_file_and_sidecar_get_the_point(tmp_path, capsys):
    """An edgepilot ONNX model: the embedded metadata and the sidecar both hold it; listen uses it."""
    from convert.metadata_io import sidecar_json
    from edge_runtime.metadata import METADATA_KEY, ModelMetadata
    from edge_runtime.onnx_file import read_onnx
    from edgepilot.cli import main

    folder = tmp_path / "kws"
    folder.mkdir()
    path = kws_onnx(folder / "kws_window_fp32.onnx", words=("beep",), window_frames=9, smoothing_steps=1)
    meta = ModelMetadata.from_json(read_onnx(path.read_bytes()).metadata[METADATA_KEY])
    path.with_suffix(".json").write_text(sidecar_json(meta))
    (tmp_path / "pos" / "beep").mkdir(parents=True)
    for i in range(3):
        audio, _ = stream([("s", silence(0.6)), ("b", noise_burst(0.4 + 0.1 * i, 0.3, seed=i)), ("s", silence(1.5))])
        write_wav(tmp_path / "pos" / "beep" / f"{i}.wav", audio, 16000)
    (tmp_path / "neg").mkdir()
    write_wav(tmp_path / "neg" / "quiet.wav", stream([("n", noise_burst(6.0, 0.002))])[0], 16000)
    assert main(["kws-calibrate", str(path), "--positives", str(tmp_path / "pos"), "--negatives",
                 str(tmp_path / "neg"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    op = result["operating_point"]
    assert op["keywords"]["beep"]["frr"] == 0 and op["keywords"]["beep"]["false_accepts"] == 0
    assert sorted(result["written"]) == sorted([str(path), str(path.with_suffix(".json"))])
    embedded = ModelMetadata.from_json(read_onnx(path.read_bytes()).metadata[METADATA_KEY])
    side = ModelMetadata.from_json(json.dumps(json.loads(path.with_suffix(".json").read_text())[METADATA_KEY]))
    for m in (embedded, side):
        assert m.thresholds == op["thresholds"] and m.extra["smoothing_steps"] == str(op["smoothing_steps"])
        assert json.loads(m.extra["calibration"])["frr"] == {"beep": 0.0}
        assert m.labels == meta.labels and m.extra["words"] == meta.extra["words"]
    spec = open_model(path).spec
    assert spec.thresholds == (op["thresholds"]["beep"],) and spec.smoothing_steps == op["smoothing_steps"]


def _bad(tmp, model):
    (tmp / "empty").mkdir()
    (tmp / "pos" / "okay_nabu").mkdir(parents=True)
    write_wav(tmp / "pos" / "okay_nabu" / "a.wav", stream([("s", silence(0.3)), ("b", noise_burst(0.5))])[0], 16000)
    (tmp / "pos_text" / "okay_nabu").mkdir(parents=True)
    (tmp / "pos_text" / "okay_nabu" / "notes.txt").write_text("hello")
    (tmp / "pos_unknown" / "hey_bob").mkdir(parents=True)
    (tmp / "pos_emptykw" / "okay_nabu").mkdir(parents=True)
    (tmp / "fake").mkdir()
    (tmp / "fake" / "x.wav").write_text("not audio at all")
    return {
        "missing positives": (["--positives", str(tmp / "nope"), "--negatives", str(tmp / "fake")], "no such folder"),
        "missing negatives": (["--positives", str(tmp / "pos"), "--negatives", str(tmp / "nope")], "no such folder"),
        "empty negatives": (["--positives", str(tmp / "pos"), "--negatives", str(tmp / "empty")], "no .wav files"),
        "no keyword folder": (["--positives", str(tmp / "empty"), "--negatives", str(tmp / "fake")],
                              "no folder for keyword"),
        "unknown keyword": (["--positives", str(tmp / "pos_unknown"), "--negatives", str(tmp / "fake")],
                            "'hey_bob' is not a keyword"),
        "empty keyword folder": (["--positives", str(tmp / "pos_emptykw"), "--negatives", str(tmp / "fake")],
                                 "no .wav files"),
        "non-WAV file": (["--positives", str(tmp / "pos_text"), "--negatives", str(tmp / "fake")],
                         "expected only .wav files"),
        "WAV that is not audio": (["--positives", str(tmp / "pos"), "--negatives", str(tmp / "fake")],
                                  "not a WAV file"),
        "micro model without positives": (["--negatives", str(tmp / "fake")], "give --positives"),
        "png of another kind": (["--positives", str(tmp / "pos"), "--negatives", str(tmp / "fake"), "--png",
                                 str(tmp / "x.jpg")], "expected a .png"),
    }


def test_bad_input_is_one_line(nabu_data, tmp_path, capsys):
    from edgepilot.cli import main

    model_path, *_ = nabu_data
    for name, (args, message) in _bad(tmp_path, model_path).items():
        assert main(["kws-calibrate", str(model_path), *args]) == 1, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, (name, err)
    manifest = json.loads(model_path.with_suffix(".json").read_text())
    assert "calibration" not in manifest  # nothing written by a refused run


@pytest.mark.slow
def test_a_trained_folder_with_the_synthetic_defaults(tmp_path):
    """``train kws`` (tiny) then ``kws-calibrate DIR`` on its held-out voices and synthetic
    negatives: every model file and sidecar of the folder gets the point, listen uses it."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("scipy")
    out = tmp_path / "kws"
    def run(*args):
        return subprocess.run([sys.executable, "-m", "edgepilot.cli", *args], capture_output=True, text=True,
                              timeout=1200, check=False)

    trained = run("train", "kws", "--words", "yes", "no", "--out", str(out), "--epochs", "1", "--limit", "40",
                  "--channels", "16")
    assert trained.returncode == 0, trained.stderr[-2000:]
    done = run("kws-calibrate", str(out), "--positive-minutes", "0.5", "--negative-minutes", "1", "--json",
               "--smoothing", "1", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    op = result["operating_point"]
    assert set(op["thresholds"]) == {"yes", "no"} and op["smoothing_steps"] in (1, 3)
    assert result["calibration"]["data"]["positives"]["kind"] == "synthetic"
    names = sorted(p.split("/")[-1] for p in result["written"])
    assert {"kws_stream_int8.tflite", "kws_stream_int8.json", "kws_stream_fp32.tflite", "model.json"} <= set(names)
    for name in ("kws_stream_int8.tflite", "kws_stream_fp32.tflite"):
        spec = open_model(out / name).spec
        assert dict(zip(spec.keywords, spec.thresholds)) == op["thresholds"]
        assert spec.smoothing_steps == op["smoothing_steps"]
    for p in op["keywords"].values():
        assert p["target_met"] is False or p["fa_per_hour"] <= 0.5


def test_calibrate_runs_with_tensorflow_blocked(nabu_data, tmp_path):
    """An app command: kws-calibrate (recording, sweep, PNG, writing a model file) without TensorFlow."""
    from test_no_tensorflow import _run

    model_path, pos, neg, _ = nabu_data
    model = tmp_path / "okay_nabu.tflite"
    shutil.copy(model_path, model)
    shutil.copy(model_path.with_suffix(".json"), model.with_suffix(".json"))
    onnx_model = kws_onnx(tmp_path / "beep.onnx", words=("beep",), window_frames=9)
    (tmp_path / "pos" / "beep").mkdir(parents=True)
    write_wav(tmp_path / "pos" / "beep" / "a.wav", stream([("s", silence(0.5)), ("b", noise_burst(0.5, 0.3)),
                                                          ("s", silence(1.0))])[0], 16000)
    proc = _run(f"""
        from edgepilot.cli import main
        assert main(["kws-calibrate", {str(model)!r}, "--positives", {str(pos)!r}, "--negatives", {str(neg)!r},
                     "--png", {str(tmp_path / "c.png")!r}, "--json"]) == 0
        assert main(["kws-calibrate", {str(onnx_model)!r}, "--positives", {str(tmp_path / "pos")!r},
                     "--negatives", {str(neg)!r}]) == 0
        print("TF", "tensorflow" in sys.modules)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "TF False"
    assert "calibration" in json.loads(model.with_suffix(".json").read_text())


def test_pick_keeps_a_keyword_usable_rather_than_switching_it_off():
    """A homophone-rich word ("two" and "to") meets 0.5 FA/h only by never firing: the point is
    then the fewest false accepts that still finds at least half its utterances, and the
    target is reported missed; --max-frr 1 restores switching it off."""
    from apps.speech.calibrate import pick

    grid = np.array([0.5, 0.9, 0.99, 0.9999])
    frr = np.array([0.02, 0.05, 0.2, 1.0])
    fa_per_hour = np.array([9.0, 2.5, 1.0, 0.0])
    assert pick(grid, frr, fa_per_hour, 0.5) == (2, False)
    assert pick(grid, frr, fa_per_hour, 0.5, max_frr=1.0) == (3, True)
    assert pick(grid, frr, fa_per_hour, 3.0) == (1, True)  # met: the lowest FRR within the target
    assert pick(grid, np.ones(4), fa_per_hour, 0.5) == (3, False)  # nothing usable: the fewest false accepts

"""``edgepilot listen`` through ``main(argv)``: JSON lines and the summary, several files, any
WAV format, readable output, and bad input (each a one-line message, no traceback)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from speech_helpers import kws_onnx, noise_burst, silence, stream, trim, tts

pytest.importorskip("pymicro_features")

from test_speech_spotter import micro_model

from apps.speech.audio import write_wav


def lines_of(out: str) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in out.strip().splitlines()]
    return rows[:-1], rows[-1]["summary"]


@pytest.fixture(scope="module")
def nabu(tmp_path_factory):
    """'okay nabu' twice with a sentence between, 16 kHz mono 16-bit; and where each ends."""
    audio, spans = stream([("lead", silence(0.4)), ("okay_nabu", trim(tts("okay nabu", "espeak-ng", "en-us"))),
                           ("gap", silence(0.6)), ("other", trim(tts("set a timer for ten minutes", "flite", "slt"))),
                           ("gap", silence(0.6)), ("okay_nabu", trim(tts("okay nabu", "flite", "kal"))),
                           ("tail", silence(0.6))])
    path = tmp_path_factory.mktemp("nabu") / "nabu.wav"
    write_wav(path, audio, 16000)
    return path, audio, [end for name, _, end in spans if name == "okay_nabu"]


def test_json_lines_and_summary(nabu, capsys):
    from edgepilot.cli import main

    path, audio, ends = nabu
    assert main(["listen", str(micro_model("okay_nabu")), "--wav", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    rows, summary = lines_of(captured.out)
    assert len(rows) == 2 and all(set(r) == {"keyword", "score", "t"} for r in rows)
    for row, end in zip(rows, ends):
        assert row["keyword"] == "okay_nabu" and row["score"] > 0.85 and abs(row["t"] - end) <= 0.5
    assert summary["detections"] == 2 and summary["per_keyword"] == {"okay_nabu": 2}
    assert summary["seconds"] == pytest.approx(len(audio) / 16000, abs=1e-3)
    assert summary["steps"] == (len(audio) - 320) // 160 // 3  # one step per 3 frames of 10 ms
    assert 0 < summary["rtf"] < 0.5 and summary["overflows"] == 0 and summary["stop_reason"] == "end"
    assert summary["accelerator"] == "cpu/builtin kernels x1 threads" and summary["kind"] == "micro"
    assert summary["latency_ms_p99"] >= summary["latency_ms_p50"] > 0
    assert "okay_nabu" in captured.err and "Traceback" not in captured.err


def test_several_files_any_format_and_readable_output(nabu, tmp_path, capsys):
    """A stereo 44.1 kHz copy gives the same detections as the 16 kHz original, each with its file."""
    from apps.speech.audio import resample
    from edgepilot.cli import main

    path, audio, _ = nabu
    up = resample(audio.astype(np.float32) / 32768, 16000, 44100)
    stereo = tmp_path / "stereo44k.wav"
    write_wav(stereo, np.stack([up, up * 0.8], axis=1), 44100)
    model = str(micro_model("okay_nabu"))
    assert main(["listen", model, "--wav", str(path), str(stereo), "--json"]) == 0
    rows, summary = lines_of(capsys.readouterr().out)
    assert [r["file"] for r in rows] == [str(path)] * 2 + [str(stereo)] * 2
    assert [r["t"] for r in rows[:2]] == pytest.approx([r["t"] for r in rows[2:]], abs=0.1)
    assert summary["streams"] == 2 and summary["detections"] == 4
    assert main(["listen", model, "--wav", str(stereo)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all("okay_nabu" in line for line in out[:2])
    assert out[2].startswith("2 detection(s) (okay_nabu 2)") and "rtf" in out[3]


def test_our_model_with_threshold_overrides(tmp_path, capsys):
    from edgepilot.cli import main

    audio, _ = stream([("s", silence(0.8)), ("b", noise_burst(0.5)), ("s", silence(0.8))])
    write_wav(tmp_path / "burst.wav", audio, 16000)
    model = str(kws_onnx(tmp_path / "kws_window_fp32.onnx", words=("hey edge", "stop"), thresholds={"hey edge": 0.4}))
    wav = str(tmp_path / "burst.wav")
    assert main(["listen", model, "--wav", wav, "--json"]) == 0
    rows, summary = lines_of(capsys.readouterr().out)
    # both words get the same probability from this tiny model (just under 0.5 each): only
    # "hey edge" passes its calibrated 0.4; "stop" keeps the default 0.5
    assert [r["keyword"] for r in rows] == ["hey edge"] and summary["thresholds"] == {"hey edge": 0.4, "stop": 0.5}
    assert main(["listen", model, "--wav", wav, "--json", "--threshold", "0.99"]) == 0
    assert lines_of(capsys.readouterr().out)[1]["detections"] == 0
    assert main(["listen", model, "--wav", wav, "--json", "--threshold", "stop=0.3", "--threshold", "hey edge=0.3"]) == 0
    rows, summary = lines_of(capsys.readouterr().out)
    assert sorted(r["keyword"] for r in rows) == ["hey edge", "stop"]


@pytest.mark.parametrize("case, message", [
    ("not_audio", "not.wav: not a WAV file (no RIFF/WAVE header"),
    ("empty", "empty.wav: empty file (0 bytes); expected a WAV file"),
    ("missing", "missing.wav: no such file"),
    ("classifier", "classifier.onnx: not a keyword spotter: its metadata says task 'classification'"),
    ("no_metadata", "bare.tflite: not a keyword spotter: it carries no edgepilot metadata"),
    ("text_model", "model.tflite: neither a TFLite flatbuffer"),
    ("no_mic", "--mic: no microphone: input device 'no such microphone' is not available"),
    ("threshold", "--threshold 'loud': expected a probability or KEYWORD=PROBABILITY"),
    ("unknown_keyword", "threshold for unknown keyword(s) ['nope']"),
    ("mqtt", "--mqtt 'http://x/y': expected mqtt://HOST[:PORT]/TOPIC"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, capsys, case, message):
    import shutil

    from edgepilot.cli import main

    good_wav = tmp_path / "good.wav"
    write_wav(good_wav, silence(0.5), 16000)
    model, source = str(micro_model("alexa")), ["--wav", str(good_wav)]
    extra = []
    if case == "not_audio":
        (tmp_path / "not.wav").write_text("hello, I am a text file and not a recording\n")
        source = ["--wav", str(tmp_path / "not.wav")]
    elif case == "empty":
        (tmp_path / "empty.wav").write_bytes(b"")
        source = ["--wav", str(good_wav), str(tmp_path / "empty.wav")]
    elif case == "missing":
        source = ["--wav", str(tmp_path / "missing.wav")]
    elif case == "classifier":
        model = str(kws_onnx(tmp_path / "classifier.onnx", task="classification"))
    elif case == "no_metadata":
        shutil.copy(micro_model("alexa"), tmp_path / "bare.tflite")
        model = str(tmp_path / "bare.tflite")
    elif case == "text_model":
        (tmp_path / "model.tflite").write_text("not a model, only words in a file\n")
        model = str(tmp_path / "model.tflite")
    elif case == "no_mic":
        pytest.importorskip("sounddevice")
        source = ["--mic", "no such microphone"]
    elif case == "threshold":
        extra = ["--threshold", "loud"]
    elif case == "unknown_keyword":
        extra = ["--threshold", "nope=0.5"]
    elif case == "mqtt":
        extra = ["--mqtt", "http://x/y"]
    code = main(["listen", model, *source, "--json", *extra])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("edgepilot listen: error: ") and message in err[0], err
    assert "Traceback" not in captured.err


def test_listen_runs_with_tensorflow_blocked(nabu):
    """An app runs with only the [apps] extra: TensorFlow is never imported."""
    from test_no_tensorflow import _run

    path, _, _ = nabu
    proc = _run(f"""
        from edgepilot.cli import main
        assert main(["listen", {str(micro_model("okay_nabu"))!r}, "--wav", {str(path)!r}, "--json"]) == 0
        assert "tensorflow" not in sys.modules
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"detections":2' in proc.stdout

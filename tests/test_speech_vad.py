"""The voice-activity gate (Silero VAD through edge_runtime): it skips the keyword model on
silence, keeps the detections (the model state is rebuilt by replaying its receptive field when
speech resumes), does not depend on the block size, and reports what it saved and cost."""
from __future__ import annotations

import json

import pytest
from speech_helpers import silence, stream, trim, tts

pytest.importorskip("pymicro_features")
pytest.importorskip("onnxruntime")

from test_speech_spotter import micro_model, run

from apps.speech.audio import write_wav
from apps.speech.models import open_model
from apps.speech.spotter import Spotter
from apps.speech.vad import VadGate


@pytest.fixture(scope="module")
def sparse_speech():
    """~17 s, mostly silence: wake words and a sentence with long pauses between."""
    return stream([("lead", silence(1.5)), ("okay_nabu", trim(tts("okay nabu", "espeak-ng", "en-us"))),
                   ("gap", silence(2.5)), ("other", trim(tts("the weather is nice today", "flite", "slt"))),
                   ("gap", silence(2.5)), ("alexa", trim(tts("alexa", "espeak-ng", "en-gb"))),
                   ("gap", silence(2.5)), ("okay_nabu", trim(tts("okay nabu", "flite", "awb"))),
                   ("tail", silence(2.0))])


@pytest.mark.parametrize("name", ["okay_nabu", "alexa"])
def test_gate_skips_silence_and_keeps_the_detections(asset, sparse_speech, name):
    audio, spans = sparse_speech
    plain = Spotter(open_model(micro_model(name))).process(audio)
    gated = {}
    for block in (160, 1000, 16000):
        spotter = Spotter(open_model(micro_model(name)), gate=VadGate(asset("silero_vad.onnx")))
        gated[block] = run(spotter, audio, block)
    assert gated[160] == gated[1000] == gated[16000]  # block-size invariant with the gate too
    assert [d.t for d in gated[160]] == [d.t for d in plain] and len(plain) >= 1
    stats = spotter.stats()
    speech_s = sum(end - start for part, start, end in spans if part not in ("lead", "gap", "tail"))
    assert stats.vad_skipped > 0.5 * (stats.steps + stats.vad_skipped)  # most of it is silence...
    assert stats.steps * 0.03 > speech_s  # ...but every spoken stretch ran through the model
    report = spotter.gate.report(stats)
    assert report["replayed_steps"] == stats.replayed > 0 and report["vad_s"] > 0 and report["saved_s"] > 0
    assert report["net_saved_s"] == pytest.approx(report["saved_s"] - report["vad_s"]
                                                  - stats.replayed * stats.model_s / stats.steps, abs=2e-4)


def test_listen_vad_reports_the_compute_it_saved(asset, sparse_speech, tmp_path, capsys):
    from edgepilot.cli import main

    audio, _ = sparse_speech
    write_wav(tmp_path / "s.wav", audio, 16000)
    assert main(["listen", str(micro_model("okay_nabu")), "--wav", str(tmp_path / "s.wav"), "--json",
                 "--vad", str(asset("silero_vad.onnx"))]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = rows[-1]["summary"]
    assert len(rows) == 3 and summary["detections"] == 2
    assert summary["vad_skipped"] > summary["steps"]
    assert set(summary["vad"]) >= {"skipped_pct", "saved_s", "vad_s", "net_saved_s", "replayed_steps"}
    assert summary["vad"]["skipped_pct"] > 50


def test_a_missing_vad_model_is_one_line(tmp_path, capsys):
    from edgepilot.cli import main

    write_wav(tmp_path / "s.wav", silence(0.5), 16000)
    code = main(["listen", str(micro_model("alexa")), "--wav", str(tmp_path / "s.wav"), "--vad",
                 str(tmp_path / "nope.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--vad: no Silero VAD model at" in err[0] and "nope.onnx" in err[0]

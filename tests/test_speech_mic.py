"""``edgepilot listen --mic`` on a real PortAudio device (ALSA's ``file`` capture plugin playing
a recorded WAV, configured through ALSA_CONFIG_PATH), Ctrl-C, and ``--mqtt`` against a real
Mosquitto broker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_system
from speech_helpers import silence, stream, trim, tts

pytest.importorskip("pymicro_features")
pytest.importorskip("sounddevice")

from mqtt_helpers import subscribe, wait_until
from test_speech_spotter import micro_model

from apps.speech.audio import write_wav

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """'okay nabu', a sentence, 'okay nabu' again, then 3 s of silence (the file device replays
    old audio after its end): as raw S16_LE for the microphone and as a WAV for --wav."""
    folder = tmp_path_factory.mktemp("mic")
    audio, _ = stream([("s", silence(0.5)), ("w", trim(tts("okay nabu", "espeak-ng", "en-us"))), ("s", silence(0.6)),
                       ("o", trim(tts("the train leaves at noon", "flite", "slt"))), ("s", silence(0.6)),
                       ("w", trim(tts("okay nabu", "flite", "awb"))), ("s", silence(3.0))])
    audio.astype("<i2").tofile(folder / "in.raw")
    write_wav(folder / "in.wav", audio, 16000)
    return folder, audio


def alsa_env(folder: Path) -> dict:
    require_system(Path("/usr/share/alsa/alsa.conf").is_file(), "ALSA's configuration (Debian package alsa-utils)")
    config = folder / "asound.conf"
    config.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        f'pcm.filemic_raw {{ type file  slave.pcm "null"  file "/dev/null"  infile "{folder / "in.raw"}"  format "raw" }}\n'
        'pcm.filemic { type plug  slave { pcm "filemic_raw" format S16_LE rate 16000 channels 1 } }\n'
        'pcm.!default "filemic"\n')
    return {**os.environ, "ALSA_CONFIG_PATH": str(config), "PYTHONPATH": str(ROOT)}


def listen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgepilot", "listen", str(micro_model("okay_nabu")), *args]


def test_file_backed_microphone_gives_the_detections_of_the_wav(recording, capsys):
    from edgepilot.cli import main

    folder, audio = recording
    seconds = len(audio) / 16000
    proc = subprocess.run(listen_command("--mic", "--duration", f"{seconds:.4f}", "--json"), env=alsa_env(folder), check=False,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mic = [json.loads(line) for line in proc.stdout.splitlines()]
    assert main(["listen", str(micro_model("okay_nabu")), "--wav", str(folder / "in.wav"), "--json"]) == 0
    wav = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert mic[:-1] == wav[:-1] and len(wav) == 3  # the samples arrive bit-exact: the same two detections
    summary = mic[-1]["summary"]
    assert summary["stop_reason"] == "duration" and summary["seconds"] == pytest.approx(seconds, abs=1e-3)
    assert summary["overflows"] == 0 and "microphone 'default' (16 kHz mono)" in summary["source"]


def test_ctrl_c_ends_the_microphone_run_with_the_summary(recording):
    folder, _ = recording
    proc = subprocess.Popen(listen_command("--mic", "--json"), env=alsa_env(folder), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = json.loads(proc.stdout.readline())  # the first detection: the device is live
        assert first["keyword"] == "okay_nabu"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["stop_reason"] == "sigint" and summary["detections"] >= 1 and summary["seconds"] > 1
    assert "Traceback" not in err


def test_input_overflows_are_counted():
    import sounddevice as sd

    from apps.speech.sources import Capture

    capture = Capture()  # the callback PortAudio calls, with the status flags it passes
    block = np.zeros((160, 1), np.int16)
    capture(block, 160, None, sd.CallbackFlags())
    capture(block, 160, None, sd.CallbackFlags(sd._lib.paInputOverflow))
    assert capture.overflows == 1 and capture.queue.qsize() == 2


def test_detections_and_summary_reach_a_real_broker(mosquitto, recording, capsys):
    from edgepilot.cli import main

    folder, _ = recording
    client, messages = subscribe(mosquitto.port, "home/kitchen/#")
    try:
        code = main(["listen", str(micro_model("okay_nabu")), "--wav", str(folder / "in.wav"), "--json",
                     "--mqtt", f"{mosquitto.url}/home/kitchen"])
        assert code == 0
        wait_until(lambda: any(t.endswith("/summary") for t, _ in messages), 5)
    finally:
        client.loop_stop()
        client.disconnect()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    keywords = [m for t, m in messages if t == "home/kitchen/keyword"]
    summaries = [m for t, m in messages if t == "home/kitchen/summary"]
    assert keywords == lines[:-1] and len(keywords) == 2
    assert len(summaries) == 1 and summaries[0]["summary"]["detections"] == 2
    assert lines[-1]["summary"]["mqtt"]["published"] == 3 and lines[-1]["summary"]["mqtt"]["failed"] == 0

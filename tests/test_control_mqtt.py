"""Telemetry of ``edgepilot control --mqtt`` reaches a real Mosquitto broker on loopback."""
from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("paho")
pytest.importorskip("gymnasium")

from test_control_policy import linear_onnx  # noqa: E402  (tiny ONNX models, no TensorFlow)


def subscribe(port: int, topic: str):
    import paho.mqtt.client as mqtt

    messages, ready = [], threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic), None)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, m: messages.append((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(5), "the test subscriber did not subscribe"
    return client, messages


def test_control_publishes_telemetry_and_summary(mosquitto, tmp_path, capsys):
    from edgepilot.cli import main

    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    client, messages = subscribe(mosquitto.port, "robots/pendulum/#")
    try:
        code = main([ "control", model, "--robot", "sim:Pendulum-v1", "--rate", "200", "--duration", "0.5",
                      "--json", "--mqtt", f"{mosquitto.url}/robots/pendulum"])
        assert code == 0
        import time

        deadline = time.monotonic() + 5
        while not any(t.endswith("/summary") for t, _ in messages) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    telemetry = [m for t, m in messages if t == "robots/pendulum/telemetry"]
    summaries = [m for t, m in messages if t == "robots/pendulum/summary"]
    assert len(telemetry) >= 3  # 10 a second for half a second, give or take a late tick
    assert set(telemetry[0]) >= {"tick", "obs", "action", "missed", "interventions", "return"}
    assert len(summaries) == 1 and summaries[0]["summary"]["rate_hz"] == 200
    lines = capsys.readouterr().out.strip().splitlines()
    final = json.loads(lines[-1])["summary"]
    assert final["stop_reason"] == "duration" and final["mqtt"]["published"] >= len(telemetry)
    assert all("summary" not in json.loads(line) for line in lines[:-1])

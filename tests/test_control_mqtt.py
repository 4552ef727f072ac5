"""Telemetry of ``edgepilot control --mqtt`` reaches a real Mosquitto broker on loopback."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("paho")
pytest.importorskip("gymnasium")

from mqtt_helpers import subscribe, wait_until
from test_control_policy import linear_onnx


def test_control_publishes_telemetry_and_summary(mosquitto, tmp_path, capsys):
    from edgepilot.cli import main

    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    client, messages = subscribe(mosquitto.port, "robots/pendulum/#")
    try:
        code = main([ "control", model, "--robot", "sim:Pendulum-v1", "--rate", "200", "--duration", "0.5",
                      "--json", "--mqtt", f"{mosquitto.url}/robots/pendulum"])
        assert code == 0
        wait_until(lambda: any(t.endswith("/summary") for t, _ in messages), 5)
    finally:
        client.loop_stop()
        client.disconnect()
    telemetry = [m for t, m in messages if t == "robots/pendulum/telemetry"]
    summaries = [m for t, m in messages if t == "robots/pendulum/summary"]
    lines = capsys.readouterr().out.strip().splitlines()
    final = json.loads(lines[-1])["summary"]
    # every 20th tick at 200 Hz (10 a second) of the ticks run: about 5 in half a second, fewer
    # where a loaded machine skipped missed ticks
    assert len(telemetry) == -(-final["ticks"] // 20) >= 1
    assert [m["tick"] for m in telemetry] == list(range(0, final["ticks"], 20))
    assert set(telemetry[0]) >= {"tick", "obs", "action", "missed", "interventions", "return"}
    assert len(summaries) == 1 and summaries[0]["summary"]["rate_hz"] == 200
    assert final["stop_reason"] == "duration" and final["mqtt"]["published"] >= len(telemetry)
    assert all("summary" not in json.loads(line) for line in lines[:-1])

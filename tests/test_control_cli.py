"""``edgepilot control`` end to end on the simulator: JSON lines, --log/--plot, injected faults,
SIGTERM (the summary still comes, with its stop reason), and errors before the robot moves."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("gymnasium")

from test_control_policy import linear_onnx  # noqa: E402  (tiny ONNX models, no TensorFlow)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])["summary"]


def test_json_log_plot_and_an_injected_nan(tmp_path, capsys):
    from edgepilot.cli import main

    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    log, plot = tmp_path / "run.csv", tmp_path / "run.png"
    code = main(["control", model, "--robot", "sim:Pendulum-v1", "--rate", "200", "--ticks", "100", "--json",
                 "--log", str(log), "--plot", str(plot), "--inject", "nan"])
    assert code == 0
    s = summary_of(capsys.readouterr().out)
    assert s["ticks"] == 100 and s["stop_reason"] == "ticks" and s["injected"] == "nan"
    assert s["interventions"]["nonfinite"] == 10  # a tenth of the run
    assert s["sim_dt"] == pytest.approx(0.005) and s["rate_hz"] == 200
    assert s["wait"]["mode"] == "auto" and 0 <= s["wait"]["spin_fraction"] <= 1 and s["wait"]["spin_us"] >= 50
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 100 and sum(r["interventions"] == "nonfinite" for r in rows) == 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = main(["control", model, "--robot", "sim:Pendulum-v1", "--rate", "200", "--ticks", "5", "--log", str(log)])
    assert code == 1 and "already exists" in capsys.readouterr().err  # an existing log is kept without --force


def test_parquet_log_holds_the_same_typed_rows_as_the_csv(tmp_path, capsys):
    from conftest import has, require_system

    require_system(has("pyarrow"), "pyarrow (the [control] extra)")
    import pyarrow.parquet as pq

    from edgepilot.cli import main

    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    common = ["control", model, "--robot", "sim:Pendulum-v1", "--unpaced", "--ticks", "50", "--inject", "nan"]
    assert main([*common, "--log", str(tmp_path / "run.parquet")]) == 0
    assert main([*common, "--log", str(tmp_path / "run.csv")]) == 0
    table = pq.read_table(tmp_path / "run.parquet")
    rows = list(csv.DictReader((tmp_path / "run.csv").open()))
    assert table.num_rows == len(rows) == 50 and table.column_names == list(rows[0])
    assert str(table.schema.field("tick").type) == "int64" and str(table.schema.field("missed").type) == "bool"
    assert str(table.schema.field("obs0").type) == "double"
    nan_ticks = [i for i, v in enumerate(table.column("interventions").to_pylist()) if v == "nonfinite"]
    assert len(nan_ticks) == 5 and nan_ticks == [i for i, r in enumerate(rows) if r["interventions"] == "nonfinite"]
    # the same seed and ticks: the observations agree to the CSV's printed precision
    for name in ("obs0", "obs2", "action0"):
        assert [float(r[name]) for r in rows] == pytest.approx(table.column(name).to_pylist(), rel=1e-9, abs=1e-12)
    assert main([*common, "--log", str(tmp_path / "run.txt")]) == 1
    assert "expected a .csv or .parquet file name" in capsys.readouterr().err


def test_a_slow_inference_stops_the_run_with_exit_code_5(tmp_path, capsys):
    from edgepilot.cli import main

    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    code = main(["control", model, "--robot", "sim:Pendulum-v1", "--rate", "100", "--ticks", "200", "--json",
                 "--inject", "slow", "--stop-after", "0.05"])
    s = summary_of(capsys.readouterr().out)
    assert code == 5 and s["stop_reason"] == "fault" and s["interventions"]["overrun"] >= 5


@pytest.mark.parametrize("argv, message", [
    (["--robot", "usb:0", "--rate", "100"], "expected sim:ENV or serial"),
    (["--robot", "sim:NoSuchEnv-v0", "--rate", "100"], "not a registered gymnasium environment"),
    (["--robot", "sim:InvertedPendulum-v5", "--rate", "100"], "takes 3 observation value"),  # a Pendulum model
    (["--robot", "sim:Pendulum-v1"], "no control rate in its metadata"),
    (["--robot", "sim:Pendulum-v1", "--rate", "100", "--spin-us", "fast"], "--spin-us: expected 'auto' or microseconds"),
])
def test_errors_before_the_robot_moves(tmp_path, capsys, argv, message):
    from edgepilot.cli import main

    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    assert main(["control", model, *argv]) == 1
    assert message in capsys.readouterr().err


def test_sigterm_ends_the_run_with_a_summary(tmp_path):
    model = linear_onnx(tmp_path / "zero.onnx", 3, 1)
    proc = subprocess.Popen([sys.executable, "-m", "edgepilot", "control", model, "--robot", "sim:Pendulum-v1",
                             "--rate", "200", "--duration", "60", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline()  # the first telemetry line: the loop is running
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    s = summary_of(out)
    assert s["stop_reason"] == "sigterm" and 0 < s["ticks"] < 60 * 200

"""The edgepilot command line, through main(argv) -> int."""
import json

import pytest

from edgepilot.cli import main


@pytest.mark.legacy
def test_inspect_prints_io_ops_and_placement(asset, capsys):
    assert main(["inspect", str(asset("wakeword_hey_jarvis.tflite")), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "int8 (scale=0.101961 zero_point=-128)" in out
    assert "VAR_HANDLE" in out and "stateful" in out
    assert "nodes in 1 partition" in out or "builtin" in out


@pytest.mark.legacy
def test_inspect_json_is_machine_readable(asset, capsys):
    assert main(["inspect", str(asset("blazeface_short_range.tflite")), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in report["outputs"]] == ["regressors", "classificators"]
    assert report["ops"]["CONV_2D"] > 10 and report["format"] == "tflite"


@pytest.mark.legacy
def test_bench_json_has_one_schema_for_every_backend(asset, capsys):
    models = [str(asset("wakeword_alexa.tflite"))]
    try:
        import onnxruntime  # noqa: F401

        models.append(str(asset("silero_vad.onnx")))
    except ImportError:
        pass
    assert main(["bench", *models, "--threads", "1", "2", "--runs", "20", "--shape", "input=1x576", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2 * len(models)
    keys = {frozenset(r) for r in results}
    assert len(keys) == 1  # one schema
    for r in results:
        assert r["runs"] == 20
        assert r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["peak_rss_mib"] > 10 and r["throughput_per_s"] > 0 and r["load_ms"] > 0
    assert [r["threads"] for r in results[:2]] == [1, 2]


@pytest.mark.legacy
def test_bench_table_is_side_by_side(asset, capsys):
    a, b = str(asset("wakeword_alexa.tflite")), str(asset("wakeword_okay_nabu.tflite"))
    assert main(["bench", a, b, "--runs", "10", "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| model") and "p99 ms" in lines[0]
    assert "wakeword_alexa.tflite" in lines[2] and "wakeword_okay_nabu.tflite" in lines[3]
    assert lines[2].rstrip(" |").endswith("1.00x")


@pytest.mark.legacy
@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "/nonexistent/model.tflite"], "no such model file"),
        (["bench", "/nonexistent/model.tflite"], "no such model file"),
        (["inspect", "__ASSET__", "--device", "tpu"], "unknown device"),
        (["inspect", "__ASSET__", "--device", "edgetpu"], "Edge TPU runtime"),
        (["bench", "__ASSET__", "--runs", "0"], "runs must be >= 1"),
    ],
)
def test_failures_exit_non_zero_with_the_reason(asset, capsys, argv, message):
    argv = [str(asset("wakeword_alexa.tflite")) if a == "__ASSET__" else a for a in argv]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "inspect" in capsys.readouterr().out

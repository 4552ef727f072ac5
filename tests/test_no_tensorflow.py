"""The device side (edge_runtime and the edgepilot inspect/bench commands) runs with TensorFlow
blocked from import, and the CLI starts without importing any heavy package."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

BLOCK = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "tf_keras", "keras"}:
                raise ImportError("blocked by the test: " + name)
    sys.meta_path.insert(0, _Block())
    try:
        import tensorflow
        raise SystemExit("the import blocker did not block tensorflow")
    except ImportError:
        pass
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.legacy
def test_runtime_runs_real_models_with_tensorflow_blocked(asset):
    paths = [str(asset("wakeword_alexa.tflite")), str(asset("blazeface_short_range.tflite"))]
    proc = _run(f"""
        import json, numpy as np, edge_runtime
        from edge_runtime.bench import benchmark
        report = {{}}
        for path in {paths!r}:
            model = edge_runtime.load(path, device="cpu")
            out = model.run(*[np.zeros([max(d, 1) for d in s.shape], np.float32) for s in model.inputs])
            report[path] = [model.accelerator, len(out), benchmark(path, runs=5).runs]
        report["tf_loaded"] = "tensorflow" in sys.modules
        print(json.dumps(report))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report.pop("tf_loaded") is False
    for accelerator, outputs, runs in report.values():
        assert accelerator.startswith("cpu/") and outputs >= 1 and runs == 5


@pytest.mark.legacy
def test_cli_inspect_and_bench_run_with_tensorflow_blocked(asset):
    path = str(asset("wakeword_okay_nabu.tflite"))
    proc = _run(f"""
        from edgepilot.cli import main
        assert main(["inspect", {path!r}]) == 0
        assert main(["bench", {path!r}, "--runs", "5", "--json"]) == 0
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "serving_default_input_audio:0" in proc.stdout


def test_help_imports_no_heavy_package():
    code = """
        import sys, contextlib, io
        from edgepilot.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["--help"])
            except SystemExit:
                pass
        heavy = sorted(m for m in ("tensorflow", "onnxruntime", "cv2", "ai_edge_litert", "onnx", "keras") if m in sys.modules)
        print(heavy)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

"""How fast ``listen`` can run a microWakeWord model against pymicro-wakeword: one model step in
each TFLite interpreter installed here, same int8 inputs, timed and compared bit for bit with the
TFLite C library that pymicro-wakeword bundles (its reference). It found the slow STRIDED_SLICE
kernel of ai-edge-litert 2.2 and 2.3, which pyproject.toml now excludes.

    python -m bench.interpreters [--steps 3000] [--litert-versions 2.1.6 2.2.0 ...]

Prints a markdown table (median of 5 interleaved rounds, microseconds per invoke) for
docs/speech.md. ``--litert-versions`` adds a row per ai-edge-litert release, each installed with pip
into its own virtual environment under ~/.cache/edgepilot/litert-versions/ and run there (5 rounds
of its own, after the others): how much the release alone changes the built-in kernels' speed.
TensorFlow's ``tf.lite`` is measured when TensorFlow is installed; the apps never use it (they
must run with the ``[apps]`` extra only)."""
from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


class _CLib:
    """pymicro-wakeword's own interpreter: its bundled libtensorflowlite_c through ctypes."""

    def __init__(self):
        from pymicro_wakeword import MicroWakeWord, Model

        self.m = MicroWakeWord.from_builtin(Model.OKAY_NABU)
        self._out = np.empty(1, np.uint8)

    def step(self, x: np.ndarray) -> int:
        m = self.m
        m.lib.TfLiteTensorCopyFromBuffer(m.input_tensor, x.ctypes.data_as(ctypes.c_void_p), x.nbytes)
        m.lib.TfLiteInterpreterInvoke(m.interpreter)
        m.lib.TfLiteTensorCopyToBuffer(m.output_tensor, self._out.ctypes.data_as(ctypes.c_void_p), 1)
        return int(self._out[0])


class _Python:
    """A Python TFLite interpreter (LiteRT or tf.lite), with or without its default delegates."""

    def __init__(self, module, path: str, xnnpack: bool):
        kwargs = {"num_threads": 1}
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.it = module.Interpreter(path, **kwargs)
        self.it.allocate_tensors()
        self.i = self.it.get_input_details()[0]["index"]
        self.o = self.it.get_output_details()[0]["index"]

    def step(self, x: np.ndarray) -> int:
        self.it.set_tensor(self.i, x)
        self.it.invoke()
        return int(self.it.get_tensor(self.o).flat[0])


def engines(path: str) -> dict:
    from ai_edge_litert import interpreter as litert

    from edge_runtime.tflite_backend import runtime_version

    version = runtime_version("ai_edge_litert")
    found = {"pymicro-wakeword's libtensorflowlite_c (reference)": _CLib(),
             f"LiteRT {version}, no delegate (what listen runs)": _Python(litert, path, xnnpack=False),
             f"LiteRT {version}, XNNPACK": _Python(litert, path, xnnpack=True)}
    try:
        import tensorflow as tf

        found["TensorFlow tf.lite, no delegate"] = _Python(_TfLite(tf), path, False)
    except ImportError:
        pass
    return found


class _TfLite:
    """tf.lite laid out like LiteRT's module (Interpreter, OpResolverType)."""

    def __init__(self, tf):
        self.Interpreter = tf.lite.Interpreter
        self.OpResolverType = tf.lite.experimental.OpResolverType


_VERSION_CHILD = """
import json, sys, time
import numpy as np
from ai_edge_litert import interpreter as litert
path, inputs, rounds = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
times, outputs = [], []
for _ in range(rounds):
    it = litert.Interpreter(path, num_threads=1,
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out, start = [], time.perf_counter()
    for x in inputs:
        it.set_tensor(i, x)
        it.invoke()
        out.append(int(it.get_tensor(o).flat[0]))
    times.append((time.perf_counter() - start) / len(inputs) * 1e6)
    outputs = out
print(json.dumps({"times": times, "outputs": outputs}))
"""


def litert_release(version: str, path: str, inputs: list[np.ndarray], rounds: int) -> dict:
    """Run the steps in ai-edge-litert ``version``, installed into a venv of its own (cached)."""
    import json
    import subprocess
    import tempfile

    venv = Path.home() / ".cache" / "edgepilot" / "litert-versions" / version
    python, installed = venv / "bin" / "python", venv / ".installed"
    if not installed.exists():  # the stamp is written only after pip succeeded
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"ai-edge-litert=={version}", "numpy"], check=True)
        installed.touch()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "inputs.npy", np.stack(inputs))
        done = subprocess.run([str(python), "-c", _VERSION_CHILD, path, str(Path(tmp) / "inputs.npy"), str(rounds)],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ai-edge-litert {version} in {venv} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(steps: int = 3000, rounds: int = 5, versions: tuple[str, ...] = ()) -> str:
    """Each round builds every interpreter afresh (the model keeps state between steps), runs
    the same steps through each, and compares each with the reference's outputs of that round."""
    import assets

    path = str(assets.fetch("wakeword_okay_nabu.tflite"))
    ref_name = "pymicro-wakeword's libtensorflowlite_c (reference)"
    rng = np.random.default_rng(0)
    litert = next(e for e in engines(path).values() if isinstance(e, _Python))
    shape = litert.it.get_input_details()[0]["shape"]
    inputs = [rng.integers(-128, 40, shape).astype(np.int8) for _ in range(steps)]
    times: dict[str, list[float]] = {}
    differ: dict[str, int] = {}
    for _ in range(rounds):
        outputs = {}
        for name, engine in engines(path).items():
            start = time.perf_counter()
            outputs[name] = [engine.step(x) for x in inputs]
            times.setdefault(name, []).append((time.perf_counter() - start) / steps * 1e6)
        for name, out in outputs.items():
            differ[name] = max(differ.get(name, 0), sum(a != b for a, b in zip(out, outputs[ref_name])))
    for version in versions:
        found = litert_release(version, path, inputs, rounds)
        name = f"LiteRT {version} (own venv), no delegate"
        times[name] = found["times"]
        differ[name] = sum(a != b for a, b in zip(found["outputs"], outputs[ref_name]))
    base = float(np.median(times[ref_name]))
    rows = [f"| {name} | {np.median(t):.1f} | {np.median(t) / base:.2f}x | {differ[name]} of {steps} |"
            for name, t in times.items()]
    return ("| interpreter | us per step (set, invoke, get) | vs reference | outputs that differ from the reference |\n"
            "|---|---|---|---|\n" + "\n".join(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--litert-versions", nargs="*", default=[], metavar="VERSION",
                        help="ai-edge-litert releases to add, each pip-installed into its own cached venv")
    args = parser.parse_args(argv)
    print(measure(args.steps, versions=tuple(args.litert_versions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

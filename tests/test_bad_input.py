"""Model files are untrusted input: every bad file gets a clear error naming it, and none may
crash the Python process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edge_runtime
from edge_runtime import ModelFileError

HERE = Path(__file__).resolve().parent


@pytest.mark.legacy
@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such model file"),
        (b"", "too short to be a model"),
        (b"hello, world, this is text, not a model\n", "neither a TFLite flatbuffer"),
        (b"\x00" * 64, "neither a TFLite flatbuffer"),
        (b"\x10\x00\x00\x00TFL3" + b"\xff" * 8, "not a valid TFLite model"),  # identifier, garbage body
    ],
)
def test_bad_files_get_a_clear_error_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=expected) as info:
        edge_runtime.load(path)
    assert str(path) in str(info.value)


@pytest.mark.legacy
def test_directory_fifo_and_symlink_loop_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        edge_runtime.load(tmp_path)
    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):  # reading it would block forever
        edge_runtime.load(fifo)
    loop = tmp_path / "loop.tflite"
    loop.symlink_to(loop)
    with pytest.raises(ModelFileError, match="symbolic link loop"):
        edge_runtime.load(loop)


@pytest.mark.legacy
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_real_model_is_refused(asset, tmp_path, fraction):
    data = asset("wakeword_okay_nabu.tflite").read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match=str(path)):
        edge_runtime.load(path)


def test_truncated_onnx_model_is_refused(asset, tmp_path):
    pytest.importorskip("onnxruntime")
    data = asset("silero_vad.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="past the end of the file: truncated"):
        edge_runtime.load(path)


def _with_shape(data: bytes, pick, dim: int, value: int) -> bytes:
    """``data`` with one dimension of the first tensor ``pick(tensor_bytes, buffer)`` chooses set to ``value``."""
    import struct

    from edge_runtime import tflite_file as tf

    r = tf._Reader(data)
    model = r.root()
    t = next(t for t in r.tables(r.tables(model, 2)[0], 0) if pick(tf._tensor_bytes(r, t), r.scalar(t, 2, "<I")))
    start, _ = r.vector(t, 0, 4)
    out = bytearray(data)
    struct.pack_into("<i", out, start + 4 * dim, value)
    return bytes(out)


def test_a_tensor_larger_than_memory_is_refused_before_the_interpreter_allocates_it(asset, tmp_path):
    # the fuzz test's blazeface attempt 242: one activation's shape corrupted to 28 GB made
    # allocate_tensors segfault
    path = tmp_path / "huge.tflite"
    path.write_bytes(_with_shape(asset("blazeface_short_range.tflite").read_bytes(),
                                 lambda size, buffer: size and not buffer, 1, 1 << 30))
    with pytest.raises(ModelFileError, match=r"huge.tflite: tensor '.*' of shape \[.*1073741824.*\] needs [\d,.]+ GiB, "
                                             r"more than this machine's [\d.]+ GiB of memory"):
        edge_runtime.load(path, device="cpu")


def test_a_constant_whose_shape_disagrees_with_its_data_is_refused(asset, tmp_path):
    path = tmp_path / "weights.tflite"
    path.write_bytes(_with_shape(asset("blazeface_short_range.tflite").read_bytes(),
                                 lambda size, buffer: size and buffer, 0, 3))
    with pytest.raises(ModelFileError, match=r"weights.tflite: not a valid TFLite model: constant tensor \d+ .* "
                                             r"bytes, but its buffer holds [\d,]+ bytes: corrupted"):
        edge_runtime.load(path, device="cpu")


def _fuzz(source: Path, tmp_path: Path, seed: int, attempts: int) -> dict[str, int]:
    """Run the fuzz child; fail with the crashing file if the process dies."""
    target = tmp_path / f"fuzz{source.suffix}"
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_child.py"), str(source), str(target), str(seed), str(attempts)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        keep = tmp_path / f"crash_{source.name}"
        keep.write_bytes(target.read_bytes())
        pytest.fail(f"loading a mutated {source.name} killed the process (exit {proc.returncode}) at "
                    f"attempt {lines[-1]['attempt'] if lines else '?'}; the file is kept at {keep}\n{proc.stderr[-2000:]}")
    outcomes: dict[str, int] = {}
    for line in lines:
        if line["status"] != "started":
            outcomes[line["status"]] = outcomes.get(line["status"], 0) + 1
    return outcomes


@pytest.mark.legacy
@pytest.mark.parametrize("name, attempts", [("wakeword_hey_mycroft.tflite", 300), ("blazeface_short_range.tflite", 300),
                                            ("silero_vad.onnx", 40)])  # a few seconds each
def test_fuzzed_model_files_never_crash_and_raise_only_our_errors(asset, tmp_path, name, attempts):
    # the same mutations every run (seeded, a fixed count, not a time budget a loaded machine cuts short)
    if name.endswith(".onnx"):
        pytest.importorskip("onnxruntime")
    outcomes = _fuzz(asset(name), tmp_path, seed=1234, attempts=attempts)
    unexpected = {k: v for k, v in outcomes.items() if k.startswith("UNEXPECTED")}
    assert not unexpected, f"errors that are not edge_runtime errors: {unexpected}"
    assert sum(outcomes.values()) == attempts, outcomes  # every attempt ended, with a result or our error
    assert outcomes.get("ModelFileError", 0) > 0, outcomes  # and mutations were detected


@pytest.mark.legacy
def test_op_version_newer_than_the_runtime_says_what_to_do():
    # Made by scripts/legacy_env.sh with the main environment's TensorFlow (FULLY_CONNECTED v12).
    path = os.environ.get("EDGEPILOT_NEW_OP_MODEL")
    if not path:
        pytest.skip("EDGEPILOT_NEW_OP_MODEL is set by scripts/legacy_env.sh (needs the main .venv with TensorFlow)")
    from edge_runtime import deps

    if deps.tflite_interpreters()[0] != "tflite_runtime":
        model = edge_runtime.load(path, device="cpu")  # a current runtime knows the op version
        assert model.inputs[0].shape[-1] == 64
        return
    with pytest.raises(ModelFileError, match="does not know an op this model uses") as info:
        edge_runtime.load(path, device="cpu")
    message = str(info.value)
    assert "FULLY_CONNECTED" in message and "pip install ai-edge-litert" in message and path in message

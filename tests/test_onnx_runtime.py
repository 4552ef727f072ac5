"""edge_runtime on ONNX models: real (Silero VAD, ONNX conformance cases) and built here."""
import numpy as np
import pytest

import edge_runtime
from edge_runtime import DeviceError

ort = pytest.importorskip("onnxruntime")


def test_affine_model_matches_numpy_and_reads_metadata(tiny_onnx):
    model = edge_runtime.load(tiny_onnx["affine"], device="cpu", threads=2)
    assert model.format == "onnx" and model.accelerator == "onnxruntime/CPUExecutionProvider x2 threads"
    assert model.metadata == {"task": "regression", "labels": "a,b,c"}
    assert model.inputs[0].shape == (-1, 5)
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    w, b = np.load(tiny_onnx["W"]), np.load(tiny_onnx["b"])
    np.testing.assert_allclose(model.run(x)["y"], x @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.run(x=x)[0], x @ w + b, rtol=1e-5, atol=1e-5)


def test_silero_vad_carries_state_through_its_inputs(asset):
    model = edge_runtime.load(asset("silero_vad.onnx"), device="cpu")
    assert [s.name for s in model.inputs] == ["input", "state", "sr"]
    rng = np.random.default_rng(0)
    state = np.zeros((2, 1, 128), np.float32)
    chunk = (0.1 * rng.normal(size=(1, 576))).astype(np.float32)
    out = model.run(input=chunk, state=state, sr=16000)
    assert out["output"].shape == (1, 1) and 0.0 <= float(out["output"][0, 0]) <= 1.0
    assert out["stateN"].shape == (2, 1, 128)
    assert not np.array_equal(out["stateN"], state)  # the new state is returned, not kept inside


def test_conformance_cases_match_expected_outputs():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    import assets

    cases = assets.onnx_conformance_cases()
    assert len(cases) >= 100
    checked = 0
    for case in cases[::7]:  # a spread sample over all three folders
        data = case / "test_data_set_0"
        inputs = [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in sorted(data.glob("input_*.pb"))]
        expected = [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in sorted(data.glob("output_*.pb"))]
        try:
            model = edge_runtime.load(case / "model.onnx", device="cpu")
        except edge_runtime.ModelFileError:
            continue  # an op this onnxruntime build lacks: a clear error is the contract
        got = model.run(*inputs).ordered
        assert len(got) == len(expected), case.name
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4, err_msg=case.name)
        checked += 1
    assert checked >= 15


def test_gpu_provider_that_silently_falls_back_is_caught(tiny_onnx, monkeypatch):
    # MOCK: this machine has no GPU. We claim CUDA is installed; the real onnxruntime (CPU build)
    # then makes a session that silently runs on CPU, which load() must detect and refuse.
    from edge_runtime import onnx_backend

    monkeypatch.setattr(onnx_backend, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(DeviceError, match="CUDAExecutionProvider"):
        edge_runtime.load(tiny_onnx["affine"], device="gpu")
    model = edge_runtime.load(tiny_onnx["affine"], device="auto")
    assert model.accelerator.startswith("onnxruntime/CPUExecutionProvider")
    assert model.fallbacks[0].device == "gpu/CUDAExecutionProvider"


def test_explicit_gpu_with_no_provider_raises(tiny_onnx):
    with pytest.raises(DeviceError, match="no ONNX Runtime GPU provider"):
        edge_runtime.load(tiny_onnx["affine"], device="gpu")
    with pytest.raises(DeviceError, match="Edge TPU runs only"):
        edge_runtime.load(tiny_onnx["affine"], device="edgetpu")


def test_auto_records_why_it_fell_back(tiny_onnx):
    model = edge_runtime.load(tiny_onnx["affine"])
    assert model.accelerator.startswith("onnxruntime/CPUExecutionProvider")
    assert model.fallbacks and "GPU" in model.fallbacks[0].reason


def test_node_placement_counts_every_node(tiny_onnx):
    model = edge_runtime.load(tiny_onnx["affine"], device="cpu")
    placement = model.node_placement([np.zeros((2, 5), np.float32)])
    # placement counts the nodes that really run: ONNX Runtime fuses MatMul + Add into one Gemm
    assert dict(placement) == {"CPUExecutionProvider": 1}

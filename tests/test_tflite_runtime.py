"""edge_runtime on real TFLite models made elsewhere, and on tiny models built here."""
import numpy as np
import pytest

import edge_runtime
from conftest import WAKE_WORDS
from edge_runtime import DeviceError, InputError, Outputs


def _raw_inputs(rng, n=50):
    return [rng.integers(-128, 128, (1, 3, 40)).astype(np.int8) for _ in range(n)]


@pytest.mark.legacy
@pytest.mark.parametrize("name", WAKE_WORDS)
def test_wake_word_models_describe_their_quantization(asset, name):
    model = edge_runtime.load(asset(f"wakeword_{name}.tflite"), device="cpu")
    (inp,), (out,) = model.inputs, model.outputs
    assert inp.shape == (1, 3, 40) and inp.dtype == np.int8
    assert inp.quantization.scale == pytest.approx(0.10196, abs=1e-5) and inp.quantization.zero_point == -128
    assert out.dtype == np.uint8 and out.quantization.scale == pytest.approx(1 / 256)
    assert model.stateful
    # the sidecar JSON shipped beside the model is read too
    assert edge_runtime.sidecar_metadata(model.path)["micro"]["probability_cutoff"] > 0


@pytest.mark.legacy
def test_float_io_equals_manual_quantization_of_raw_io(asset):
    path = asset("wakeword_hey_mycroft.tflite")
    floats, raws = edge_runtime.load(path, device="cpu"), edge_runtime.load(path, device="cpu")
    qin, qout = floats.inputs[0].quantization, floats.outputs[0].quantization
    rng = np.random.default_rng(3)
    for _ in range(40):
        x = rng.uniform(0, 26, (1, 3, 40)).astype(np.float32)
        y = floats.run(x)[0]
        q = raws.run(qin.quantize(x, np.int8), raw=True)[0]
        assert y.dtype == np.float32 and q.dtype == np.uint8
        np.testing.assert_array_equal(y, (q.astype(np.float32) - qout.zero_point) * qout.scale)


@pytest.mark.legacy
def test_stateful_model_keeps_state_and_reset_forgets_it(asset):
    # hey_mycroft's output depends on earlier frames (VAR_HANDLE/ASSIGN_VARIABLE state).
    # TFLite's reset_all_variables() does NOT reset these resource variables; Model.reset() must.
    model = edge_runtime.load(asset("wakeword_hey_mycroft.tflite"), device="cpu")
    frames = _raw_inputs(np.random.default_rng(1))

    def play():
        return np.array([model.run(f, raw=True)[0].item() for f in frames])

    first = play()
    second = play()  # state carried over from the first pass
    assert (first != second).any(), "the model should remember earlier frames"
    model.reset()
    np.testing.assert_array_equal(play(), first)


@pytest.mark.legacy
def test_stream_is_the_same_whatever_model_instance(asset):
    # a fresh model and a reset model give the same stream: nothing leaks across instances
    path = asset("wakeword_hey_mycroft.tflite")
    frames = _raw_inputs(np.random.default_rng(2), 30)
    a, b = edge_runtime.load(path, device="cpu"), edge_runtime.load(path, device="cpu")
    for f in frames[:10]:
        a.run(f, raw=True)
    a.reset()
    np.testing.assert_array_equal([a.run(f, raw=True)[0].item() for f in frames],
                                  [b.run(f, raw=True)[0].item() for f in frames])


@pytest.mark.legacy
def test_blazeface_runs_and_reports_full_xnnpack_delegation(asset):
    model = edge_runtime.load(asset("blazeface_short_range.tflite"), device="cpu", threads=2)
    out = model.run(np.zeros((1, 128, 128, 3), np.float32))
    assert isinstance(out, Outputs)
    assert out["regressors"].shape == (1, 896, 16) and out["classificators"].shape == (1, 896, 1)
    assert [a.shape for a in out.ordered] == [(1, 896, 16), (1, 896, 1)]
    assert out[1] is out["classificators"]
    assert model.threads == 2
    if model.runtime == "ai_edge_litert":
        assert model.accelerator == "cpu/xnnpack x2 threads"
        assert model.delegation.full and model.delegation.total == 164


def test_named_and_positional_inputs_agree(tiny):
    model = edge_runtime.load(tiny["two_inputs"], device="cpu")
    names = [s.name for s in model.inputs]
    assert any("image" in n for n in names) and any("gain" in n for n in names)
    rng = np.random.default_rng(0)
    values = {s.name: rng.normal(size=(1,) + s.shape[1:]).astype(np.float32) for s in model.inputs}
    by_name = model.run(**values)[0]
    positional = model.run(*[values[n] for n in names])[0]
    as_dict = model.run(values)[0]
    np.testing.assert_array_equal(by_name, positional)
    np.testing.assert_array_equal(by_name, as_dict)
    with pytest.raises(InputError, match="missing"):
        model.run(**{names[0]: values[names[0]]})
    with pytest.raises(InputError, match="expected 2 input"):
        model.run(values[names[0]])


def test_dynamic_batch_is_resized_and_fixed_batch_is_refused(tiny):
    model = edge_runtime.load(tiny["conv"], device="cpu")
    assert model.inputs[0].shape == (-1, 12, 12, 3)
    x = np.random.default_rng(0).normal(size=(5, 12, 12, 3)).astype(np.float32)
    batch = model.run(x)[0]
    assert batch.shape == (5, 4)
    singles = np.concatenate([model.run(x[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6)
    fixed = edge_runtime.load(tiny["fixed"], device="cpu")
    with pytest.raises(InputError, match=r"expects shape \[1, 6\], got \[4, 6\]"):
        fixed.run(np.zeros((4, 6), np.float32))


def test_input_dtype_and_shape_errors_name_the_tensor(tiny):
    model = edge_runtime.load(tiny["conv"], device="cpu")
    name = model.inputs[0].name
    with pytest.raises(InputError, match=f"'{name}' expects shape"):
        model.run(np.zeros((1, 12, 12), np.float32))
    with pytest.raises(InputError, match="expects dtype float32, got complex64"):
        model.run(np.zeros((1, 12, 12, 3), np.complex64))
    # float64 is converted (same kind), not refused
    assert model.run(np.zeros((1, 12, 12, 3)))[0].shape == (1, 4)


@pytest.mark.legacy
def test_nan_into_a_quantized_input_is_an_input_error(asset):
    model = edge_runtime.load(asset("wakeword_alexa.tflite"), device="cpu")
    with pytest.raises(InputError, match="NaN"):
        model.run(np.full((1, 3, 40), np.nan, np.float32))


def test_failed_resize_leaves_the_model_usable(tiny):
    # fixed_reshape reshapes to [1, 6] inside, so only batch 1 can run although its input is [?, 6]
    model = edge_runtime.load(tiny["fixed_reshape"], device="cpu")
    one = np.ones((1, 6), np.float32)
    expected = model.run(one)[0]
    with pytest.raises(edge_runtime.InferenceError, match="cannot be resized"):
        model.run(np.ones((3, 6), np.float32))
    np.testing.assert_array_equal(model.run(one)[0], expected)


def test_int8_model_float_in_float_out(tiny):
    f32 = edge_runtime.load(tiny["conv"], device="cpu")
    i8 = edge_runtime.load(tiny["conv_int8"], device="cpu")
    assert i8.inputs[0].dtype == np.int8 and i8.inputs[0].quantized
    x = np.random.default_rng(1).uniform(-1, 1, (3, 12, 12, 3)).astype(np.float32)
    ref, got = f32.run(x)[0], i8.run(x)[0]
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() < 0.05  # softmax probabilities within a few quantization steps
    with pytest.raises(InputError, match=r"given as quantized codes \(raw=True or raw_inputs=True\) must be int8, got float32"):
        i8.run(x, raw=True)
    assert i8.run(i8.inputs[0].quantization.quantize(x, np.int8), raw=True)[0].dtype == np.int8


def test_16x8_model_reports_reference_kernels(tiny):
    model = edge_runtime.load(tiny["conv_16x8"], device="cpu")
    assert model.delegation.nodes == 0  # XNNPACK takes none of a 16x8 graph
    assert "builtin kernels" in model.accelerator


def test_format_comes_from_content_not_name(tiny, tmp_path):
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(tiny["conv"].read_bytes())
    assert edge_runtime.load(disguised, device="cpu").format == "tflite"


@pytest.mark.legacy
def test_edgetpu_without_runtime_says_how_to_install(asset):
    # Real: there is no libedgetpu on this machine, so the delegate load fails for real.
    with pytest.raises(DeviceError, match=r"libedgetpu.*(install|Install).*Edge TPU runtime"):
        edge_runtime.load(asset("blazeface_short_range.tflite"), device="edgetpu:usb:0")


@pytest.mark.legacy
def test_gpu_delegate_that_is_not_a_delegate_is_a_device_error(asset):
    # Real: libm is a shared library but not a TFLite delegate (AttributeError inside the runtime).
    import ctypes.util

    libm = ctypes.util.find_library("m")
    with pytest.raises(DeviceError, match="could not load delegate library"):
        edge_runtime.load(asset("blazeface_short_range.tflite"), device=f"gpu:{libm}")


@pytest.mark.legacy
def test_gpu_without_delegate_or_adapter_raises_but_auto_runs_on_cpu(asset, monkeypatch):
    path = asset("blazeface_short_range.tflite")
    monkeypatch.delenv("EDGEPILOT_GPU_DELEGATE", raising=False)
    with pytest.raises(DeviceError):
        edge_runtime.load(path, device="gpu")  # no GPU here: explicit device must not fall back
    monkeypatch.setenv("EDGEPILOT_GPU_DELEGATE", "/nonexistent/libgpu_delegate.so")
    model = edge_runtime.load(path, device="auto")
    assert model.accelerator.startswith("cpu/")
    assert [f.device for f in model.fallbacks] == ["gpu"]
    assert "libgpu_delegate.so" in model.fallbacks[0].reason


@pytest.mark.parametrize(
    "error",
    [
        OSError("libedgetpu.so.1: cannot open shared object file"),  # library missing (what LiteRT raises)
        ValueError("Failed to load delegate from libedgetpu.so.1"),  # what older runtimes raise
        AttributeError("undefined symbol: tflite_plugin_create_delegate"),  # not a delegate library
    ],
)
def test_every_delegate_load_failure_becomes_a_device_error(asset, monkeypatch, error):
    # MOCK: no Edge TPU and no libedgetpu can be had here; this stands in for an installed
    # libedgetpu (the library check passes) whose delegate then fails in each of three ways.
    from edge_runtime import tflite_backend

    monkeypatch.setattr(tflite_backend, "_check_library", lambda library, what: None)

    real = tflite_backend._interpreter_module

    def fake(preferred):
        name, cls, _ = real(preferred)

        def load_delegate(library, options=None):
            raise error

        return name, cls, load_delegate

    monkeypatch.setattr(tflite_backend, "_interpreter_module", fake)
    with pytest.raises(DeviceError, match=type(error).__name__):
        edge_runtime.load(asset("blazeface_short_range.tflite"), device="edgetpu:pci:0")


def test_edgetpu_compiled_model_without_tpu_says_so(edgetpu_model):
    with pytest.raises(DeviceError, match="compiled for the Edge TPU.*cannot run"):
        edge_runtime.load(edgetpu_model, device="cpu")
    with pytest.raises(DeviceError, match="compiled for the Edge TPU.*Edge TPU runtime"):
        edge_runtime.load(edgetpu_model, device="auto")


@pytest.fixture(scope="module")
def edgetpu_model(tiny, tmp_path_factory):
    """A model shaped like edgetpu_compiler's output: its ops replaced by one
    'edgetpu-custom-op' custom operator (built with LiteRT's schema object API)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(tiny["conv"].read_bytes(), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
    code.customCode = "edgetpu-custom-op"
    code.version = 1
    model.operatorCodes.append(code)
    graph = model.subgraphs[0]
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs, op.outputs = list(graph.inputs), list(graph.outputs)
    op.customOptions = [0]
    graph.operators = [op]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path_factory.mktemp("edgetpu") / "conv_edgetpu.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.mark.legacy
def test_the_first_installed_interpreter_runs_the_model(asset):
    # LiteRT where it is installed; in the numpy<2 legacy environment, tflite-runtime
    from edge_runtime import deps

    model = edge_runtime.load(asset("wakeword_alexa.tflite"), device="cpu")
    assert model.runtime == deps.tflite_interpreters()[0]
    if not deps.is_available("ai_edge_litert"):
        assert model.runtime == "tflite_runtime"


def test_without_xnnpack_outputs_equal_the_reference_interpreter(asset):
    """xnnpack=False: LiteRT's built-in kernels only, bit-identical to the TFLite C library that
    pymicro-wakeword runs (XNNPACK's int8 kernels round some of this model's outputs differently);
    a reset rebuilds the interpreter the same way."""
    import ctypes

    pymicro = pytest.importorskip("pymicro_wakeword")
    model = edge_runtime.load(asset("wakeword_okay_nabu.tflite"), device="cpu", xnnpack=False)
    assert model.accelerator == "cpu/builtin kernels x1 threads" and model.delegation.partitions == 0
    reference = pymicro.MicroWakeWord.from_builtin(pymicro.Model.OKAY_NABU)
    frames = [np.round(f * 0.6 - 128).clip(-128, 127).astype(np.int8) for f in _raw_inputs(np.random.default_rng(5), 300)]

    def reference_output(frame) -> int:
        lib = reference.lib
        lib.TfLiteTensorCopyFromBuffer(reference.input_tensor, frame.ctypes.data_as(ctypes.c_void_p), frame.nbytes)
        lib.TfLiteInterpreterInvoke(reference.interpreter)
        out = np.empty(1, np.uint8)
        lib.TfLiteTensorCopyToBuffer(reference.output_tensor, out.ctypes.data_as(ctypes.c_void_p), 1)
        return int(out[0])

    expected = [reference_output(f) for f in frames]
    assert len(set(expected)) > 3  # the stream moves the output
    assert [int(model.run(f, raw=True)[0].item()) for f in frames] == expected
    model.reset()
    assert model.accelerator == "cpu/builtin kernels x1 threads"
    assert [int(model.run(f, raw=True)[0].item()) for f in frames] == expected


def test_release_with_a_slow_kernel_is_named_where_the_model_uses_it(asset, monkeypatch):
    """ai-edge-litert 2.2/2.3 run STRIDED_SLICE on a kernel several times slower than 2.1 or 2.4: a
    model that leaves STRIDED_SLICE on the built-in kernels says so (inspect, listen, detect and
    control print it), counting only the nodes no delegate took; a release without the slow kernel
    says nothing."""
    from edge_runtime import tflite_backend
    from edge_runtime.inspection import inspect_model

    path = asset("wakeword_okay_nabu.tflite")
    assert tflite_backend.slow_kernel_warnings("ai_edge_litert", "2.1.6", {"STRIDED_SLICE": 12}) == ()
    assert tflite_backend.slow_kernel_warnings("tflite_runtime", "2.3.0", {"STRIDED_SLICE": 12}) == ()
    assert tflite_backend.slow_kernel_warnings("ai_edge_litert", "2.3.0", {"CONV_2D": 6}) == ()
    monkeypatch.setattr(tflite_backend, "runtime_version", lambda runtime: "2.3.0")
    model = edge_runtime.load(path, device="cpu", xnnpack=False, interpreter="ai_edge_litert")
    (warning,) = model.warnings
    assert "ai-edge-litert 2.3.0 runs STRIDED_SLICE (12 node(s)" in warning and "!=2.3.*" in warning
    assert inspect_model(path, device="cpu", xnnpack=False).warnings == model.warnings
    on_xnnpack = edge_runtime.load(path, device="cpu", interpreter="ai_edge_litert")
    left = dict(on_xnnpack.delegation.outside).get("STRIDED_SLICE", 0)  # what this XNNPACK build leaves
    assert [w.split(" node(s)")[0] for w in on_xnnpack.warnings] == \
        ([f"ai-edge-litert 2.3.0 runs STRIDED_SLICE ({left}"] if left else [])
    monkeypatch.setattr(tflite_backend, "runtime_version", lambda runtime: "2.1.6")
    assert edge_runtime.load(path, device="cpu", xnnpack=False, interpreter="ai_edge_litert").warnings == ()


def test_raw_inputs_take_codes_and_still_dequantize_the_outputs(asset):
    """run(codes, raw_inputs=True) == run(floats) when the codes are the floats' quantization;
    raw=True would also leave the outputs as integers."""
    model = edge_runtime.load(asset("wakeword_okay_nabu.tflite"), device="cpu", xnnpack=False)
    spec = model.inputs[0]
    codes = _raw_inputs(np.random.default_rng(9), 1)[0]
    floats = spec.quantization.dequantize(codes)
    assert np.array_equal(spec.quantization.quantize(floats, spec.dtype), codes)
    expected = model.run(floats)[0]
    model.reset()
    got = model.run(codes, raw_inputs=True)[0]
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    model.reset()
    assert model.run(codes, raw=True)[0].dtype == model.outputs[0].dtype

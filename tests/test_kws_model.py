"""The keyword-spotting network streams exactly: its streaming SavedModel and the .tflite files
convert makes of it give, step by step, what the non-streaming model gives on the window that
ends at that step; the int8 file is full integer, state included."""
import collections

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def streaming(tmp_path_factory):
    from train.kws.architecture import (
        KwsArchitecture,
        build_model,
        save_streaming,
        stream_steps,
    )

    arch = KwsArchitecture(first_channels=16, channels=16)
    model = build_model(arch, 5, seed=1)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking batch-norm statistics, so folding them is tested
        if layer.name.endswith("bn"):
            g, b, mean, var = layer.get_weights()
            layer.set_weights([g * rng.uniform(0.5, 1.5, g.shape), b + rng.normal(0, 0.1, b.shape),
                               mean + rng.normal(0, 0.5, mean.shape), var * rng.uniform(0.5, 2, var.shape)])
    folder = tmp_path_factory.mktemp("kws")
    save_streaming(model, arch, str(folder / "stream"))
    feats = rng.uniform(0, 26, size=(240, 40)).astype(np.float32)
    steps = stream_steps(feats, arch)
    windows = np.stack([feats[3 * n - arch.window_frames:3 * n] for n in range(33, len(steps) + 1)])
    reference = model.predict(windows, verbose=0)
    return arch, folder, steps, reference


def test_streaming_saved_model_equals_the_window_model(streaming):
    import tensorflow as tf

    _, folder, steps, reference = streaming
    step = tf.saved_model.load(str(folder / "stream")).signatures["serving_default"]
    out = np.concatenate([step(features=tf.constant(s[None]))["probabilities"].numpy() for s in steps])
    np.testing.assert_allclose(out[32:], reference, atol=2e-6)


def test_converted_streaming_models_run_in_edge_runtime(streaming):
    import edge_runtime
    from convert.tflite_variants import convert_tflite

    _, folder, steps, reference = streaming
    np.save(folder / "calib.npy", steps)
    fp32 = folder / "fp32.tflite"
    fp32.write_bytes(convert_tflite(str(folder / "stream"), "fp32"))
    int8 = folder / "int8.tflite"
    int8.write_bytes(convert_tflite(str(folder / "stream"), "int8", str(folder / "calib.npy")))
    model = edge_runtime.load(fp32, device="cpu", xnnpack=False)
    assert model.stateful
    out = np.concatenate([model.run(s[None])[0] for s in steps])
    np.testing.assert_allclose(out[32:], reference, atol=1e-5)
    model.reset()  # state forgotten: the same stream gives the same outputs again
    again = np.concatenate([model.run(s[None])[0] for s in steps])
    np.testing.assert_array_equal(again, out)

    q = edge_runtime.load(int8, device="cpu", xnnpack=False)
    ops = collections.Counter(q._backend.op_names())
    assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} <= set(ops)
    assert "DEQUANTIZE" not in ops and ops["QUANTIZE"] <= 1, ops  # the state is int8 too
    assert q.inputs[0].dtype == np.int8
    out8 = np.concatenate([q.run(s[None])[0] for s in steps])
    assert np.abs(out8[32:] - reference).max() < 0.08
    assert (out8[32:].argmax(1) == reference.argmax(1)).mean() >= 0.9


def test_the_qat_twin_computes_what_the_model_does():
    """``--qat`` fine-tunes the 2-D twin (tfmot quantizes only 2-D convolutions); weights move
    between the two by layer name with a reshape, so the twin must give the same output."""
    import keras

    from train.kws.architecture import KwsArchitecture, build_model, build_qat_twin

    arch = KwsArchitecture(first_channels=16, channels=16)
    model = build_model(arch, 5, seed=2)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if layer.name.endswith("bn"):
            g, b, mean, var = layer.get_weights()
            layer.set_weights([g, b + rng.normal(0, 0.1, b.shape), mean + rng.normal(0, 0.5, mean.shape), var])
    twin = build_qat_twin(keras, arch, 5)
    moved = 0
    for layer in twin.layers:
        if layer.get_weights():
            source = model.get_layer(layer.name).get_weights()
            layer.set_weights([w.reshape(t.shape) for w, t in zip(source, layer.get_weights())])
            moved += 1
    assert moved == sum(1 for layer in model.layers if layer.get_weights())
    x = rng.uniform(0, 26, (4, arch.window_frames, 40)).astype(np.float32)
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)

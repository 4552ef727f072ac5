"""The classifier's graph: the space-to-depth stem of small inputs moves pixels exactly as
TensorFlow's space_to_depth does, odd sizes are padded first, and XNNPACK runs the whole
converted model in one partition (fp32 whole; int8 but for the final softmax, which XNNPACK has
no int8 kernel for)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import has

needs_tf = pytest.mark.skipif(not has("tensorflow"), reason="needs TensorFlow")


def _stem_input(model):
    """The tensor the stem's 3x3 convolution reads: the space-to-depth output."""
    import keras

    return keras.Model(model.input, model.get_layer("stem_conv").input)


@needs_tf
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 48, 3)])
def test_the_small_input_stem_is_space_to_depth(shape):
    import keras

    from convert.quiet import import_tensorflow
    from train.architectures import classifier

    tf = import_tensorflow()
    model = classifier(keras, shape, 10)
    x = np.random.default_rng(0).random((2, *shape), np.float32)
    got = np.asarray(_stem_input(model)(x))
    np.testing.assert_array_equal(got, tf.nn.space_to_depth(x, 2).numpy())
    assert model.get_layer("stem_conv").output.shape[1:3] == (shape[0] // 2, shape[1] // 2)
    assert model.output.shape[-1] == 10


@needs_tf
def test_an_odd_sized_input_is_padded_with_zeros_before_space_to_depth():
    import keras

    from convert.quiet import import_tensorflow
    from train.architectures import classifier

    tf = import_tensorflow()
    model = classifier(keras, (27, 29, 3), 4)
    x = np.random.default_rng(1).random((1, 27, 29, 3), np.float32)
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    np.testing.assert_array_equal(np.asarray(_stem_input(model)(x)), tf.nn.space_to_depth(padded, 2).numpy())


@needs_tf
def test_a_large_input_keeps_the_stride_2_stem():
    import keras

    from train.architectures import classifier

    model = classifier(keras, (96, 96, 3), 5)
    names = {layer.name for layer in model.layers}
    assert "stem_s2d" not in names
    assert model.get_layer("stem_conv").strides == (2, 2)


@needs_tf
def test_the_classifier_converts_to_one_xnnpack_partition_with_its_stem_inside(tmp_path):
    import keras

    import edge_runtime
    from tflite_files import fp32_and_int8
    from train.architectures import classifier

    for int8, path in fp32_and_int8(classifier(keras, (28, 28, 1), 10), (28, 28, 1), tmp_path, "cls").items():
        delegation = edge_runtime.load(path, device="cpu").delegation
        # XNNPACK has no int8 softmax: it runs on the built-in kernel between the partition of everything
        # before it and the output's DEQUANTIZE (float output) after it
        assert delegation.outside == ((("SOFTMAX", 1),) if int8 else ()), str(delegation)
        assert delegation.partitions == (2 if int8 else 1), str(delegation)
        if int8:
            ops = _ops(path)
            assert ops[-2:] == ["SOFTMAX", "DEQUANTIZE"] and "TRANSPOSE" in ops, ops


def _ops(path) -> list[str]:
    """The op names of a .tflite file in execution order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return [op["op_name"] for op in interpreter._get_ops_details()]

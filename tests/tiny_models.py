"""Tiny models for tests, built in seconds: TFLite through TensorFlow, ONNX through onnx.helper."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _convert(model, path: Path, quant: str | None = None) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant:
        rng = np.random.default_rng(0)
        shapes = [tuple(1 if d is None else d for d in i.shape) for i in model.inputs]

        def representative():
            for _ in range(16):
                yield [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if quant == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif quant == "int16x8":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    path.write_bytes(converter.convert())
    return path


def build_all(folder: Path) -> dict[str, Path]:
    """conv (dynamic batch, float), conv_int8 (int8 in/out), conv_16x8, fixed (batch fixed at 1),
    two_inputs (named 'image' and 'gain')."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    keras = tf.keras
    inp = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax", name="probs")(x)
    conv = keras.Model(inp, out)

    fixed_in = keras.Input((6,), batch_size=1, name="features")
    fixed = keras.Model(fixed_in, keras.layers.Dense(2)(fixed_in))

    image = keras.Input((4, 4, 1), name="image")
    gain = keras.Input((1,), name="gain")
    pooled = keras.layers.Flatten()(image)
    scaled = keras.layers.Multiply()([keras.layers.Dense(3)(pooled), gain])
    two = keras.Model([image, gain], scaled)

    class FixedReshape(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
        def serve(self, x):
            return tf.reshape(x, [1, 6]) * 2.0

    module = FixedReshape()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    (folder / "fixed_reshape.tflite").write_bytes(converter.convert())

    return {
        "fixed_reshape": folder / "fixed_reshape.tflite",
        "conv": _convert(conv, folder / "conv.tflite"),
        "conv_int8": _convert(conv, folder / "conv_int8.tflite", "int8"),
        "conv_16x8": _convert(conv, folder / "conv_16x8.tflite", "int16x8"),
        "fixed": _convert(fixed, folder / "fixed.tflite"),
        "two_inputs": _convert(two, folder / "two_inputs.tflite"),
    }


def build_onnx(folder: Path) -> dict[str, Path]:
    """affine: y = x @ W + b with a symbolic batch, and metadata_props."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=(3,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"task": "regression", "labels": "a,b,c"})
    onnx.checker.check_model(model)
    path = folder / "affine.onnx"
    path.write_bytes(model.SerializeToString())
    np.save(folder / "affine_W.npy", w)
    np.save(folder / "affine_b.npy", b)
    return {"affine": path, "W": folder / "affine_W.npy", "b": folder / "affine_b.npy"}


def build_new_op_version(path: Path) -> Path:
    """A dynamic-range Dense model from the installed TensorFlow: its FULLY_CONNECTED op
    version (12 with TF 2.21) is newer than tflite-runtime 2.14 knows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    inp = tf.keras.Input((64,))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(32)(inp))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())
    return path


if __name__ == "__main__":  # python tests/tiny_models.py new-op-version OUT.tflite
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "new-op-version":
        sys.exit("usage: python tests/tiny_models.py new-op-version OUT.tflite")
    build_new_op_version(Path(sys.argv[2]))

"""Models for the benchmarks, built once into a cache: a CNN of ~160k parameters on 64x64x3
(about 0.5 ms per run on one core of this machine) as fp32 and int8 TFLite, and the same two as
ONNX through tf2onnx, plus a tiny MLP (~10k parameters)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _cnn(keras):
    inp = keras.Input((64, 64, 3), name="image")
    x = inp
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))


def _mlp(keras):
    inp = keras.Input((32,), name="features")
    x = keras.layers.Dense(128, activation="relu")(inp)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(4)(x))


def _tflite(tf, model, int8: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        shape = (1,) + tuple(model.inputs[0].shape[1:])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(0, 1, shape).astype(np.float32)] for _ in range(32))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def build(folder: Path) -> dict[str, Path]:
    """Build (or reuse) the benchmark models in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["cnn_fp32.tflite", "cnn_int8.tflite", "mlp_fp32.tflite", "cnn_fp32.onnx", "cnn_int8.onnx"]
    paths = {n: folder / n for n in names}
    if all(p.exists() for p in paths.values()):
        return paths
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf2onnx

    tf.keras.utils.set_random_seed(0)
    cnn, mlp = _cnn(tf.keras), _mlp(tf.keras)
    paths["cnn_fp32.tflite"].write_bytes(_tflite(tf, cnn, False))
    paths["cnn_int8.tflite"].write_bytes(_tflite(tf, cnn, True))
    paths["mlp_fp32.tflite"].write_bytes(_tflite(tf, mlp, False))
    for kind in ("fp32", "int8"):
        proto, _ = tf2onnx.convert.from_tflite(str(paths[f"cnn_{kind}.tflite"]), opset=17)
        paths[f"cnn_{kind}.onnx"].write_bytes(proto.SerializeToString())
    return paths

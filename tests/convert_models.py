"""Builds the small models the conversion tests convert, in a child process (the Keras flavour
must be chosen before TensorFlow is imported). Usage: python convert_models.py {keras3,tf_keras} OUT"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def _data(out: Path, rng) -> tuple[np.ndarray, np.ndarray]:
    """A learnable two-class image task: class 1 images have a brighter left half."""
    y = rng.integers(0, 2, 700).astype(np.int64)
    x = rng.uniform(0, 0.8, (700, 12, 12, 1)).astype(np.float32)
    x[:, :, :6] += 0.2 * y[:, None, None, None]
    np.savez(out / "calib.npz", x=x[:200], y=y[:200])
    np.savez(out / "eval.npz", x=x[500:], y=y[500:])
    np.save(out / "empty.npy", np.zeros((0, 12, 12, 1), np.float32))
    return x, y


def keras3(out: Path) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _data(out, rng)
    cnn = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                            keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    cnn.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    cnn.fit(x[:500], y[:500], epochs=5, batch_size=32, verbose=0)
    cnn.save(out / "cnn.keras")
    cnn.export(str(out / "cnn_savedmodel"), verbose=False)

    # one layer whose output range is huge (one unit x2000) so int8 loses the others; the head
    # ignores that unit, so keeping the layer in float restores the float model's answers
    inp = keras.Input((8,), name="features")
    wide = keras.layers.Dense(16, name="wide_range")
    head = keras.layers.Dense(4, activation="softmax", name="head")
    bad = keras.Model(inp, head(wide(inp)))
    w = rng.normal(size=(8, 16)).astype(np.float32)
    w[:, 0] *= 2000.0
    wide.set_weights([w, np.zeros(16, np.float32)])
    hw = rng.normal(size=(16, 4)).astype(np.float32)
    hw[0, :] = 0.0
    head.set_weights([hw, np.zeros(4, np.float32)])
    bad.save(out / "badlayer.keras")
    np.save(out / "features.npy", rng.normal(size=(200, 8)).astype(np.float32))

    seq = rng.normal(size=(64, 10, 4)).astype(np.float32)
    np.save(out / "seq.npy", seq)
    lstm = keras.Sequential([keras.Input((10, 4)), keras.layers.LSTM(8), keras.layers.Dense(2, activation="softmax")])
    lstm.save(out / "lstm.keras")
    inp = keras.Input((10, 4))
    h = keras.layers.Dense(16)(inp)
    h = keras.layers.LayerNormalization()(h + keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(h, h))
    attention = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling1D()(h)))
    attention.save(out / "attention.keras")

    class Unsupported(tf.Module):  # ops TFLite's builtins do not have
        @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32)])
        def serve(self, x):
            return {"y": tf.linalg.det(x)[:, None] + tf.math.bessel_i0(x[:, 0, :1])}

    module = Unsupported()
    tf.saved_model.save(module, str(out / "unsupported_savedmodel"), signatures={"serving_default": module.serve})

    class TwoOutputs(tf.Module):  # TFLite orders these outputs differently from the signature's keys
        def __init__(self):
            self.w = tf.Variable(rng.normal(size=(8, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
        def serve(self, x):
            return {"z_probs": tf.nn.softmax(x @ self.w), "a_sum": tf.reduce_sum(x, axis=1, keepdims=True)}

    module = TwoOutputs()
    tf.saved_model.save(module, str(out / "two_outputs_savedmodel"), signatures={"serving_default": module.serve})


def tf_keras(out: Path) -> None:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.save(out / "legacy.h5")


if __name__ == "__main__":
    flavour, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    if flavour == "tf_keras":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    {"keras3": keras3, "tf_keras": tf_keras}[flavour](folder)

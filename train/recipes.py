"""Keras recipes: small, reproducible models for the apps and the benchmarks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.metadata import ModelMetadata, Preprocess
from train.datasets import FASHION_MNIST_LABELS, load_fashion_mnist

# What fashion_mnist_cnn's models take, stored in every converted variant.
FASHION_MNIST_METADATA = ModelMetadata(
    task="classification", labels=FASHION_MNIST_LABELS, input_layout="NHWC",
    preprocess=Preprocess(kind="image", size=(28, 28), color="gray", scale=1 / 255),
)


@dataclass(frozen=True)
class TrainedModel:
    path: Path  # the saved .keras file
    test_top1: float  # percent, on the test split the recipe held out
    epochs: int
    train_samples: int


def fashion_mnist_cnn(out: str | Path, epochs: int = 3, train_limit: int | None = None, seed: int = 0,
                      calib_npz: str | Path | None = None, eval_npz: str | Path | None = None) -> TrainedModel:
    """A small CNN (~100k parameters) for Fashion-MNIST, trained from scratch with Keras 3.

    Inputs are 28x28x1 floats in [0, 1] (``pixels / 255``). Optionally writes calibration
    (2000 training images) and evaluation (the whole test split) sets as .npz files in the
    form ``edgepilot convert --calib/--eval`` reads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(seed)
    x_train, y_train = load_fashion_mnist("train", limit=train_limit)
    x_test, y_test = load_fashion_mnist("test")
    x_train = (x_train.astype(np.float32) / 255.0)[..., None]
    x_test = (x_test.astype(np.float32) / 255.0)[..., None]
    model = keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(len(FASHION_MNIST_LABELS), activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    if calib_npz:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(x_train), size=min(2000, len(x_train)), replace=False)
        np.savez(calib_npz, x=x_train[pick], y=y_train[pick])
    if eval_npz:
        np.savez(eval_npz, x=x_test, y=y_test)
    return TrainedModel(out, float(accuracy) * 100, epochs, len(x_train))

"""The one custom layer edgepilot's detectors use, :class:`GridDecode`, for Keras 3 and tf_keras.

Importing this module registers it, so ``keras.models.load_model("model.keras")`` of a trained
detector works after ``import train.layers``. The SavedModel a detector recipe writes needs no
Python code at all.
"""
from __future__ import annotations

import numpy as np


def grid_constants(rows: int, cols: int, reach_px: int, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(centers [1, rows*cols, 4] as cx, cy, cx, cy in fractions of the input, scale [4]):
    corners = centers + sigmoid(distances) * scale, where scale = reach * (-1, -1, 1, 1)."""
    h, w = input_size
    ys, xs = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    centers = np.stack([xs, ys, xs, ys], axis=-1).reshape(1, rows * cols, 4).astype(np.float32)
    scale = np.array([-reach_px / w, -reach_px / h, reach_px / w, reach_px / h], np.float32)
    return centers, scale


def _make(k, ops):
    class GridDecode(k.layers.Layer):
        """Box-edge distances [B, rows, cols, 4] (logits) -> corners [B, rows*cols, 4] as
        fractions of the input, clipped to [0, 1]: each cell predicts how far its box reaches
        left, up, right and down from the cell centre, up to ``reach_px`` pixels.

        The clip to [0, 1] is written as ``relu6(6 * corners) / 6``: TFLite fuses the ReLU6 into
        the ADD, so the ops are LOGISTIC, RESHAPE, MUL, ADD (ReLU6 fused) and MUL, all of which
        XNNPACK and the Edge TPU take in int8. A plain clip becomes MINIMUM and RELU, which
        XNNPACK does not take in int8 (they split its graph at the box output)."""

        def __init__(self, stride: int, rows: int, cols: int, reach_px: int, input_size, **kwargs):
            super().__init__(**kwargs)
            self.stride, self.rows, self.cols, self.reach_px = int(stride), int(rows), int(cols), int(reach_px)
            self.input_size = tuple(int(v) for v in input_size)
            centers, scale = grid_constants(self.rows, self.cols, self.reach_px, self.input_size)
            self._centers6, self._scale6 = 6 * centers, 6 * scale  # six times the corners, for the ReLU6

        def call(self, distances):
            d = ops.reshape(ops.sigmoid(distances), (-1, self.rows * self.cols, 4))
            corners6 = d * ops.convert_to_tensor(self._scale6) + ops.convert_to_tensor(self._centers6)
            relu6 = ops.relu6 if hasattr(ops, "relu6") else ops.nn.relu6  # keras.ops or tf (tf_keras)
            return relu6(corners6) * (1.0 / 6.0)  # = clip(corners, 0, 1)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.rows * self.cols, 4)

        def get_config(self):
            return {**super().get_config(), "stride": self.stride, "rows": self.rows, "cols": self.cols,
                    "reach_px": self.reach_px, "input_size": list(self.input_size)}

    return GridDecode


def _keras3():
    import keras

    cls = _make(keras, keras.ops)
    return keras.saving.register_keras_serializable(package="edgepilot", name="GridDecode")(cls)


def _tf_keras():
    import tensorflow as tf
    import tf_keras

    cls = _make(tf_keras, tf)
    cls.__name__ = "GridDecode"
    return tf_keras.utils.register_keras_serializable(package="edgepilot", name="GridDecode")(cls)


_CLASSES: dict[str, type] = {}


def grid_decode_class(k) -> type:
    """The GridDecode layer class for the Keras module ``k`` (keras or tf_keras), registered."""
    key = "tf_keras" if k.__name__.startswith("tf_keras") else "keras"
    if key not in _CLASSES:
        _CLASSES[key] = _tf_keras() if key == "tf_keras" else _keras3()
    return _CLASSES[key]


def decode_factory(k):
    """``decode_layer(stride, rows, cols, reach_px, input_size, name)`` for :func:`train.architectures.detector`."""
    cls = grid_decode_class(k)
    return lambda stride, rows, cols, reach, size, name: cls(stride, rows, cols, reach, size, name=name)


def register() -> None:
    """Register GridDecode with Keras 3 (what loading a detector's model.keras needs)."""
    import keras

    grid_decode_class(keras)

"""Keras models written as the fp32 and the full-int8 .tflite files `edgepilot convert --batch 1`
makes of them (random calibration images: enough to see which ops and delegates they get)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def fp32_and_int8(model, input_shape: tuple[int, ...], out: Path, name: str) -> dict[bool, Path]:
    """``{False: fp32 path, True: int8 path}`` of ``model`` at batch 1 (an open batch adds shape ops)."""
    import keras

    from convert.quiet import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(1)
    image = keras.Input(input_shape, batch_size=1)
    batch1 = keras.Model(image, model(image))
    paths = {}
    for int8 in (False, True):
        converter = tf.lite.TFLiteConverter.from_keras_model(batch1)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([rng.random((1, *input_shape), np.float32)] for _ in range(4))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        paths[int8] = out / f"{name}_{'int8' if int8 else 'fp32'}.tflite"
        paths[int8].write_bytes(converter.convert())
    return paths

"""Where int8 wins or loses against fp32 on this CPU (with or without an int8 dot product): single layers at the
Fashion-MNIST classifier's shapes, converted to fp32 and int8 TFLite and timed one thread apart
under LiteRT with XNNPACK (best of 2 medians of 3,000 invokes each).

    python -m bench.int8_layers

Prints the markdown table that the vision section of docs/benchmarks.md also measures."""
from __future__ import annotations

import os
import time

import numpy as np

LAYERS = {  # name -> (input shape, layer factory)
    "stem 3x3 conv, 1 -> 32 channels, 28x28": ((28, 28, 1), lambda k: k.layers.Conv2D(32, 3, padding="same")),
    "stem as 3x3 depthwise, multiplier 32, 28x28": ((28, 28, 1),
                                                    lambda k: k.layers.DepthwiseConv2D(3, depth_multiplier=32, padding="same")),
    "the recipe's stem: 3x3 conv after space-to-depth, 4 -> 32 channels, 14x14": (
        (14, 14, 4), lambda k: k.layers.Conv2D(32, 3, padding="same")),
    "3x3 conv, 8 -> 32 channels, 28x28": ((28, 28, 8), lambda k: k.layers.Conv2D(32, 3, padding="same")),
    "3x3 conv, 16 -> 32 channels, 28x28": ((28, 28, 16), lambda k: k.layers.Conv2D(32, 3, padding="same")),
    "1x1 conv, 32 -> 32, 28x28": ((28, 28, 32), lambda k: k.layers.Conv2D(32, 1)),
    "1x1 conv, 64 -> 64, 14x14": ((14, 14, 64), lambda k: k.layers.Conv2D(64, 1)),
    "1x1 conv, 128 -> 256, 7x7": ((7, 7, 128), lambda k: k.layers.Conv2D(256, 1)),
    "3x3 depthwise, 32 channels, 28x28": ((28, 28, 32), lambda k: k.layers.DepthwiseConv2D(3, padding="same")),
}


def _convert(tf, model, shape, int8: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random((1, *shape), np.float32)] for _ in range(20))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _median_us(content: bytes, invokes: int = 3000) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=1)
    it.allocate_tensors()
    spec = it.get_input_details()[0]
    it.set_tensor(spec["index"], np.zeros(spec["shape"], spec["dtype"]))
    for _ in range(300):
        it.invoke()
    times = []
    for _ in range(invokes):
        start = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def table() -> str:
    """The markdown table: each layer's fp32 and int8 time on this machine, one thread."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from convert.quiet import import_tensorflow, quiet_stderr

    tf = import_tensorflow()
    import keras

    rows = ["| layer | fp32 us | int8 us | int8 / fp32 |", "|---|---|---|---|"]
    for name, (shape, layer) in LAYERS.items():
        inputs = keras.Input(shape)
        model = keras.Model(inputs, keras.layers.ReLU(6.0)(layer(keras)(inputs)))
        with quiet_stderr():
            fp32, int8 = _convert(tf, model, shape, False), _convert(tf, model, shape, True)
        f = min(_median_us(fp32) for _ in range(2))
        q = min(_median_us(int8) for _ in range(2))
        rows.append(f"| {name} | {f:.1f} | {q:.1f} | {q / f:.2f} |")
    return "\n".join(rows)


def main() -> int:
    print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

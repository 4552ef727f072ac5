"""TFLite conversion of one SavedModel into one variant. Each function here runs in a child
process (see :mod:`convert.isolation`) and returns the flatbuffer bytes."""
from __future__ import annotations

import numpy as np

# variant -> what it is, for reports and --help
VARIANTS = {
    "fp32": "float32, as trained",
    "fp16": "float16 weights, float compute (half the size)",
    "dynamic": "int8 weights, float activations (dynamic-range quantization, no calibration)",
    "int8": "full integer: int8 weights and activations, integer I/O (needs calibration)",
    "int16x8": "int16 activations, int8 weights (needs calibration; runs on reference kernels)",
}
CALIBRATED = ("int8", "int16x8")


def _representative(calib_path: str, dtype: str, batch: int = 1):
    """Calibration samples in batches of the model's (fixed) batch size."""
    x = np.load(calib_path).astype(dtype)
    if len(x) < batch:
        raise ValueError(f"calibration needs at least one full batch of {batch} samples, got {len(x)}")

    def generate():
        for start in range(0, len(x) - batch + 1, batch):
            yield [x[start : start + batch]]

    return generate


def _converter(saved_model_dir: str, freeze: bool):
    """A converter for the SavedModel's serving signature. ``freeze`` turns variables into
    constants first: Keras 3 recurrent layers read their weights inside a While loop, which the
    converter otherwise keeps as resource variables that fail at run time."""
    import tensorflow as tf

    if not freeze:
        return tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(saved_model_dir)  # must stay alive while the signature is used
    frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"])
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen])


def convert_tflite(saved_model_dir: str, variant: str, calib_path: str | None = None, io_type: str = "int8",
                   denylist: tuple[str, ...] = (), input_dtype: str = "float32", freeze: bool = False,
                   batch: int = 1) -> bytes:
    """Convert ``saved_model_dir`` to ``variant``; ``denylist`` keeps those layers (output tensor
    names, as the quantization debugger reports them) in float for ``int8``."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; expected one of {list(VARIANTS)}")
    if variant in CALIBRATED and not calib_path:
        raise ValueError(f"the {variant} variant needs calibration data")
    # the quantization debugger runs the float model, which needs frozen weights; layer names
    # then match those layer_errors() reports
    converter = _converter(saved_model_dir, freeze or bool(denylist))
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calib_path, input_dtype, batch)
        io = {"int8": tf.int8, "uint8": tf.uint8}[io_type]
        converter.inference_input_type = io
        converter.inference_output_type = io
        if denylist:
            # Selective quantization: the listed layers stay float, so float kernels are allowed.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist), fully_quantize=True)
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=_representative(calib_path, input_dtype, batch), debug_options=options)
            return bytes(debugger.get_nondebug_quantized_model())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Streaming models keep state in resource variables (ASSIGN_VARIABLE); without this the
        # variables stay float with QUANTIZE/DEQUANTIZE around every read and write. Models
        # without mutable variables are unaffected (their weights are frozen to constants).
        converter._experimental_variable_quantization = True
    elif variant == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calib_path, input_dtype, batch)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return bytes(converter.convert())


def layer_errors(saved_model_dir: str, calib_path: str, input_dtype: str = "float32", batch: int = 1) -> list[dict]:
    """Per-layer quantization error of the int8 model, from TF's QuantizationDebugger: one row
    per quantized tensor with max_abs_error, rmse/scale and friends, worst (rmse/scale) first."""
    import io

    import tensorflow as tf

    converter = _converter(saved_model_dir, freeze=True)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(calib_path, input_dtype, batch)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_representative(calib_path, input_dtype, batch))
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    import csv

    rows = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        def num(key):
            try:
                return float(row.get(key, "nan"))
            except ValueError:
                return float("nan")

        scale = num("scale")
        mse = num("mean_squared_error")
        rows.append({
            "op": row.get("op_name", ""), "tensor": row.get("tensor_name", ""),
            "max_abs_error": num("max_abs_error"), "mean_error": num("mean_error"),
            "rmse": mse ** 0.5 if mse == mse else float("nan"),
            "rmse_over_scale": (mse ** 0.5 / scale) if scale and scale == scale and mse == mse else float("nan"),
            "scale": scale, "zero_point": num("zero_point"),
        })
    rows.sort(key=lambda r: -np.nan_to_num(r["rmse_over_scale"], nan=-1.0))  # rows without a figure last
    return rows

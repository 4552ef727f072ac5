"""ONNX variants: fp32 through tf2onnx (from the SavedModel, or from a .tflite), and int8 through
ONNX Runtime's static QDQ quantization, per-channel, calibrated on the same data as TFLite, in the
data types chosen with ``--onnx-int8`` (see ONNX_INT8_TYPES)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OPSET = 17  # tf2onnx 1.17 supports opsets up to 18; 17 is what current ONNX Runtime runs everywhere


def convert_onnx_fp32(source: str, kind: str, out_path: str, timeout_s: float = 900) -> None:
    """tf2onnx in its own process (it imports TensorFlow and can take a while)."""
    flag = "--tflite" if kind == "tflite" else "--saved-model"
    command = [sys.executable, "-m", "tf2onnx.convert", flag, source, "--output", out_path, "--opset", str(OPSET)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0 or not Path(out_path).exists():
        lines = [line for line in proc.stderr.splitlines() if "ERROR" in line or "Error" in line] or proc.stderr.splitlines()
        raise RuntimeError(f"tf2onnx failed (exit {proc.returncode}): " + " | ".join(lines[-6:])[:1500])


# ONNX Runtime's CPU kernels for int8 convolutions and matrix products are fastest with uint8
# activations and int8 weights (U8S8): x86's int8 instructions (AVX2's VPMADDUBSW, AVX-512 VNNI's
# VPDPBUSD) multiply an unsigned byte by a signed one. Signed activations (S8S8) take a slower
# path there: on this project's AVX2 host the Fashion-MNIST classifier ran at 2.0x its fp32 time
# in S8S8 and 0.92x in U8S8 (docs/benchmarks.md). On AVX2 without VNNI, VPMADDUBSW adds two
# products into a saturating int16, so U8S8 uses ``reduce_range``: weights in 7 bits, which
# cannot overflow it. S8S8 stays available for accelerators that take only symmetric signed
# int8 (TensorRT's execution provider).
ONNX_INT8_TYPES = {
    "u8s8": {"activation": "QUInt8", "weight": "QInt8", "reduce_range": True},
    "s8s8": {"activation": "QInt8", "weight": "QInt8", "reduce_range": False},
}


def quantize_onnx_int8(fp32_path: str, calib_path: str, out_path: str, types: str = "u8s8") -> None:
    """Static QDQ int8 with per-channel weights, calibrated with MinMax on ``calib_path`` (.npy);
    ``types`` is a key of :data:`ONNX_INT8_TYPES`."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if types not in ONNX_INT8_TYPES:
        raise ValueError(f"--onnx-int8 must be one of {', '.join(ONNX_INT8_TYPES)}, got {types!r}")
    chosen = ONNX_INT8_TYPES[types]
    model = onnx.load(fp32_path)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"ONNX int8 calibration supports single-input models; {fp32_path} has {len(inputs)}")
    name = inputs[0].name
    first_dim = inputs[0].type.tensor_type.shape.dim[0].dim_value if inputs[0].type.tensor_type.shape.dim else 0
    batch = first_dim if first_dim > 0 else 1  # a fixed batch takes samples in batches of that size
    x = np.load(calib_path).astype(np.float32)
    batches = [x[i : i + batch] for i in range(0, len(x) - batch + 1, batch)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(batches)

        def get_next(self):
            chunk = next(self._batches, None)
            return None if chunk is None else {name: chunk}

    with tempfile.TemporaryDirectory() as folder:
        prepared = os.path.join(folder, "prepared.onnx")
        try:
            quant_pre_process(fp32_path, prepared, skip_symbolic_shape=False)
        except Exception:  # symbolic shape inference fails on some graphs; plain shape inference then
            quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=getattr(QuantType, chosen["activation"]),
                        weight_type=getattr(QuantType, chosen["weight"]), reduce_range=chosen["reduce_range"])

"""Measuring a produced variant through edge_runtime: accuracy against labels and agreement
with the float model, latency, and the traps the numbers reveal."""
from __future__ import annotations

import os

import numpy as np

import edge_runtime
from edge_runtime.bench import benchmark

AGREEMENT_TOLERANCE = 0.01  # non-class outputs agree when within 1% of the float output's range


def predict(path: str, x: np.ndarray, output_key: str | None = None, batch: int = 64) -> np.ndarray:
    """The output ``output_key`` (a signature key of the float model; None: the first output)
    of ``path`` on every sample of ``x``, batched when the model allows."""
    model = edge_runtime.load(path, device="cpu")
    position = 0
    if output_key is not None and len(model.outputs) > 1:
        position = [s.name for s in model.outputs].index(model.output_name(output_key))
    spec = model.inputs[0]
    step = batch if not isinstance(spec.shape[0], int) or spec.shape[0] < 0 else spec.shape[0]
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if len(chunk) < step and spec.shape[0] == step:  # fixed batch: pad the last chunk
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
        outputs.append(model.run(chunk).ordered[position][: min(step, len(x) - start)])
    return np.concatenate(outputs).astype(np.float32)


def is_classifier(reference: np.ndarray) -> bool:
    return reference.ndim == 2 and reference.shape[1] > 1


def compare(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> dict:
    """top1 (with labels), agreement with the float model, max / mean abs difference."""
    if outputs.shape != reference.shape:
        raise ValueError(f"variant output shape {outputs.shape} differs from the float model's {reference.shape}")
    diff = np.abs(outputs.astype(np.float64) - reference)
    result = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if is_classifier(reference):
        predicted = outputs.argmax(axis=1)
        result["agreement"] = float((predicted == reference.argmax(axis=1)).mean() * 100)
        if labels is not None:
            result["top1"] = float((predicted == labels).mean() * 100)
    else:
        span = float(reference.max() - reference.min()) or 1.0
        per_sample = diff.reshape(len(diff), -1).max(axis=1) <= AGREEMENT_TOLERANCE * span
        result["agreement"] = float(per_sample.mean() * 100)
    return result


def latency(path: str, runs: int) -> dict:
    result = benchmark(path, device="cpu", threads=1, runs=runs, warmup=min(20, runs))
    return {"p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "accelerator": result.accelerator,
            "delegated": result.delegated, "outside": result.outside}


def float_ops(path: str) -> int:
    """How many DEQUANTIZE ops a TFLite model has: each marks a tensor that falls back to float."""
    if not path.endswith(".tflite"):
        return 0
    return edge_runtime.load(path, device="cpu").op_histogram().get("DEQUANTIZE", 0)


# ops that computing shapes at run time adds (an open batch dimension); fixing the batch removes them
SHAPE_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "GATHER", "FILL", "BROADCAST_TO", "BROADCAST_ARGS"})


def traps(target: str, measured: dict[str, dict], sizes: dict[str, int]) -> tuple[str, ...]:
    """Warnings the measurements support for ``target``, compared with its fp32 sibling."""
    found = []
    me = measured[target]
    sibling = "onnx_fp32" if target.startswith("onnx") else "tflite_fp32"
    fp32 = measured.get(sibling)
    delegated = me.get("delegated") or ""
    if delegated and delegated.startswith("0/"):
        slower = f", {me['p50_ms'] / fp32['p50_ms']:.0f}x slower than fp32" if fp32 and fp32.get("p50_ms") else ""
        found.append(f"XNNPACK took none of its nodes ({delegated}): it runs on reference kernels{slower}")
    elif delegated and delegated.split("/")[0] != delegated.split("/")[-1]:
        taken, total = (int(n) for n in delegated.split("/"))
        outside = me.get("outside") or ""
        ops = {item.split(" x")[0] for item in outside.split(", ") if item}
        hint = " (shape ops of an open batch dimension: try --batch 1)" if ops & SHAPE_OPS else ""
        found.append(f"{total - taken} of {total} nodes run outside XNNPACK, on the built-in kernels"
                     + (f": {outside}" if outside else "") + hint)
    if (not delegated.startswith("0/") and not target.endswith("_fp32") and fp32 and fp32.get("p50_ms")
            and me.get("p50_ms") and me["p50_ms"] > 1.1 * fp32["p50_ms"]):
        found.append(f"slower than {sibling}: {me['p50_ms'] / fp32['p50_ms']:.2f}x its p50 latency on this machine")
    if me.get("float_ops") and target in ("tflite_int8", "edgetpu"):  # integer I/O: no DEQUANTIZE expected
        found.append(f"{me['float_ops']} DEQUANTIZE op(s): part of the graph falls back to float")
    if target.endswith("_fp32") and (me.get("max_abs_diff") or 0) > 1e-3:
        found.append(f"fp32 differs from the float model by up to {me['max_abs_diff']:.3g}: the conversion changed "
                     "the computation, check the model's custom layers")
    base = sizes.get("tflite_fp32") or sizes.get("onnx_fp32")
    if target not in ("tflite_fp32", "onnx_fp32") and base and sizes.get(target, 0) >= base:
        found.append(f"not smaller than fp32 ({sizes[target] / 1024:.1f} KiB vs {base / 1024:.1f} KiB)")
    return tuple(found)


def file_size(path: str) -> int:
    return os.path.getsize(path)

"""Overhead of ``Model.run`` over the raw interpreter's set_tensor / invoke / get_tensor on the
same model. The two are interleaved call by call so that machine noise hits both alike."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import edge_runtime


@dataclass(frozen=True)
class Overhead:
    model: str
    raw_p50_us: float
    ours_p50_us: float
    calls: int

    @property
    def extra_us(self) -> float:
        return self.ours_p50_us - self.raw_p50_us

    @property
    def ratio(self) -> float:
        return self.ours_p50_us / self.raw_p50_us


def measure(path: str, calls: int = 3000, threads: int = 1, float_io: bool = False) -> Overhead:
    """Interleave ``Model.run`` and the bare interpreter ``calls`` times. For quantized models,
    ``float_io=False`` compares ``run(raw=True)`` with set/invoke/get (pure overhead);
    ``float_io=True`` compares float in / float out with a bare interpreter plus the usual
    hand-written numpy quantize / dequantize lines."""
    from ai_edge_litert.interpreter import Interpreter

    model = edge_runtime.load(path, device="cpu", threads=threads)
    raw = Interpreter(model_path=str(path), num_threads=threads)
    raw.allocate_tensors()
    rng = np.random.default_rng(0)
    spec = model.inputs[0]
    shape = tuple(max(d, 1) for d in spec.shape)
    x = rng.uniform(0, 1, shape).astype(np.float32 if not np.issubdtype(spec.dtype, np.integer) else spec.dtype)
    in_index = raw.get_input_details()[0]["index"]
    out_index = raw.get_output_details()[0]["index"]
    in_detail, out_detail = raw.get_input_details()[0], raw.get_output_details()[0]
    raw_input = x.astype(in_detail["dtype"])
    quantized = spec.quantized
    if quantized:
        x = spec.quantization.dequantize(raw_input)
    (in_scale, in_zero), (out_scale, out_zero) = in_detail["quantization"], out_detail["quantization"]
    info = np.iinfo(in_detail["dtype"]) if quantized else None

    def raw_call():
        if quantized and float_io:  # what a user of the bare interpreter writes by hand
            q = np.clip(np.round(x / in_scale) + in_zero, info.min, info.max).astype(in_detail["dtype"])
            raw.set_tensor(in_index, q)
            raw.invoke()
            return (raw.get_tensor(out_index).astype(np.float32) - out_zero) * out_scale
        raw.set_tensor(in_index, raw_input)
        raw.invoke()
        return raw.get_tensor(out_index)

    use_raw = quantized and not float_io

    def ours_call():
        return model.run(raw_input if use_raw else x, raw=use_raw)

    for _ in range(100):
        raw_call(), ours_call()
    raw_t, ours_t = np.empty(calls), np.empty(calls)
    clock = time.perf_counter
    for i in range(calls):
        if i % 2:  # alternate which goes first
            t0 = clock(); raw_call(); t1 = clock(); ours_call(); t2 = clock()
            raw_t[i], ours_t[i] = t1 - t0, t2 - t1
        else:
            t0 = clock(); ours_call(); t1 = clock(); raw_call(); t2 = clock()
            ours_t[i], raw_t[i] = t1 - t0, t2 - t1
    return Overhead(str(path), float(np.median(raw_t) * 1e6), float(np.median(ours_t) * 1e6), calls)

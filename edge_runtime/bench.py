"""Benchmarks with one schema for every backend: load time, first inference, warm-up, then
latency percentiles over N timed runs, throughput and peak memory (like TFLite's
``benchmark_model``, for .tflite and .onnx alike)."""
from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from edge_runtime.loader import load
from edge_runtime.model import Model
from edge_runtime.tensors import TensorSpec


@dataclass(frozen=True)
class BenchResult:
    """One model on one device / thread count. Times in milliseconds, memory in MiB."""

    model: str
    format: str
    runtime: str
    accelerator: str
    threads: int
    runs: int
    load_ms: float
    first_ms: float
    warmup_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    std_ms: float
    throughput_per_s: float
    peak_rss_mib: float
    delegated: str = ""
    outside: str = ""  # ops the delegate left on the built-in kernels, e.g. "MINIMUM x3, TILE x4"

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def parse_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``["input=1x576", "state=2x1x128"]`` -> ``{"input": (1, 576), ...}``."""
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise ValueError(f"shape {item!r}: expected NAME=D1xD2x..., e.g. input=1x576") from None
    return shapes


def example_inputs(model: Model, seed: int = 0, shapes: dict[str, tuple] | None = None) -> list[np.ndarray]:
    """Random inputs of the right shape and type. Open dimensions become 1 unless ``shapes``
    names the input's full shape. Only inputs with open dimensions take a shape from ``shapes``,
    so one set of shapes can serve several models."""
    shapes = dict(shapes or {})
    rng = np.random.default_rng(seed)
    return [_example(spec, rng, None if spec.fixed_shape else shapes.get(spec.name)) for spec in model.inputs]


def _example(spec: TensorSpec, rng, shape: tuple | None = None) -> np.ndarray:
    if shape is None:
        shape = tuple(d if isinstance(d, int) and d >= 0 else 1 for d in spec.shape)
    if spec.quantized:
        return rng.uniform(-1, 1, shape).astype(np.float32)
    if np.issubdtype(spec.dtype, np.floating):
        return rng.uniform(-1, 1, shape).astype(spec.dtype)
    if spec.dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if spec.name == "sr":  # sample-rate inputs of audio models (e.g. Silero VAD)
        return np.full(shape, 16000, dtype=spec.dtype)
    return rng.integers(0, 2, shape).astype(spec.dtype)


def _reset_peak_rss() -> None:
    """Linux lets a process reset its own peak RSS, so each benchmark reports its own."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def benchmark(path: str, device: str = "auto", threads: int | None = None, runs: int = 100,
              warmup: int = 10, progress=None, shapes: dict[str, tuple] | None = None,
              **load_options) -> BenchResult:
    """Benchmark one model. ``progress(done, total)`` is called as runs complete."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    gc.collect()
    _reset_peak_rss()
    start = time.perf_counter()
    model = load(path, device=device, threads=threads, **load_options)
    load_ms = (time.perf_counter() - start) * 1e3
    inputs = example_inputs(model, shapes=shapes)
    start = time.perf_counter()
    model.run(*inputs)
    first_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    for _ in range(warmup):
        model.run(*inputs)
    warmup_ms = (time.perf_counter() - start) * 1e3
    times = np.empty(runs)
    clock = time.perf_counter
    for i in range(runs):
        t0 = clock()
        model.run(*inputs)
        times[i] = clock() - t0
        if progress is not None and (i % 10 == 9 or i == runs - 1):
            progress(i + 1, runs)
    ms = times * 1e3
    delegation = model.delegation
    return BenchResult(
        model=path, format=model.format, runtime=model.runtime, accelerator=model.accelerator,
        threads=model.threads, runs=runs, load_ms=load_ms, first_ms=first_ms, warmup_ms=warmup_ms,
        min_ms=float(ms.min()), p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)), max_ms=float(ms.max()), mean_ms=float(ms.mean()),
        std_ms=float(ms.std()), throughput_per_s=float(1e3 / ms.mean()), peak_rss_mib=_peak_rss_mib(),
        delegated=f"{delegation.nodes}/{delegation.total}" if delegation else "",
        outside=delegation.outside_text if delegation else "",
    )


COLUMNS = (
    ("model", "model"), ("accelerator", "accelerator"), ("delegated", "delegated"), ("load_ms", "load ms"),
    ("first_ms", "first ms"), ("min_ms", "min ms"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
    ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("std_ms", "std ms"), ("throughput_per_s", "runs/s"),
    ("peak_rss_mib", "process peak RSS MiB"),
)


def table(results: list[BenchResult], markdown: bool = True) -> str:
    """Side-by-side table, one row per result; the p50 ratio to the first row is added."""
    import os

    header = [title for _, title in COLUMNS] + ["p50 vs row 1"]
    rows = []
    base = results[0].p50_ms if results else 1.0
    for r in results:
        row = []
        for key, _ in COLUMNS:
            value = getattr(r, key)
            if key == "model":
                value = os.path.basename(value)
            row.append(f"{value:.3f}" if isinstance(value, float) and value < 10 else
                       f"{value:.1f}" if isinstance(value, float) else str(value))
        row.append(f"{r.p50_ms / base:.2f}x")
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*row) for row in rows])

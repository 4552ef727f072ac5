"""What the benchmarks ran on: the CPU's model and the SIMD extensions that decide int8 speed.

XNNPACK's int8 kernels beat its fp32 ones where the CPU has a dot-product instruction for int8
(x86 VNNI, Arm's SDOT); without one, fp32 can win at small layer sizes. Every section names them."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

# /proc/cpuinfo flag -> the name people know it by, in the order a reader compares them
SIMD_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
              "amx_int8": "AMX-INT8", "asimddp": "Arm dot product"}
DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")  # the int8 dot products among them


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or platform.machine(), frozenset()
    model, flags = "", set()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model or platform.machine(), frozenset(flags)


def simd() -> list[str]:
    """The int8-relevant SIMD extensions this CPU reports, by their usual names."""
    _, flags = _cpuinfo()
    return [name for flag, name in SIMD_FLAGS.items() if flag in flags]


def int8_dot_products() -> list[str]:
    """The int8 dot-product instructions this CPU reports (empty without one)."""
    _, flags = _cpuinfo()
    return [SIMD_FLAGS[flag] for flag in DOT_PRODUCT_FLAGS if flag in flags]


def cpu_description() -> str:
    """E.g. ``AMD EPYC (AVX2, AVX-512, AVX-512 VNNI)``."""
    model, _ = _cpuinfo()
    extensions = simd()
    return f"{model} ({', '.join(extensions)})" if extensions else model

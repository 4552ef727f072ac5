"""What the benchmarks ran on: the CPU's model and the SIMD extensions that decide int8 speed.

XNNPACK's int8 kernels beat its fp32 ones where the CPU has a dot-product instruction for int8
(x86 VNNI, Arm's SDOT); without one, fp32 can win at small layer sizes. Every section names them."""
from __future__ import annotations

import platform
from pathlib import Path

# /proc/cpuinfo flag -> the name people know it by, in the order a reader compares them
SIMD_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
              "amx_int8": "AMX-INT8", "asimddp": "Arm dot product"}


def _cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or platform.machine(), set()
    model, flags = "", set()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model or platform.machine(), flags


def simd() -> list[str]:
    """The int8-relevant SIMD extensions this CPU reports, by their usual names."""
    _, flags = _cpuinfo()
    return [name for flag, name in SIMD_FLAGS.items() if flag in flags]


def has_int8_dot_product() -> bool:
    return any(name in simd() for name in ("AVX-512 VNNI", "AVX-VNNI", "AMX-INT8", "Arm dot product"))


def cpu_description() -> str:
    """E.g. ``AMD EPYC (AVX2, AVX-512, AVX-512 VNNI)``."""
    model, _ = _cpuinfo()
    extensions = simd()
    return f"{model} ({', '.join(extensions)})" if extensions else model

"""LiteRT's own GPU accelerator (``CompiledModel`` with ``HardwareAccelerator.GPU``).

It needs a Vulkan / WebGPU / OpenCL adapter and raises when none exists; it never falls back
to the CPU by itself, and neither does this backend."""
from __future__ import annotations

import numpy as np

from edge_runtime import deps
from edge_runtime.devices import Device
from edge_runtime.errors import DeviceError


class LiteRtGpuBackend:
    format = "tflite"
    runtime = "ai_edge_litert"
    delegation = None

    def __init__(self, path: str, content: bytes, device: Device, cpu_specs):
        """``cpu_specs`` is a CPU backend of the same model: its tensor specs carry the
        quantization parameters that CompiledModel does not report."""
        deps.require("ai_edge_litert", "LiteRT's GPU accelerator")
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        self.path, self.device, self.threads = path, device, 1
        try:
            self._model = CompiledModel.from_buffer(content, hardware_accel=HardwareAccelerator.GPU)
        except (RuntimeError, ValueError, OSError) as exc:
            first = " ".join(str(exc).split())[:300]
            raise DeviceError(f"LiteRT GPU accelerator did not start for {path}: {first} (no GPU adapter?)") from exc
        if not self._model.is_fully_accelerated():
            raise DeviceError(f"LiteRT GPU accelerator took only part of {path}; run it on 'cpu' or use a GPU delegate")
        self.inputs, self.outputs = cpu_specs.inputs, cpu_specs.outputs
        self._in = self._model.create_input_buffers(0)
        self._out = self._model.create_output_buffers(0)

    accelerator = "gpu/litert accelerator"

    def op_histogram(self):
        return {}

    def signature_outputs(self) -> dict[str, str]:
        return {}

    def ensure_shapes(self, shapes) -> None:
        for spec, shape in zip(self.inputs, shapes):
            if tuple(shape) != tuple(abs(d) for d in spec.shape):
                raise DeviceError(f"LiteRT GPU accelerator runs {self.path} at its compiled shapes only")

    def run(self, arrays):
        for buffer, array in zip(self._in, arrays):
            buffer.write(np.ascontiguousarray(array))
        self._model.run_by_index(0, self._in, self._out)
        return [
            buffer.read(int(np.prod(spec.shape)), spec.dtype).reshape([abs(d) for d in spec.shape])
            for buffer, spec in zip(self._out, self.outputs)
        ]

    def reset(self) -> None:
        """GPU-compiled models here are stateless."""

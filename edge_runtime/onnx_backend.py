"""Running .onnx models with ONNX Runtime, on CPU or on a GPU execution provider.

ONNX Runtime falls back to CPU silently when a provider cannot start: the providers the session
really got are checked after it is made."""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter

import numpy as np

from edge_runtime import deps
from edge_runtime.devices import Device
from edge_runtime.errors import DeviceError, InferenceError, ModelFileError
from edge_runtime.tensors import TensorSpec

# GPU providers, most preferred first.
GPU_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
)
CPU_PROVIDER = "CPUExecutionProvider"

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


def _spec(arg, index: int) -> TensorSpec:
    if arg.type not in _ORT_TYPES:
        raise ModelFileError(f"tensor '{arg.name}' has type {arg.type}, which edge_runtime does not handle")
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
    return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES[arg.type]), None, index)


def available_providers() -> list[str]:
    ort = deps.require("onnxruntime", "running .onnx models")
    return list(ort.get_available_providers())


class ONNXBackend:
    """One ONNX Runtime inference session on exactly one execution provider (+ CPU for the
    nodes that provider does not take)."""

    format = "onnx"
    runtime = "onnxruntime"

    def __init__(self, path: str, content: bytes, device: Device, threads: int | None, provider: str | None = None,
                 provider_options: dict | None = None):
        ort = deps.require("onnxruntime", "running .onnx models")
        self.path, self.device, self.threads = path, device, threads or 1
        self.provider = provider or CPU_PROVIDER
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = [(self.provider, provider_options or {})]
        if self.provider != CPU_PROVIDER:
            providers.append((CPU_PROVIDER, {}))
        self._content, self._options = content, options
        try:
            self._session = ort.InferenceSession(content, sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            if self.provider != CPU_PROVIDER and _provider_failure(exc):
                raise DeviceError(f"{path}: {self.provider} failed to start: {exc}") from exc
            raise ModelFileError(
                f"{path}: onnxruntime could not load the model: {type(exc).__name__}: {str(exc)[:500]}. "
                "The file may be truncated or corrupted, use an op or opset this onnxruntime does not "
                "support (pip install -U onnxruntime), or not be an ONNX model"
            ) from exc
        got = self._session.get_providers()
        if got[0] != self.provider:
            raise DeviceError(
                f"device '{device}': asked onnxruntime for {self.provider} but the session runs on {got}; "
                "the provider is installed but could not start (no device or driver?)"
            )
        self.inputs = tuple(_spec(a, i) for i, a in enumerate(self._session.get_inputs()))
        self.outputs = tuple(_spec(a, i) for i, a in enumerate(self._session.get_outputs()))
        self._in_names = [s.name for s in self.inputs]
        self._out_names = [s.name for s in self.outputs]
        self.delegation = None

    def signature_outputs(self) -> dict[str, str]:
        """ONNX outputs are named by their keys already (tf2onnx keeps the signature's names)."""
        return {name: name for name in self._out_names}

    @property
    def accelerator(self) -> str:
        text = f"onnxruntime/{self.provider}"
        if self.provider == CPU_PROVIDER:
            text += f" x{self.threads} threads"
        return text

    def ensure_shapes(self, shapes: list[tuple]) -> None:
        """ONNX Runtime takes any shape the graph allows on every call."""

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(self._out_names, dict(zip(self._in_names, arrays)))
        except Exception as exc:  # ORT's own exception types (InvalidArgument, Fail, ...)
            shapes = {n: list(a.shape) for n, a in zip(self._in_names, arrays)}
            raise InferenceError(f"{self.path}: onnxruntime rejected the inputs {shapes}: {str(exc)[-400:]}") from exc

    def reset(self) -> None:
        """ONNX models carry state through explicit inputs and outputs; nothing to reset."""

    def node_placement(self, sample: list[np.ndarray]) -> Counter:
        """Provider -> number of nodes, read from one profiled run (ONNX Runtime decides the
        placement when the session is made and reports it only in its profile). The nodes are
        those that run, after ONNX Runtime's graph fusions."""
        ort = deps.require("onnxruntime", "profiling an ONNX model")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads
        with tempfile.TemporaryDirectory() as folder:
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(folder, "profile")
            providers = [self.provider] + ([CPU_PROVIDER] if self.provider != CPU_PROVIDER else [])
            session = ort.InferenceSession(self._content, sess_options=options, providers=providers)
            try:
                session.run(self._out_names, dict(zip(self._in_names, sample)))
            except Exception as exc:  # ORT's own exception types
                raise InferenceError(f"{self.path}: profiling run failed: {str(exc)[-300:]}") from exc
            with open(session.end_profiling()) as handle:
                events = json.load(handle)
        placement: dict[str, str] = {}
        for event in events:
            args = event.get("args", {})
            if event.get("cat") == "Node" and "provider" in args:
                placement[event["name"].rsplit("_kernel_time", 1)[0]] = args["provider"]
        return Counter(placement.values())

    def op_histogram(self) -> Counter:
        if not deps.is_available("onnx"):
            return Counter()
        import onnx

        model = onnx.load_model_from_string(self._content)
        counts: Counter = Counter()
        graphs = [model.graph]
        while graphs:  # the main graph and the subgraphs of If / Loop / Scan nodes
            graph = graphs.pop()
            for node in graph.node:
                counts[node.op_type] += 1
                for attribute in node.attribute:
                    graphs.extend([attribute.g] if attribute.HasField("g") else list(attribute.graphs))
        return counts


def _provider_failure(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("cuda", "tensorrt", "provider", "openvino", "coreml", "dml"))

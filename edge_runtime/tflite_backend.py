"""Running .tflite models: interpreter choice, delegates (XNNPACK, GPU, Edge TPU), and the
set/invoke/get loop. Everything here is specific to TFLite; :mod:`edge_runtime.model` holds the
format-independent parts."""
from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge_runtime import deps
from edge_runtime.devices import Device
from edge_runtime.errors import DeviceError, InferenceError, InputError, MissingDependencyError, ModelFileError
from edge_runtime.tensors import Quantization, TensorSpec
from edge_runtime.tflite_file import TFLiteFileInfo

GPU_DELEGATE_ENV = "EDGEPILOT_GPU_DELEGATE"
# Interpreter releases whose built-in kernel for an op is far slower than the releases on either
# side, measured on x86_64 (docs/speech.md, "microWakeWord models"). ai-edge-litert 2.2 and 2.3 run
# STRIDED_SLICE through a reference kernel that calls a std::function per element (perf: 58% of a
# microWakeWord step); 2.0, 2.1 and the 2.4 nightlies do not. pyproject.toml excludes them; this
# table tells a user whose device has one installed anyway.
SLOW_BUILTIN_KERNELS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ai_edge_litert", "2.2."): ("STRIDED_SLICE",),
    ("ai_edge_litert", "2.3."): ("STRIDED_SLICE",),
}


def slow_kernel_warnings(runtime: str, version: str, on_builtin: dict[str, int]) -> tuple[str, ...]:
    """One warning per op of ``on_builtin`` (op -> nodes left on the built-in kernels) that
    ``runtime`` ``version`` is known to run slowly."""
    found = []
    for (module, prefix), ops in SLOW_BUILTIN_KERNELS.items():
        if runtime != module or not version.startswith(prefix):
            continue
        for op in ops:
            if on_builtin.get(op):
                found.append(f"{module.replace('_', '-')} {version} runs {op} ({on_builtin[op]} node(s) here, outside "
                             f"any delegate) on a kernel about 2x slower per microWakeWord step than other releases; "
                             f"pip install 'ai-edge-litert>=2.0,!=2.2.*,!=2.3.*'")
    return tuple(found)


EDGETPU_LIBRARY = {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"}
EDGETPU_INSTALL = (
    "install the Edge TPU runtime (libedgetpu1-std from Coral's apt repository, see "
    "coral.ai/docs/accelerator/get-started) and attach the device"
)


@dataclass(frozen=True)
class Delegation:
    """How much of the graph a delegate took: ``nodes`` of ``total`` original nodes, in
    ``partitions`` delegate kernels."""

    delegate: str
    nodes: int
    total: int
    partitions: int
    outside: tuple[tuple[str, int], ...] = ()  # (op name, count) of the nodes the delegate left

    @property
    def full(self) -> bool:
        return self.nodes == self.total

    @property
    def outside_text(self) -> str:
        """The ops left outside, e.g. ``"MINIMUM x3, TILE x4"`` ("" when the delegate took all)."""
        return ", ".join(f"{op} x{n}" for op, n in self.outside)

    def __str__(self) -> str:
        text = f"{self.delegate} took {self.nodes}/{self.total} nodes in {self.partitions} partition(s)"
        if self.outside:
            text += "; on the built-in kernels: " + self.outside_text
        return text


def _interpreter_module(preferred: str | None):
    """(module name, Interpreter class, load_delegate) for the best installed TFLite runtime."""
    candidates = [preferred] if preferred else deps.tflite_interpreters()
    if not candidates:
        raise MissingDependencyError(
            "running .tflite models needs a TFLite interpreter and none is installed. "
            "Install it with: pip install ai-edge-litert  (on numpy<2 devices: pip install tflite-runtime)"
        )
    name = candidates[0]
    if name == "ai_edge_litert":
        from ai_edge_litert import interpreter as module
    elif name == "tflite_runtime":
        from tflite_runtime import interpreter as module  # type: ignore[no-redef]
    elif name == "tensorflow":
        import tensorflow as tf

        return name, tf.lite.Interpreter, tf.lite.experimental.load_delegate
    else:
        raise MissingDependencyError(f"unknown TFLite interpreter package {name!r}; expected one of {deps.TFLITE_MODULES}")
    return name, module.Interpreter, module.load_delegate


def _without_default_delegates(runtime: str):
    """The op-resolver value that builds an interpreter with the built-in kernels only (no
    default XNNPACK delegate), or a clear error for an interpreter that cannot."""
    if runtime == "tensorflow":
        import tensorflow as tf

        resolver = getattr(getattr(tf.lite, "experimental", None), "OpResolverType", None)
    elif runtime == "tflite_runtime":
        from tflite_runtime import interpreter as module

        resolver = getattr(module, "OpResolverType", None)
    else:
        from ai_edge_litert import interpreter as module

        resolver = getattr(module, "OpResolverType", None)
    value = getattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
    if value is None:
        raise MissingDependencyError(
            f"xnnpack=False needs an interpreter that can leave out its default delegates "
            f"(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES); {runtime_label(runtime)} cannot. "
            "Upgrade it: pip install -U ai-edge-litert"
        )
    return value


def _check_library(library: str, what: str) -> None:
    """Open the library ourselves first: a missing one or one that is not a delegate is then a
    clear DeviceError, without the runtime's half-built Delegate object (whose __del__ prints a
    traceback)."""
    import ctypes

    try:
        handle = ctypes.CDLL(library)
    except OSError as exc:
        raise DeviceError(f"{what}: could not load delegate library {library!r}: {exc}") from exc
    if not hasattr(handle, "tflite_plugin_create_delegate"):
        raise DeviceError(f"{what}: could not load delegate library {library!r}: it is a shared library but not a "
                          "TFLite delegate (no tflite_plugin_create_delegate symbol)")


def _load_delegate(load_delegate, library: str, options: dict | None, what: str):
    """Load a delegate library. A missing library raises OSError, an older runtime ValueError,
    a library that is not a delegate AttributeError: all three become one DeviceError."""
    _check_library(library, what)
    try:
        return load_delegate(library, options or {})
    except (OSError, ValueError, AttributeError, RuntimeError) as exc:
        raise DeviceError(f"{what}: could not load delegate library {library!r}: {type(exc).__name__}: {exc}") from exc


def _quantization(detail: dict) -> Quantization | None:
    params = detail.get("quantization_parameters") or {}
    scales = tuple(float(s) for s in np.ravel(params.get("scales", [])))
    zeros = tuple(int(z) for z in np.ravel(params.get("zero_points", [])))
    if not scales:
        scale, zero = detail.get("quantization", (0.0, 0))
        if not scale:
            return None
        scales, zeros = (float(scale),), (int(zero),)
    if len(zeros) < len(scales):
        zeros = zeros + (0,) * (len(scales) - len(zeros))
    return Quantization(scales, zeros, int(params.get("quantized_dimension", 0)))


def _spec(detail: dict) -> TensorSpec:
    signature = detail.get("shape_signature")
    shape = tuple(int(d) for d in (signature if signature is not None and len(signature) else detail["shape"]))
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), _quantization(detail), int(detail["index"]))


class TFLiteBackend:
    """One TFLite interpreter with at most one delegate applied. ``xnnpack=False`` builds it
    without LiteRT's default XNNPACK delegate (built-in kernels, bit-exact with the reference)."""

    format = "tflite"

    def __init__(self, path: str, content: bytes, info: TFLiteFileInfo, device: Device, threads: int | None,
                 interpreter: str | None = None, gpu_delegate: str | None = None, delegate_options: dict | None = None,
                 xnnpack: bool = True):
        self.path, self.info, self.device = path, info, device
        self.xnnpack = xnnpack
        self.threads = threads or 1
        self._delegate_args = (gpu_delegate, delegate_options)
        self.runtime, interpreter_cls, load_delegate = _interpreter_module(interpreter)
        self._content = content
        delegates, self._delegate_name = [], None
        if device.kind == "edgetpu":
            options = dict(delegate_options or {})
            if device.detail:
                options.setdefault("device", device.detail)
            library = EDGETPU_LIBRARY.get(sys.platform, EDGETPU_LIBRARY["linux"])
            try:
                delegates.append(_load_delegate(load_delegate, library, options, f"device '{device}'"))
            except DeviceError as exc:
                raise DeviceError(f"{exc}. To use the Edge TPU, {EDGETPU_INSTALL}.") from exc
            self._delegate_name = "edgetpu"
        elif device.kind == "gpu":
            library = device.detail or gpu_delegate or os.environ.get(GPU_DELEGATE_ENV, "")
            if not library:
                raise DeviceError(
                    f"device 'gpu' for {path}: no TFLite GPU delegate library given. Pass "
                    f"gpu_delegate='/path/libtensorflowlite_gpu_delegate.so' (or device='gpu:/path/lib.so', "
                    f"or set {GPU_DELEGATE_ENV}); LiteRT's own GPU accelerator is tried by load() separately"
                )
            delegates.append(_load_delegate(load_delegate, library, delegate_options, f"device '{device}'"))
            self._delegate_name = f"gpu ({os.path.basename(library)})"
        elif device.kind != "cpu":
            raise DeviceError(f"TFLite backend cannot run on device '{device}'")
        kwargs = {"model_content": content, "num_threads": self.threads}
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = _without_default_delegates(self.runtime)
        if delegates:
            kwargs["experimental_delegates"] = delegates
        try:
            self._it = interpreter_cls(**kwargs)
            self._it.allocate_tensors()
            self._refresh_io()  # tensor and op names are decoded here: corrupted ones fail here
            self.delegation = self._delegation()
            self.warnings = slow_kernel_warnings(self.runtime, runtime_version(self.runtime),
                                                 dict(self.delegation.outside))
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as exc:  # UnicodeDecodeError is a ValueError
            raise _load_error(path, self.runtime, exc, info) from exc
        self._delegates = delegates
        if self._delegate_name and self.delegation.nodes == 0:
            raise DeviceError(
                f"device '{device}': the {self._delegate_name} delegate loaded but took none of the "
                f"{self.delegation.total} nodes of {path}; nothing would run on it"
            )

    # ----- description -------------------------------------------------------------------
    def _refresh_io(self) -> None:
        self.inputs = tuple(_spec(d) for d in self._it.get_input_details())
        self.outputs = tuple(_spec(d) for d in self._it.get_output_details())
        self._in_idx = [s.index for s in self.inputs]
        self._out_idx = [s.index for s in self.outputs]
        self._shapes = [tuple(int(x) for x in d["shape"]) for d in self._it.get_input_details()]

    def signature_outputs(self) -> dict[str, str]:
        """Signature output key -> output tensor name (TFLite does not keep the keys' order)."""
        by_index = {spec.index: spec.name for spec in self.outputs}
        try:
            signatures = self._it._get_full_signature_list() or {}
        except (AttributeError, RuntimeError, ValueError):
            return {}
        first = next(iter(signatures.values()), {})
        return {key: by_index[i] for key, i in first.get("outputs", {}).items() if i in by_index}

    def op_names(self) -> list[str]:
        """Op name of every original node of the main graph (delegate kernels excluded)."""
        return [d["op_name"] for d in self._it._get_ops_details() if d["op_name"] != "DELEGATE"]

    def op_histogram(self) -> Counter:
        return Counter(self.op_names())

    def _delegation(self) -> Delegation:
        """Which original nodes the delegate kernels replaced: walk back from each delegate
        kernel's outputs through the producing nodes until its inputs are reached."""
        details = self._it._get_ops_details()
        original = [d for d in details if d["op_name"] != "DELEGATE"]
        kernels = [d for d in details if d["op_name"] == "DELEGATE"]
        producer = {int(t): d["index"] for d in original for t in d["outputs"]}
        by_index = {d["index"]: d for d in original}
        taken: set[int] = set()
        for kernel in kernels:
            boundary = {int(t) for t in kernel["inputs"]}
            stack = [int(t) for t in kernel["outputs"]]
            while stack:
                tensor = stack.pop()
                node = producer.get(tensor)
                if tensor in boundary or node is None or node in taken:
                    continue
                taken.add(node)
                stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0)
        default = "xnnpack" if self.xnnpack and (self.runtime != "tflite_runtime" or kernels) else "builtin"
        name = self._delegate_name or default
        outside = Counter(d["op_name"] for d in original if d["index"] not in taken)
        return Delegation(name, len(taken), len(original), len(kernels), tuple(sorted(outside.items())))

    @property
    def accelerator(self) -> str:
        if self._delegate_name:
            text = f"{self._delegate_name} via {self.runtime}"
        elif self.delegation.partitions:
            text = f"cpu/xnnpack x{self.threads} threads"
        else:
            text = f"cpu/builtin kernels x{self.threads} threads"
        if self.delegation.partitions and not self.delegation.full:
            text += f" ({self.delegation.nodes}/{self.delegation.total} nodes delegated)"
        return text

    # ----- running -----------------------------------------------------------------------
    def ensure_shapes(self, shapes: list[tuple]) -> None:
        if shapes == self._shapes:
            return
        try:
            for index, shape, current in zip(self._in_idx, shapes, self._shapes or [None] * len(shapes)):
                if shape != current:
                    self._it.resize_tensor_input(index, list(shape), strict=False)
            self._it.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            self._shapes = None  # unknown now: the next call resizes again
            raise InferenceError(f"{self.path}: the model cannot be resized to input shapes {shapes}: {exc}") from exc
        self._shapes = list(shapes)

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        it = self._it
        try:
            for index, array in zip(self._in_idx, arrays):
                it.set_tensor(index, array)
        except ValueError as exc:
            raise InputError(f"{self.path}: {self.runtime} refused an input: {exc}") from exc
        try:
            it.invoke()
        except RuntimeError as exc:
            raise InferenceError(f"{self.path}: {self.runtime} failed to run the model: {exc}") from exc
        return [it.get_tensor(index) for index in self._out_idx]

    def reset(self) -> None:
        """Forget all state. Resource variables (VAR_HANDLE) are re-initialised only by a fresh
        interpreter, so a stateful model is rebuilt from the bytes already in memory."""
        if self.info.stateful:
            shapes = self._shapes
            self.__init__(self.path, self._content, self.info, self.device, self.threads, self.runtime,
                          *self._delegate_args, xnnpack=self.xnnpack)
            self.ensure_shapes(shapes)
        else:
            self._it.reset_all_variables()


@lru_cache(maxsize=None)
def runtime_version(runtime: str) -> str:
    """The installed version of an interpreter package ("" when its metadata is missing); looked
    up once per process (a metadata scan, 0.4 ms here, that every load and stateful reset asks for)."""
    try:
        return importlib.metadata.version(runtime.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return ""


def runtime_label(runtime: str) -> str:
    """``tflite_runtime 2.14.0``: the interpreter module and its installed version."""
    version = runtime_version(runtime)
    return f"{runtime} {version}" if version else runtime


def interpreter_label() -> str:
    """``ai-edge-litert 2.1.6``: the package and version :func:`edge_runtime.load` runs .tflite with."""
    found = deps.tflite_interpreters()
    return runtime_label(found[0]).replace("_", "-") if found else "no TFLite interpreter installed"


def _load_error(path: str, runtime: str, exc: Exception, info: TFLiteFileInfo | None = None) -> ModelFileError:
    text = str(exc).strip()
    half = len(text) // 2
    if half and text[:half] == text[half:]:  # tflite-runtime reports a failed prepare twice
        text = text[:half].strip()
    label = runtime_label(runtime)
    flex = ", ".join(op for op in (info.custom_ops if info else ()) if op.startswith("Flex"))
    if "Didn't find op for builtin opcode" in text:
        if runtime == "tflite_runtime":
            upgrade = ("tflite-runtime has no newer release: pip install ai-edge-litert (it runs on numpy<2 too, "
                       "and load() prefers it)")
        else:
            upgrade = "upgrade it: pip install -U ai-edge-litert"
        hint = (
            f"the installed runtime ({label}) does not know an op this model uses (newer TensorFlow converters "
            f"write newer op versions, e.g. for dynamic-range quantization); {upgrade}, or re-convert the model "
            "with a TensorFlow as old as the runtime, or as float or full-integer int8"
        )
    elif flex or "Select TensorFlow op" in text:
        hint = (
            f"the model uses TensorFlow (Flex) ops {flex} that need TFLite's Flex delegate, which "
            f"{label} does not include; re-convert it with supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS] only"
        )
    elif "Encountered unresolved custom op" in text:
        ops = ", ".join(dict.fromkeys(re.findall(r"unresolved custom op: ([^.\s]+)", text)))
        hint = (
            f"the model uses a custom op ({ops}) that {label} has no implementation of; it comes from "
            "the tool that made the model"
            + (" (ai-edge-litert implements more of them: pip install ai-edge-litert)" if runtime == "tflite_runtime" else "")
        )
    else:
        hint = "the file may be truncated or corrupted, or need a newer TFLite runtime"
    first_lines = " | ".join(line for line in text.splitlines() if line.strip())[:600].rstrip(". ")
    return ModelFileError(f"{path}: {runtime} could not load the model: {first_lines}. {hint}")

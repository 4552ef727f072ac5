"""``load()``: read a model file, tell its format from its content, and start it on the asked
device. An explicit device that cannot be honoured raises; ``"auto"`` falls back and records
every attempt in ``Model.fallbacks``."""
from __future__ import annotations

import os
from pathlib import Path

from edge_runtime import deps
from edge_runtime.devices import Device
from edge_runtime.errors import DeviceError, ModelFileError
from edge_runtime.model import Fallback, Model
from edge_runtime.onnx_file import ONNXFormatError, read_onnx
from edge_runtime.tflite_file import TFLiteFormatError, has_identifier, read_tflite


def sniff(content: bytes) -> str:
    """``"tflite"`` or ``"onnx"`` from the bytes themselves; the file name plays no part."""
    return _sniff(content)[0]


def _sniff(content: bytes) -> tuple[str, str]:
    """(kind, why the ONNX check failed)."""
    if has_identifier(content):
        return "tflite", ""
    try:
        read_onnx(content)
    except ONNXFormatError as exc:
        return "unknown", str(exc)
    return "onnx", ""


def read_model_file(path: str | os.PathLike) -> tuple[str, bytes]:
    """(absolute path, bytes) of a model file, with a clear error for anything unreadable."""
    p = Path(path).expanduser()
    try:
        p.resolve(strict=True)
    except FileNotFoundError:
        raise ModelFileError(f"{p}: no such model file" + (" (a broken symbolic link)" if p.is_symlink() else "")) from None
    except (RuntimeError, OSError) as exc:  # a symlink loop raises RuntimeError or ELOOP
        raise ModelFileError(f"{p}: cannot resolve the path ({exc}); a symbolic link loop?") from None
    if p.is_dir():
        raise ModelFileError(f"{p}: is a directory; expected a .tflite or .onnx file")
    if not p.is_file():  # a FIFO or a device would block or never end
        raise ModelFileError(f"{p}: not a regular file; expected a .tflite or .onnx file")
    try:
        content = p.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{p}: cannot read the file: {exc}") from exc
    if len(content) < 8:
        raise ModelFileError(f"{p}: {len(content)} bytes is too short to be a model (empty or truncated)")
    return str(p), content


def _text(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return f"<{len(value)} bytes>"


def load(path: str | os.PathLike, device: str | Device = "auto", threads: int | None = None, *,
         interpreter: str | None = None, gpu_delegate: str | None = None, delegate_options: dict | None = None,
         provider_options: dict | None = None, xnnpack: bool = True) -> Model:
    """Load a .tflite or .onnx model and start it on ``device``.

    Args:
        path: the model file; its format is read from its content.
        device: ``"auto"``, ``"cpu"``, ``"gpu"``, ``"gpu:/path/delegate.so"``, ``"edgetpu"``,
            ``"edgetpu:usb:0"``, ``"edgetpu:pci:0"``.
        threads: CPU threads (default 1, as TFLite's own default).
        interpreter: force a TFLite interpreter package (``"ai_edge_litert"``,
            ``"tflite_runtime"``, ``"tensorflow"``); by default the first installed.
        gpu_delegate: path of a TFLite GPU / external delegate library (also ``$EDGEPILOT_GPU_DELEGATE``).
        delegate_options: options passed to the delegate library.
        provider_options: options for the ONNX Runtime execution provider.
        xnnpack: False builds a TFLite interpreter without its default XNNPACK delegate (built-in
            kernels only, bit-identical to the reference kernels; slower for large models; needs an
            interpreter with ``OpResolverType``). ONNX models ignore it: ONNX Runtime's CPU
            provider uses no XNNPACK unless asked, so the request already holds.
    """
    dev = Device.parse(device)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if interpreter is not None and interpreter not in deps.TFLITE_MODULES:
        raise ValueError(f"interpreter must be one of {deps.TFLITE_MODULES}, got {interpreter!r}")
    path, content = read_model_file(path)
    kind, onnx_problem = _sniff(content)
    if kind == "tflite":
        return _load_tflite(path, content, dev, threads, interpreter, gpu_delegate, delegate_options, xnnpack)
    if kind == "onnx":
        return _load_onnx(path, content, dev, threads, provider_options)
    raise ModelFileError(
        f"{path}: neither a TFLite flatbuffer (no 'TFL3' identifier at byte 4) nor an ONNX model "
        f"(no valid ModelProto: {onnx_problem}); the file starts with {content[:8]!r}"
    )


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _load_tflite(path, content, dev, threads, interpreter, gpu_delegate, delegate_options, xnnpack=True) -> Model:
    from edge_runtime.tflite_backend import EDGETPU_INSTALL, GPU_DELEGATE_ENV, TFLiteBackend

    try:
        info = read_tflite(content)
    except TFLiteFormatError as exc:
        raise ModelFileError(f"{path}: not a valid TFLite model: {exc}") from exc
    big, memory = info.largest_tensor, physical_memory()
    if big is not None and memory and big.bytes > memory:
        # the interpreter would try to allocate it: a segmentation fault or the OOM killer, not an error
        raise ModelFileError(f"{path}: tensor {big.name!r} of shape {list(big.shape)} needs {big.bytes / 2**30:,.1f} GiB, "
                             f"more than this machine's {memory / 2**30:.1f} GiB of memory: the file is corrupted "
                             f"or not meant for this device")
    metadata = {name: _text(value) for name, value in info.metadata.items()}

    def make(device: Device):
        return TFLiteBackend(path, content, info, device, threads, interpreter, gpu_delegate, delegate_options,
                             xnnpack=xnnpack)

    if info.edgetpu_compiled and dev.kind not in ("edgetpu", "auto"):
        raise DeviceError(
            f"{path} is compiled for the Edge TPU (it contains 'edgetpu-custom-op') and cannot run on "
            f"'{dev}'. Run it with device='edgetpu', or use the int8 model from before edgetpu_compiler"
        )
    if dev.explicit:
        if dev.kind == "gpu" and not (dev.detail or gpu_delegate or os.environ.get(GPU_DELEGATE_ENV)):
            return Model(_litert_gpu(path, content, make), path, metadata, stateful=info.stateful)
        return Model(make(dev), path, metadata, stateful=info.stateful)

    # auto: Edge TPU for compiled models, a configured GPU delegate, then the CPU.
    fallbacks: list[Fallback] = []
    if info.edgetpu_compiled:
        try:
            return Model(make(Device("edgetpu")), path, metadata, stateful=info.stateful)
        except DeviceError as exc:
            raise DeviceError(
                f"{path} is compiled for the Edge TPU and no Edge TPU could be used ({exc}); it cannot run "
                f"on the CPU. Either {EDGETPU_INSTALL}, or use the int8 model from before edgetpu_compiler"
            ) from exc
    if gpu_delegate or os.environ.get(GPU_DELEGATE_ENV):
        try:
            return Model(make(Device("gpu")), path, metadata, stateful=info.stateful)
        except DeviceError as exc:
            fallbacks.append(Fallback("gpu", str(exc)))
    return Model(make(Device("cpu")), path, metadata, tuple(fallbacks), stateful=info.stateful)


def _litert_gpu(path, content, make):
    from edge_runtime.litert_gpu import LiteRtGpuBackend
    from edge_runtime.tflite_backend import GPU_DELEGATE_ENV

    if not deps.is_available("ai_edge_litert"):  # e.g. the numpy<2 tflite-runtime setup
        raise DeviceError(
            f"device 'gpu' for {path}: no TFLite GPU delegate library given (pass gpu_delegate='/path/lib.so', "
            f"device='gpu:/path/lib.so', or set {GPU_DELEGATE_ENV}), and LiteRT's own GPU accelerator needs "
            "ai-edge-litert, which is not installed (pip install ai-edge-litert)"
        )
    cpu = make(Device("cpu"))
    return LiteRtGpuBackend(path, content, Device("gpu"), cpu)


def _load_onnx(path, content, dev, threads, provider_options) -> Model:
    from edge_runtime.onnx_backend import GPU_PROVIDERS, ONNXBackend, available_providers

    metadata = read_onnx(content).metadata
    if dev.kind == "edgetpu":
        raise DeviceError(f"{path}: the Edge TPU runs only Edge-TPU-compiled .tflite models, not ONNX")
    if dev.kind == "cpu":
        return Model(ONNXBackend(path, content, dev, threads), path, metadata)
    installed = available_providers()
    fallbacks: list[Fallback] = []
    for provider in GPU_PROVIDERS:
        if provider not in installed:
            continue
        try:
            backend = ONNXBackend(path, content, Device("gpu"), threads, provider, provider_options)
            return Model(backend, path, metadata, tuple(fallbacks))
        except DeviceError as exc:
            fallbacks.append(Fallback(f"gpu/{provider}", str(exc)))
    if dev.kind == "gpu":
        tried = "; ".join(str(f) for f in fallbacks) or "none of them is installed"
        raise DeviceError(
            f"device 'gpu' for {path}: no ONNX Runtime GPU provider could start. Installed providers: "
            f"{installed}. Tried {list(GPU_PROVIDERS)}: {tried}. Install onnxruntime-gpu (CUDA/TensorRT), "
            "onnxruntime-openvino, or use device='cpu'"
        )
    if not fallbacks:
        fallbacks.append(Fallback("gpu", f"no GPU execution provider installed (onnxruntime has {installed})"))
    return Model(ONNXBackend(path, content, Device("cpu"), threads), path, metadata, tuple(fallbacks))

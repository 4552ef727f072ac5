"""Device strings, parsed in one place.

Accepted forms::

    "auto"                       best accelerator that starts, CPU otherwise (reported, never silent)
    "cpu"                        CPU; XNNPACK for TFLite, CPUExecutionProvider for ONNX
    "gpu"                        a GPU delegate (TFLite) or a GPU execution provider (ONNX)
    "gpu:/path/libdelegate.so"   a TFLite GPU / external delegate library given by path
    "edgetpu"                    the first Coral Edge TPU
    "edgetpu:usb" "edgetpu:usb:0" "edgetpu:pci:0"   a particular Edge TPU (pycoral's naming)
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.errors import DeviceStringError

KINDS = ("auto", "cpu", "gpu", "edgetpu")


@dataclass(frozen=True)
class Device:
    """A parsed device string. ``detail`` is kind-specific: the Edge TPU selector passed to
    ``libedgetpu`` (``"usb:0"``) or a GPU delegate library path."""

    kind: str
    detail: str = ""

    @classmethod
    def parse(cls, text: "str | Device") -> "Device":
        if isinstance(text, Device):
            return text
        if not isinstance(text, str) or not text.strip():
            raise DeviceStringError(
                f"device must be a non-empty string such as 'cpu', 'gpu', 'edgetpu:usb:0' or 'auto'; got {text!r}"
            )
        kind, _, detail = text.strip().partition(":")
        kind = kind.lower()
        if kind not in KINDS:
            raise DeviceStringError(
                f"unknown device {text!r}: expected one of {', '.join(KINDS)} "
                "(optionally 'edgetpu:usb', 'edgetpu:usb:0', 'edgetpu:pci:0' or 'gpu:/path/to/delegate.so')"
            )
        if kind in ("auto", "cpu") and detail:
            raise DeviceStringError(f"device {text!r}: '{kind}' takes no ':...' suffix")
        if kind == "edgetpu" and detail:
            bus, _, index = detail.partition(":")
            if bus not in ("usb", "pci") or (index and not index.isdigit()):
                raise DeviceStringError(
                    f"Edge TPU device {text!r}: expected 'edgetpu', 'edgetpu:usb', 'edgetpu:pci', "
                    "'edgetpu:usb:N' or 'edgetpu:pci:N'"
                )
        return cls(kind, detail)

    @property
    def explicit(self) -> bool:
        """True unless ``auto``: an explicit device that cannot be honoured raises."""
        return self.kind != "auto"

    def __str__(self) -> str:
        return f"{self.kind}:{self.detail}" if self.detail else self.kind

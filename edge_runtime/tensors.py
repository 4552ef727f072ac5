"""What a model's inputs and outputs look like, and how quantized values map to real ones."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


_LIMITS: dict = {}
_HALF = np.float32(0.5)


def _limits(dtype) -> tuple[np.float32, np.float32]:
    """(min, max) of an integer dtype as float32, cached: np.iinfo is slow on a hot path."""
    try:
        return _LIMITS[dtype]
    except KeyError:
        info = np.iinfo(dtype)
        _LIMITS[dtype] = (np.float32(info.min), np.float32(info.max))
        return _LIMITS[dtype]


@dataclass(frozen=True)
class Quantization:
    """Affine quantization ``real = scale * (q - zero_point)``.

    ``scales`` / ``zero_points`` hold one value per tensor, or one per slice along ``axis``
    (per-axis quantization, as for convolution weights)."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

    def __post_init__(self):
        if not self.scales or len(self.scales) != len(self.zero_points):
            raise ValueError(f"quantization needs one zero point per scale, got {len(self.scales)} scales and "
                             f"{len(self.zero_points)} zero points")
        # float32 constants for the per-tensor hot path, computed once
        object.__setattr__(self, "_scale32", np.float32(self.scales[0]))
        object.__setattr__(self, "_zero32", np.float32(self.zero_points[0]))

    @property
    def per_axis(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]

    def _broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        scale = np.asarray(self.scales, dtype=np.float32)
        zero = np.asarray(self.zero_points, dtype=np.float32)
        if self.per_axis:
            shape = [1] * ndim
            shape[self.axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        else:
            scale, zero = scale[0], zero[0]
        return scale, zero

    def quantize(self, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Real values -> integers of ``dtype``: ``round(x / scale) + zero_point``, rounding half
        away from zero as TFLite's own QUANTIZE kernel does, clipped to the dtype's range."""
        lo, hi = _limits(dtype)
        values = np.asarray(values, dtype=np.float32)
        if len(self.scales) > 1:
            scale, zero = self._broadcast(values.ndim)
        else:
            scale, zero = self._scale32, self._zero32
        q = values / scale
        if np.isnan(q).any():
            raise ValueError("NaN in the values to quantize: a quantized input needs finite numbers")
        q += np.copysign(_HALF, q)
        np.trunc(q, out=q)
        q += zero
        np.minimum(q, hi, out=q)
        np.maximum(q, lo, out=q)
        return q.astype(dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Integers -> float32 real values."""
        real = np.asarray(values).astype(np.float32)
        if len(self.scales) > 1:
            scale, zero = self._broadcast(real.ndim)
        else:
            scale, zero = self._scale32, self._zero32
        real -= zero
        real *= scale
        return real

    def __str__(self) -> str:
        if self.per_axis:
            return f"per-axis[{self.axis}] x{len(self.scales)}"
        return f"scale={self.scale:.6g} zero_point={self.zero_point}"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output. ``shape`` uses -1 (or a name, for ONNX) for a dimension the model
    leaves open; ``quantization`` is None for float tensors."""

    name: str
    shape: tuple
    dtype: np.dtype
    quantization: Quantization | None = None
    index: int = 0

    @property
    def quantized(self) -> bool:
        return self.quantization is not None and np.issubdtype(self.dtype, np.integer)

    @property
    def fixed_shape(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def accepts_shape(self, shape: tuple) -> bool:
        """True when an array of ``shape`` fits, open dimensions matching anything."""
        if len(shape) != len(self.shape):
            return False
        return all(not (isinstance(d, int) and d >= 0) or d == s for d, s in zip(self.shape, shape))

    def describe(self) -> str:
        dims = "x".join("?" if not (isinstance(d, int) and d >= 0) else str(d) for d in self.shape)
        text = f"{self.name} [{dims}] {np.dtype(self.dtype).name}"
        if self.quantization is not None:
            text += f" ({self.quantization})"
        return text

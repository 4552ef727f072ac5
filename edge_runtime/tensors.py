"""What a model's inputs and outputs look like, and how quantized values map to real ones."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quantization:
    """Affine quantization ``real = scale * (q - zero_point)``.

    ``scales`` / ``zero_points`` hold one value per tensor, or one per slice along ``axis``
    (per-axis quantization, as for convolution weights)."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

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
        """Real values -> integers of ``dtype``, rounded to nearest and clipped to its range."""
        scale, zero = self._broadcast(np.ndim(values))
        info = np.iinfo(dtype)
        q = np.rint(np.asarray(values, dtype=np.float32) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Integers -> float32 real values."""
        scale, zero = self._broadcast(np.ndim(values))
        return ((np.asarray(values, dtype=np.float32) - zero) * scale).astype(np.float32)

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

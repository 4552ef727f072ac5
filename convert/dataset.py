"""What :func:`convert.data.load_dataset` returns and raises: :class:`Dataset` (samples prepared for
one model input, with labels or detection ground truth) and :class:`DataError`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from edge_runtime.metadata import ResizeGeometry

if TYPE_CHECKING:
    from train.detection_data import DetectionSet

Progress = Callable[[int, int], None]  # progress(done, total), called after each file


class DataError(ValueError):
    """Calibration or evaluation data that is missing, empty, unreadable or does not fit the model
    input. The message names the source, what was expected and what arrived."""


@dataclass(frozen=True)
class Dataset:
    """Samples ready for one model input.

    ``x`` is float32 and batch-first, each sample exactly the model input shape; ``y`` holds one
    int64 class index into ``labels`` per sample, or is None for unlabeled data; ``source`` says
    where the samples came from (a path, or ``name()`` for a callable).

    Detection sets also carry their ground truth, so an evaluator can compute mAP:
    ``detections`` is the set restricted to these samples in the order of ``x`` (boxes in
    pixels of the original images, class names in ``labels``), and ``geometries[i]`` says how
    image ``i`` was fitted into the model input (``geometries[i].to_image`` maps a model's
    boxes back)."""

    x: np.ndarray
    y: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    source: str = ""
    detections: DetectionSet | None = None
    geometries: tuple[ResizeGeometry, ...] = ()

    def __post_init__(self):
        where = f"dataset {self.source}" if self.source else "dataset"
        if not isinstance(self.x, np.ndarray) or self.x.dtype != np.float32 or self.x.ndim < 1:
            got = f"{type(self.x).__name__} of dtype {getattr(self.x, 'dtype', '?')}, shape {np.shape(self.x)}"
            raise DataError(f"{where}: x must be a batch-first float32 numpy array, got a {got}")
        if self.y is not None:
            if not isinstance(self.y, np.ndarray) or self.y.dtype != np.int64 or self.y.ndim != 1:
                raise DataError(f"{where}: y must be a 1-D int64 numpy array of class indices, got "
                                f"{type(self.y).__name__} of dtype {getattr(self.y, 'dtype', '?')}")
            if len(self.y) != len(self.x):
                raise DataError(f"{where}: y has {len(self.y)} labels but x has {len(self.x)} samples; "
                                f"expected one class index per sample")
            if self.labels and len(self.y) and int(self.y.max()) >= len(self.labels):
                raise DataError(f"{where}: class index {int(self.y.max())} is out of range for "
                                f"{len(self.labels)} labels {self.labels}")
        if self.detections is not None and not len(self.detections) == len(self.geometries) == len(self.x):
            raise DataError(f"{where}: {len(self.x)} samples but {len(self.detections)} detection entries and "
                            f"{len(self.geometries)} geometries; expected one of each per sample")

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, size: int) -> Iterator["Dataset"]:
        """Consecutive slices of ``size`` samples, in order, as Datasets with the same labels and
        source; the last one is shorter when ``size`` does not divide the length."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        for start in range(0, len(self), size):
            yield self._pick(slice(start, start + size))

    def take(self, n: int, seed: int = 0) -> "Dataset":
        """``n`` samples drawn at random without replacement (the same ones for the same ``seed``),
        kept in their original order; the whole dataset when ``n >= len(self)``."""
        index = subset_indices(len(self), n, seed)
        return self if index is None else self._pick(index)

    def _pick(self, index: slice | np.ndarray) -> "Dataset":
        """The samples at ``index``, a slice (x stays a view) or an array of positions."""
        ids = range(len(self))[index] if isinstance(index, slice) else index
        detections = None if self.detections is None else self.detections.subset(ids)
        return Dataset(self.x[index], None if self.y is None else self.y[index], self.labels, self.source,
                       detections, tuple(self.geometries[i] for i in ids) if self.geometries else ())


def subset_indices(total: int, n: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of ``n`` of ``total`` items drawn with ``seed``; None to keep them all."""
    if n is None:
        return None
    if n < 1:
        raise DataError(f"the number of samples to keep must be at least 1, got {n}")
    if n >= total:
        return None
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))

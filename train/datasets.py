"""Data sets for the training recipes, read offline where the system provides them.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package
(``apt-get install dataset-fashion-mnist``), whose gzipped IDX files under
``/usr/share/datasets/fashion-mnist/`` are read here with numpy and gzip alone::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   60000 images
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    10000 images

Where the package is not installed, :func:`load_fashion_mnist` asks Keras instead, which
**downloads** the same files (about 30 MB) into ``~/.keras/datasets`` on first use.
"""
from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Class names in label order, as the data set's README lists them.
FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# split -> (images file, labels file)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# IDX type code -> element dtype (big-endian, as the format stores it)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetError(ValueError):
    """A data set file is missing, truncated or not in the expected format."""


def read_idx(path: str | Path, limit: int | None = None) -> np.ndarray:
    """The array in an IDX file (gzipped when the name ends in ``.gz``), in native byte order;
    only its first ``limit`` items along the first axis when ``limit`` is given."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
                raise DatasetError(f"{path}: not an IDX file (header {magic.hex() or 'empty'}); expected 00 00, a type "
                                   f"code in {sorted(_IDX_DTYPES)} and a dimension count")
            dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
            head = f.read(4 * ndim)
            if len(head) < 4 * ndim:
                raise DatasetError(f"{path}: truncated IDX header; expected {ndim} dimension sizes")
            dims = struct.unpack(f">{ndim}I", head)
            count = dims[0] if limit is None else min(dims[0], limit)
            expected = count * math.prod(dims[1:]) * dtype.itemsize
            data = f.read(expected)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read it as a gzipped IDX file: {exc}") from None
    if len(data) < expected:
        raise DatasetError(f"{path}: truncated; the header promises {dims} but only {len(data)} of "
                           f"{expected} data bytes are there")
    return np.frombuffer(data, dtype).reshape(count, *dims[1:]).astype(dtype.newbyteorder("="))


def load_fashion_mnist(split: str = "train", limit: int | None = None, *, root: str | Path | None = None,
                       download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ("train", 60000 images, or "test", 10000) as ``(images, labels)``:
    uint8 images of shape [N, 28, 28] and int64 class indices into :data:`FASHION_MNIST_LABELS`.

    ``limit`` keeps the first ``limit`` images (the files are read no further). The files come
    from ``root``, by default the Debian package's folder; only when that default folder lacks
    them, and ``download`` is true, Keras downloads them (needs ``pip install 'edgepilot[train]'``
    and network access).
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"Fashion-MNIST split must be one of {sorted(FASHION_MNIST_FILES)}, got {split!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 (or None for all), got {limit}")
    folder = FASHION_MNIST_DIR if root is None else Path(root)
    paths = [folder / name for name in FASHION_MNIST_FILES[split]]
    present = [p.is_file() for p in paths]
    if all(present):
        images, labels = read_idx(paths[0], limit), read_idx(paths[1], limit)
    elif root is not None or any(present):
        missing = [p.name for p, ok in zip(paths, present) if not ok]
        raise DatasetError(f"{folder}: Fashion-MNIST {split} files {missing} are missing; expected "
                           f"{list(FASHION_MNIST_FILES[split])} (apt-get install dataset-fashion-mnist)")
    elif not download:
        raise DatasetError(f"Fashion-MNIST is not installed in {folder}: install the Debian package "
                           f"(apt-get install dataset-fashion-mnist), or pass download=True to fetch it through Keras")
    else:
        images, labels = _download_with_keras(split)
        images, labels = images[:limit], labels[:limit]
    where = folder if all(present) else "Keras' fashion_mnist"
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{where}: Fashion-MNIST {split} images should be uint8 of shape [N, 28, 28], "
                           f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(f"{where}: Fashion-MNIST {split} has {len(images)} images but labels of shape "
                           f"{labels.shape}; expected one label per image")
    if len(labels) and int(labels.max()) >= len(FASHION_MNIST_LABELS):
        raise DatasetError(f"{where}: Fashion-MNIST {split} label {int(labels.max())} is out of range; expected "
                           f"0..{len(FASHION_MNIST_LABELS) - 1}")
    return images, labels.astype(np.int64)


def _download_with_keras(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays of ``split`` from ``keras.datasets.fashion_mnist`` (downloads on first use)."""
    from edge_runtime.deps import is_available
    from edge_runtime.errors import MissingDependencyError

    if not is_available("keras"):
        raise MissingDependencyError(
            f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR} and downloading it needs Keras. Install the "
            f"Debian package (apt-get install dataset-fashion-mnist) or Keras: pip install 'edgepilot[train]'"
        )
    import keras

    train, test = keras.datasets.fashion_mnist.load_data()
    return train if split == "train" else test

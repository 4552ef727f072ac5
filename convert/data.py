"""Calibration and evaluation data for conversion, prepared for one model input.

:func:`load_dataset` reads a folder of images or WAV files, a ``.npy`` array, an ``.npz`` archive,
a YOLO or COCO detection set, the name ``fashion-mnist`` or a Python callable, checks every sample
against the model's input shape and returns a :class:`Dataset`: float32, batch-first,
preprocessed with the model's own :class:`~edge_runtime.metadata.Preprocess` recipe.

    >>> ds = load_dataset("data/val", (96, 96, 3), meta.preprocess, limit=DEFAULT_EVAL_SAMPLES,
    ...                   what="evaluation")
    >>> for batch in ds.batches(32):
    ...     scores = model.run(batch.x)

TensorFlow is imported only to decode image folders; detection sets are read by
:mod:`train.detection_data` (OpenCV), Fashion-MNIST by :mod:`train.datasets`, both imported only
when such data is asked for; everything else needs numpy and the stdlib.
"""
from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Union

import numpy as np

from edge_runtime.metadata import Preprocess, ResizeGeometry

if TYPE_CHECKING:
    from train.detection_data import DetectionSet

# The TFLite post-training quantization guide suggests a few hundred representative samples;
# past that, calibration only gets slower while the activation ranges it records barely move.
DEFAULT_CALIBRATION_SAMPLES = 200
# Top-1 accuracy on 2000 samples has a standard error of at most sqrt(0.25 / 2000) = 1.1 points,
# enough to tell variants apart by about one point, and it evaluates in reasonable time on 2 cores.
DEFAULT_EVAL_SAMPLES = 2000

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
AUDIO_SUFFIXES = (".wav",)

Progress = Callable[[int, int], None]  # progress(done, total), called after each file
Source = Union[str, os.PathLike, Callable[[], Any]]  # a path, or a callable that returns the data
FASHION_MNIST = "fashion-mnist"  # the name that reads Fashion-MNIST (train.datasets)

_WHAT_TO_PASS = ("a folder of images or WAV files, a .npy array, an .npz archive with an array 'x', a YOLO "
                 "data.yaml (or its folder), a COCO folder (annotations/instances_<split>.json), "
                 f"'{FASHION_MNIST}', or a callable")


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
        index = _subset(len(self), n, seed)
        return self if index is None else self._pick(index)

    def _pick(self, index: slice | np.ndarray) -> "Dataset":
        """The samples at ``index``, a slice (x stays a view) or an array of positions."""
        ids = range(len(self))[index] if isinstance(index, slice) else index
        detections = None if self.detections is None else self.detections.subset(ids)
        return Dataset(self.x[index], None if self.y is None else self.y[index], self.labels, self.source,
                       detections, tuple(self.geometries[i] for i in ids) if self.geometries else ())


def load_dataset(
    source: Source,
    input_shape: tuple,
    preprocess: Preprocess | None = None,
    limit: int | None = None,
    seed: int = 0,
    what: str = "calibration",
    progress: Progress | None = None,
    split: str | None = None,
) -> Dataset:
    """Load ``what`` ("calibration" or "evaluation") data shaped for one model input.

    ``input_shape`` is the model input without its batch dimension; ``None`` or ``-1`` in it
    matches any size for arrays (files need every size known). ``source`` is one of:

    * a folder of images (.png, .jpg, .jpeg, .bmp, .gif). Each is decoded and resized with
      TensorFlow (bilinear, aspect ratio not kept, as Keras' ``image_dataset_from_directory``
      does) to ``input_shape``'s (height, width); a last dimension of 3 reads RGB, 1 (or an
      input shape of just (height, width)) reads grayscale. ``preprocess.color == "bgr"``
      reverses the channels, then ``preprocess.normalize`` scales the pixels (its per-channel
      mean and std are in the model's channel order).
    * a folder of WAV files (PCM, 8/16/24/32-bit, read with the stdlib ``wave``): channels are
      averaged to mono, and a file whose rate differs from ``preprocess.sample_rate_hz`` is
      resampled to it by **linear interpolation** (no anti-alias filter, so downsampling can
      alias). ``preprocess.fit_audio`` cuts or pads it, and it is reshaped to ``input_shape``.
    * a ``.npy`` array, or an ``.npz`` archive with an array ``x``, an optional ``y`` of class
      indices and an optional ``labels`` array of names.
    * a YOLO ``data.yaml`` (or a folder holding one) or a COCO folder
      (``annotations/instances_<split>.json``), read by :func:`train.detection_data.load_detection_set`
      (which refuses malformed labels). Images are decoded by OpenCV and fitted with
      :func:`train.detection_data.fit_image`: ``preprocess.resize`` (stretch or letterbox with
      ``pad_value``) to ``input_shape``, then ``color`` and ``normalize``. ``y`` is None;
      :attr:`Dataset.detections` and :attr:`Dataset.geometries` carry the boxes for mAP.
    * the name ``"fashion-mnist"`` (a ``str``; pass ``./fashion-mnist`` for a folder of that
      name): :func:`train.datasets.load_fashion_mnist`, 28x28 uint8 pixels made float and
      normalized with ``preprocess.normalize``, a channel of 1 added where the input has one,
      labelled with the data set's ten class names.
    * a callable taking no arguments that returns an array, a tuple ``(x, y)``, or any other
      iterable of arrays, each one sample or a batch of samples (or ``[batch]``, as a TFLite
      representative dataset yields them).

    ``split`` names the split of a detection set (matched literally, e.g. ``"val2017"``) or of
    Fashion-MNIST (``"train"``/``"test"``); None picks the training split for calibration
    (``"train"``, or the one split starting with it, else as for evaluation) and the held-out one
    for evaluation (``"test"``, else ``"val"``). Other sources have no splits and refuse one.

    Folders: files directly inside are unlabeled; files in sub-folders (searched recursively)
    are labeled by sub-folder name, with every sub-folder a label in sorted order, as Keras
    numbers classes, so the indices match a model trained from the same folder. Arrays are taken
    as already preprocessed (``preprocess`` is not applied to them); a trailing channel of 1
    missing from them is added.

    ``limit`` keeps that many samples chosen at random with ``seed`` (None keeps all; callers
    pass :data:`DEFAULT_CALIBRATION_SAMPLES` or :data:`DEFAULT_EVAL_SAMPLES`). Folders draw the
    files before decoding them, and pick the same samples as ``load_dataset(...).take(limit, seed)``.
    ``progress(done, total)`` is called after each file a folder or detection-set loader reads.

    Raises :class:`DataError` naming the source, what was expected and what arrived.
    """
    shape = _shape(input_shape)
    pre = preprocess if preprocess is not None else Preprocess()
    if isinstance(source, str) and source == FASHION_MNIST:
        return _fashion_mnist(shape, pre, limit, seed, split, what)
    if callable(source):
        name = f"{getattr(source, '__qualname__', type(source).__name__)}()"
        _no_split(split, f"{what} data {name}")
        return _from_callable(source, name, shape, limit, seed, f"{what} data {name}")
    path = Path(source)
    where = f"{what} data {path}"
    if not path.exists():
        raise DataError(f"{where}: no such file or folder; expected {_WHAT_TO_PASS}")
    if _detection_format(path):  # before the folder rule: a YOLO folder holds images/ and labels/
        return _from_detection_set(path, shape, pre, limit, seed, split, what, where, progress)
    _no_split(split, where)
    if path.is_dir():
        return _from_folder(path, shape, pre, limit, seed, where, progress)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        x, y, labels = _read_npy(path, where), None, ()
    elif suffix == ".npz":
        x, y, labels = _read_npz(path, where)
    else:
        coco = "; for a COCO data set pass the folder that holds annotations/" if suffix == ".json" else ""
        raise DataError(f"{where}: unsupported file type {path.suffix or '(no suffix)'!r}; expected "
                        f"{_WHAT_TO_PASS}{coco}")
    return _from_arrays(x, y, labels, str(path), shape, limit, seed, where)


# ---------------------------------------------------------------------------------------------
# named and detection data sets (read by train/, imported when asked for)


def _no_split(split: str | None, where: str):
    if split is not None:
        raise DataError(f"{where}: has no splits, so split={split!r} cannot be chosen; splits exist in YOLO and "
                        f"COCO detection sets and '{FASHION_MNIST}'")


def _detection_format(path: Path) -> str | None:
    from train.detection_data import detection_format

    return detection_format(path)


def _fashion_mnist(shape: tuple, pre: Preprocess, limit: int | None, seed: int, split: str | None,
                   what: str) -> Dataset:
    from edge_runtime.errors import MissingDependencyError
    from train.datasets import FASHION_MNIST_FILES, FASHION_MNIST_LABELS, DatasetError, load_fashion_mnist

    where = f"{what} data {FASHION_MNIST}"
    split = split if split is not None else "train" if what == "calibration" else "test"
    if split not in FASHION_MNIST_FILES:
        raise DataError(f"{where}: has no split {split!r}; its splits are {list(FASHION_MNIST_FILES)}")
    if pre.kind == "audio":
        raise DataError(f"{where}: holds images but the preprocessing recipe is for audio (kind='audio')")
    try:
        images, labels = load_fashion_mnist(split)
    except (DatasetError, MissingDependencyError) as exc:
        raise DataError(f"{where}: {exc}") from None
    keep = _subset(len(images), limit, seed)
    if keep is not None:
        images, labels = images[keep], labels[keep]
    x = _batch_first(pre.normalize(images.astype(np.float32)), shape, f"{where} (28x28 grayscale images)")
    return Dataset(x, labels, FASHION_MNIST_LABELS, FASHION_MNIST)


def _from_detection_set(path: Path, shape: tuple, pre: Preprocess, limit: int | None, seed: int, split: str | None,
                        what: str, where: str, progress: Progress | None) -> Dataset:
    from dataclasses import replace

    from train.detection_data import EVALUATION_SPLITS, DetectionDataError, fit_image, load_detection_set

    if None in shape:
        raise DataError(f"{where}: files need a fixed model input shape to be fitted to, got {shape}; "
                        f"pass the sizes the model expects")
    height, width, channels = _image_input(shape, pre, where)
    prefer = ("train", *EVALUATION_SPLITS) if what == "calibration" else EVALUATION_SPLITS
    try:
        detections = load_detection_set(path, split, prefer)
    except DetectionDataError as exc:
        raise DataError(f"{where}: {exc}") from None
    keep = _subset(len(detections), limit, seed)
    if keep is not None:
        detections = detections.subset(keep)
    fit = replace(pre, size=(height, width), color="gray" if channels == 1 else pre.color)
    x = np.empty((len(detections), *shape), dtype=np.float32)
    geometries = []
    for i in range(len(detections)):
        try:
            pixels, geometry = fit_image(detections.read_image(i), fit)
        except DetectionDataError as exc:
            raise DataError(f"{where}: {exc}") from None
        x[i] = pixels.reshape(shape)
        geometries.append(geometry)
        if progress is not None:
            progress(i + 1, len(detections))
    return Dataset(x, None, detections.names, str(path), detections, tuple(geometries))


# ---------------------------------------------------------------------------------------------
# arrays


def _shape(input_shape) -> tuple[int | None, ...]:
    try:
        dims = tuple(None if d is None or int(d) == -1 else int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise DataError(f"input_shape must be a tuple of sizes (the model input without batch), "
                        f"got {input_shape!r}") from None
    if any(d is not None and d < 1 for d in dims):
        raise DataError(f"input_shape sizes must be positive (or -1/None for any), got {input_shape!r}")
    return dims


def _matches(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or w == g for g, w in zip(got, want))


def _subset(total: int, n: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of ``n`` of ``total`` items drawn with ``seed``; None to keep them all."""
    if n is None:
        return None
    if n < 1:
        raise DataError(f"the number of samples to keep must be at least 1, got {n}")
    if n >= total:
        return None
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def _batch_first(values: Any, shape: tuple, where: str, one_sample_ok: bool = False) -> np.ndarray:
    """``values`` as a float32 batch of samples of ``shape``, adding a missing trailing channel
    of 1 (and, with ``one_sample_ok``, a batch axis around a single sample)."""
    try:
        arr = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise DataError(f"{where}: cannot make an array of the values: {exc}") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{where}: expected a numeric array, got dtype {arr.dtype}")
    channel = bool(shape) and shape[-1] == 1
    if arr.ndim >= 1 and _matches(arr.shape[1:], shape):
        out = arr
    elif arr.ndim >= 1 and channel and _matches(arr.shape[1:] + (1,), shape):
        out = arr[..., None]
    elif one_sample_ok and _matches(arr.shape, shape):
        out = arr[None]
    elif one_sample_ok and channel and _matches(arr.shape + (1,), shape):
        out = arr[None, ..., None]
    else:
        expected = f"samples of shape {shape} (the model input without its batch dimension)"
        batch = f"an array of shape (N, {', '.join(str(d) for d in shape)})"
        raise DataError(f"{where}: expected {expected}, so {batch}; got an array of shape {arr.shape}. "
                        f"Check that the data was made for this model")
    return out.astype(np.float32, copy=False)


def _class_indices(y: Any, n: int, where: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        hint = "; one-hot labels: pass y.argmax(axis=-1)" if arr.ndim == 2 else ""
        raise DataError(f"{where}: labels y must be 1-D class indices, one per sample; got shape {arr.shape}{hint}")
    if len(arr) != n:
        raise DataError(f"{where}: labels y has {len(arr)} entries but x has {n} samples; "
                        f"expected one class index per sample")
    if not np.issubdtype(arr.dtype, np.integer):
        whole = np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all()
        if not whole:
            raise DataError(f"{where}: labels y must be integer class indices, got dtype {arr.dtype}")
    if len(arr) and arr.min() < 0:
        raise DataError(f"{where}: labels y must be class indices >= 0, got {arr.min()}")
    return arr.astype(np.int64)


def _from_arrays(x: Any, y: Any, labels: tuple[str, ...], source: str, shape: tuple, limit: int | None,
                 seed: int, where: str) -> Dataset:
    x = _batch_first(x, shape, where)
    if len(x) == 0:
        raise DataError(f"{where}: holds no samples (an array of shape {x.shape}); expected at least one")
    if y is not None:
        y = _class_indices(y, len(x), where)
        if labels and int(y.max()) >= len(labels):
            raise DataError(f"{where}: class index {int(y.max())} in y is out of range for the "
                            f"{len(labels)} labels {labels}")
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataError(f"{where}: {bad} values are NaN or infinite; expected finite numbers")
    return Dataset(x, y, labels, source).take(limit, seed) if limit is not None else Dataset(x, y, labels, source)


def _read_npy(path: Path, where: str) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where}: cannot read it as a NumPy .npy array: {exc}") from None
    if not isinstance(data, np.ndarray):
        data.close()
        raise DataError(f"{where}: is an .npz archive, not a .npy array; rename it to .npz")
    return data


def _read_npz(path: Path, where: str) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where}: cannot read it as a NumPy .npz archive: {exc}") from None
    if isinstance(archive, np.ndarray):
        raise DataError(f"{where}: is a single .npy array, not an .npz archive; rename it to .npy")
    with archive:
        names = sorted(archive.files)
        if "x" not in names:
            raise DataError(f"{where}: the archive has no array 'x' (it holds {names}); save it with "
                            f"np.savez(path, x=samples, y=class_indices)")
        try:
            x = archive["x"]
            y = archive["y"] if "y" in names else None
            labels = tuple(str(s) for s in archive["labels"]) if "labels" in names else ()
        except ValueError as exc:  # object arrays need pickle, which is never loaded from user files
            raise DataError(f"{where}: cannot read an array from it: {exc}") from None
    return x, y, labels


def _unwrap(item: Any) -> Any:
    """A TFLite representative dataset yields ``[batch]``, one array per model input: take it out."""
    return item[0] if isinstance(item, (list, tuple)) and len(item) == 1 else item


def _from_callable(fn: Callable[[], Any], name: str, shape: tuple, limit: int | None, seed: int,
                   where: str) -> Dataset:
    result = fn()
    y = None
    if isinstance(result, tuple) and len(result) == 2:
        x, y = result
    elif isinstance(result, np.ndarray):
        x = result
    elif hasattr(result, "__iter__") and not isinstance(result, (str, bytes, dict)):
        parts = [_batch_first(_unwrap(item), shape, f"{where} item {i}", one_sample_ok=True)
                 for i, item in enumerate(result)]
        if not parts:
            raise DataError(f"{where}: the iterable it returned was empty; expected at least one sample")
        x = np.concatenate(parts)
    else:
        raise DataError(f"{where}: returned a {type(result).__name__}; expected an array, an (x, y) tuple "
                        f"or an iterable of arrays")
    return _from_arrays(x, y, (), name, shape, limit, seed, where)


# ---------------------------------------------------------------------------------------------
# folders


def _supported(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES


def _scan(folder: Path, where: str) -> tuple[list[Path], list[int] | None, tuple[str, ...]]:
    """(files, class index per file or None, labels) of a folder, in a fixed order."""
    entries = sorted(folder.iterdir())
    if not entries:
        raise DataError(f"{where}: the folder is empty; expected image or WAV files, directly inside "
                        f"(unlabeled) or in one sub-folder per class")
    top = [p for p in entries if _supported(p)]
    classes = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    per_class = [sorted(p for p in c.rglob("*") if _supported(p)) for c in classes]
    if top and any(per_class):
        raise DataError(f"{where}: holds {len(top)} files at its top level and more in sub-folders; expected "
                        f"either only files (unlabeled) or only class sub-folders (labeled)")
    if top:
        return top, None, ()
    if any(per_class):
        files = [f for group in per_class for f in group]
        index = [i for i, group in enumerate(per_class) for _ in group]
        return files, index, tuple(c.name for c in classes)
    suffixes = sorted({p.suffix.lower() or "(none)" for p in folder.rglob("*") if p.is_file()})
    raise DataError(f"{where}: has no supported files (expected {', '.join(IMAGE_SUFFIXES + AUDIO_SUFFIXES)}); "
                    f"found files with suffixes {suffixes}")


def _from_folder(folder: Path, shape: tuple, pre: Preprocess, limit: int | None, seed: int, where: str,
                 progress: Progress | None) -> Dataset:
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        raise DataError(f"{where}: holds images/ and labels/ as a YOLO data set does, but no data.yaml; write one "
                        f"naming the splits and classes (train: images/train, val: images/val, names: [...]) "
                        f"rather than reading images/ and labels/ as two classes")
    files, index, labels = _scan(folder, where)
    audio = [f.suffix.lower() in AUDIO_SUFFIXES for f in files]
    if any(audio) and not all(audio):
        raise DataError(f"{where}: holds both images ({audio.count(False)}) and WAV files ({audio.count(True)}); "
                        f"expected one kind per folder")
    keep = _subset(len(files), limit, seed)
    if keep is not None:
        files = [files[i] for i in keep]
        index = None if index is None else [index[i] for i in keep]
    if None in shape:
        raise DataError(f"{where}: files need a fixed model input shape to be fitted to, got {shape}; "
                        f"pass the sizes the model expects")
    load = _load_wavs if audio[0] else _load_images
    x = load(files, shape, pre, where, progress)
    y = None if index is None else np.asarray(index, dtype=np.int64)
    return Dataset(x, y, labels, str(folder))


def _image_input(shape: tuple, pre: Preprocess, where: str) -> tuple[int, int, int]:
    """(height, width, channels) of a model input that image files can be fitted to, after
    checking the preprocessing recipe against it."""
    if pre.kind == "audio":
        raise DataError(f"{where}: holds images but the preprocessing recipe is for audio (kind='audio')")
    if len(shape) == 2:
        (height, width), channels = shape, 1
    elif len(shape) == 3 and shape[2] in (1, 3):
        height, width, channels = shape
    else:
        raise DataError(f"{where}: image files need a model input of shape (height, width, channels) with 1 or 3 "
                        f"channels, or (height, width) for grayscale; got {shape}. For other layouts pass a "
                        f"callable that returns the preprocessed arrays")
    if pre.size is not None and tuple(pre.size) != (height, width):
        raise DataError(f"{where}: the preprocessing recipe resizes to {tuple(pre.size)} but the model input is "
                        f"{(height, width)} (height, width); fix the recipe's size")
    if pre.color == "gray" and channels == 3:
        raise DataError(f"{where}: the preprocessing recipe is grayscale but the model input has 3 channels")
    for name, values in (("mean", pre.mean), ("std", pre.std)):
        if len(values) not in (1, channels):
            raise DataError(f"{where}: the preprocessing recipe's {name} has {len(values)} values; expected 1 or "
                            f"{channels} (one per channel of the model input {shape})")
    return height, width, channels


def _load_images(files: list[Path], shape: tuple, pre: Preprocess, where: str,
                 progress: Progress | None) -> np.ndarray:
    height, width, channels = _image_input(shape, pre, where)

    from edge_runtime.deps import require

    tf = require("tensorflow", "decoding image files")
    x = np.empty((len(files), *shape), dtype=np.float32)
    for i, file in enumerate(files):
        # TensorFlow decodes GIF and BMP to color only: read those as RGB and convert to gray
        via_rgb = channels == 1 and file.suffix.lower() in (".gif", ".bmp")
        try:
            pixels = tf.io.decode_image(file.read_bytes(), channels=3 if via_rgb else channels, expand_animations=False)
        except tf.errors.OpError as exc:
            raise DataError(f"{where}: cannot decode image {file}: {exc.message}") from None
        if via_rgb:
            pixels = tf.image.rgb_to_grayscale(pixels)
        pixels = tf.image.resize(pixels, (height, width)).numpy()
        if pre.color == "bgr":
            pixels = pixels[..., ::-1]
        x[i] = pre.normalize(pixels).reshape(shape)
        if progress is not None:
            progress(i + 1, len(files))
    return x


# sample width in bytes -> (numpy dtype of the little-endian samples, full scale)
_PCM = {1: (np.uint8, 128.0), 2: (np.dtype("<i2"), 32768.0), 4: (np.dtype("<i4"), 2147483648.0)}


def _read_wav(file: Path, where: str) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1] of shape [frames, channels], sample rate in Hz) of a PCM WAV."""
    try:
        with wave.open(str(file), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"{where}: cannot read WAV file {file} ({exc}); expected uncompressed PCM audio "
                        f"with 8, 16, 24 or 32-bit samples") from None
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend 24 -> 32 bits
        samples = ints.astype(np.float32) / np.float32(8388608.0)
    elif width in _PCM:
        dtype, full = _PCM[width]
        ints = np.frombuffer(raw, dtype).astype(np.float64)
        samples = ((ints - 128.0 if width == 1 else ints) / full).astype(np.float32)
    else:
        raise DataError(f"{where}: WAV file {file} has {8 * width}-bit samples; expected 8, 16, 24 or 32-bit PCM")
    return samples.reshape(-1, channels), rate


def _resample(samples: np.ndarray, rate_hz: int, target_hz: int) -> np.ndarray:
    """Linear interpolation from ``rate_hz`` to ``target_hz`` (no anti-alias filter)."""
    if rate_hz == target_hz or len(samples) == 0:
        return samples
    count = max(1, round(len(samples) * target_hz / rate_hz))
    t = np.arange(count) * (rate_hz / target_hz)
    return np.interp(t, np.arange(len(samples)), samples).astype(np.float32)


def _load_wavs(files: list[Path], shape: tuple, pre: Preprocess, where: str,
               progress: Progress | None) -> np.ndarray:
    if pre.kind == "image":
        raise DataError(f"{where}: holds WAV files but the preprocessing recipe is for images (kind='image')")
    if not pre.sample_rate_hz:
        raise DataError(f"{where}: WAV files need the model's sample rate; pass "
                        f"Preprocess(kind='audio', sample_rate_hz=..., num_samples=...)")
    size = math.prod(shape)
    x = np.empty((len(files), *shape), dtype=np.float32)
    for i, file in enumerate(files):
        frames, rate = _read_wav(file, where)
        clip = pre.fit_audio(_resample(frames.mean(axis=1), rate, pre.sample_rate_hz))
        if clip.size != size:
            raise DataError(f"{where}: {file} gives {clip.size} samples at {pre.sample_rate_hz} Hz but the model "
                            f"input {shape} holds {size}; set the recipe's num_samples={size} to cut or pad every "
                            f"clip, or pass a callable that computes the model's features")
        x[i] = clip.reshape(shape)
        if progress is not None:
            progress(i + 1, len(files))
    return x

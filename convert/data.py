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
when such data is asked for, soxr only to resample WAV files; everything else needs numpy and
the stdlib.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from convert.data_files import (  # noqa: F401  (AUDIO_SUFFIXES, IMAGE_SUFFIXES, image_input: re-exported)
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    choose_split,
    from_folder,
    image_input,
    split_classes,
    split_folders,
)
from convert.dataset import DataError, Dataset, Progress, subset_indices  # noqa: F401  (re-exported)
from edge_runtime.metadata import Preprocess

# The TFLite post-training quantization guide suggests a few hundred representative samples;
# past that, calibration only gets slower while the activation ranges it records barely move.
DEFAULT_CALIBRATION_SAMPLES = 200
# Top-1 accuracy on 2000 samples has a standard error of at most sqrt(0.25 / 2000) = 1.1 points,
# enough to tell variants apart by about one point, and it evaluates in reasonable time on 2 cores.
DEFAULT_EVAL_SAMPLES = 2000

Source = Union[str, os.PathLike, Callable[[], Any]]  # a path, or a callable that returns the data
FASHION_MNIST = "fashion-mnist"  # the name that reads Fashion-MNIST (train.datasets)

_WHAT_TO_PASS = ("a folder of images or WAV files, a .npy array, an .npz archive with an array 'x', a YOLO "
                 "data.yaml (or its folder), a COCO folder (annotations/instances_<split>.json or "
                 "Roboflow's <split>/_annotations.coco.json), "
                 f"'{FASHION_MNIST}', or a callable")


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
      mean and std are in the model's channel order). A labeled folder may come in splits:
      ``train/``, ``val/`` (or ``valid/``, ``validation/``) and ``test/``, each with one
      sub-folder per class, numbered by the sorted class names of all splits together.
    * a folder of WAV files (PCM, 8/16/24/32-bit, read with the stdlib ``wave``): channels are
      averaged to mono, and a file whose rate differs from ``preprocess.sample_rate_hz`` is
      resampled to it with soxr (high quality, band-limited, as the speech app resamples; from
      the ``[convert]`` extra). ``preprocess.fit_audio`` cuts or pads it, and it is reshaped to
      ``input_shape``.
    * a ``.npy`` array, or an ``.npz`` archive with an array ``x``, an optional ``y`` of class
      indices and an optional ``labels`` array of names.
    * a YOLO ``data.yaml`` (or a folder holding one) or a COCO folder
      (``annotations/instances_<split>.json``, or Roboflow's ``<split>/_annotations.coco.json``),
      read by :func:`train.detection_data.load_detection_set` (which refuses malformed labels).
      Images are decoded by OpenCV and fitted with :func:`train.detection_data.fit_image`:
      ``preprocess.resize`` (stretch or letterbox with ``pad_value``) to ``input_shape``, then
      ``color`` and ``normalize``. ``y`` is None;
      :attr:`Dataset.detections` and :attr:`Dataset.geometries` carry the boxes for mAP.
    * the name ``"fashion-mnist"`` (a ``str``; pass ``./fashion-mnist`` for a folder of that
      name): :func:`train.datasets.load_fashion_mnist`, 28x28 uint8 pixels made float and
      normalized with ``preprocess.normalize``, a channel of 1 added where the input has one,
      labelled with the data set's ten class names.
    * a callable taking no arguments that returns an array, a tuple ``(x, y)``, or any other
      iterable of arrays, each one sample or a batch of samples (or ``[batch]``, as a TFLite
      representative dataset yields them).

    ``split`` names the split of a detection set (matched literally, e.g. ``"val2017"``), of a
    split image folder or of Fashion-MNIST (``"train"``/``"test"``); None picks the training
    split for calibration (``"train"``, or the one split starting with it, else as for
    evaluation) and the held-out one for evaluation (``"test"``, else ``"val"``). Other sources have no splits and refuse one.

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
    if path.is_dir() and (splits := split_folders(path)):  # train/ val/ test/, each of class folders
        chosen = choose_split(splits, split, what, where)
        return from_folder(splits[chosen], shape, pre, limit, seed, f"{where} ({chosen}/)", progress,
                           classes=split_classes(splits))
    _no_split(split, where)
    if path.is_dir():
        return from_folder(path, shape, pre, limit, seed, where, progress)
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
                        f"COCO detection sets, image folders in train/ val/ test/, and '{FASHION_MNIST}'")


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
    keep = subset_indices(len(images), limit, seed)
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
    height, width, channels = image_input(shape, pre, where)
    prefer = ("train", *EVALUATION_SPLITS) if what == "calibration" else EVALUATION_SPLITS
    try:
        detections = load_detection_set(path, split, prefer)
    except DetectionDataError as exc:
        raise DataError(f"{where}: {exc}") from None
    keep = subset_indices(len(detections), limit, seed)
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

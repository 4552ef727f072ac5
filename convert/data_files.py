"""Folders of files as calibration or evaluation data: images (decoded by TensorFlow) or PCM WAV
files, unlabeled (files directly inside) or labeled (one sub-folder per class), fitted to the
model input by its :class:`~edge_runtime.metadata.Preprocess` recipe.

A labeled folder may also come in splits: ``train/``, ``val/`` (or ``valid/``, Roboflow's name,
or ``validation/``) and ``test/``, each with one sub-folder per class (:func:`split_folders`).
Class indices then follow the sorted class names of all splits together
(:func:`split_classes`), so a split that lacks a class still numbers the others as the model
trained on ``train/`` does."""
from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from convert.dataset import DataError, Dataset, Progress, subset_indices
from edge_runtime.metadata import Preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
AUDIO_SUFFIXES = (".wav",)
VALIDATION_FOLDERS = ("val", "valid", "validation")
SPLIT_NAMES = ("train", *VALIDATION_FOLDERS, "test")


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(folder: Path) -> dict[str, Path]:
    """{split: folder} of a folder laid out in splits (a sub-folder named in SPLIT_NAMES); {} for
    any other folder. Each split is read as a folder of its own (class sub-folders, or files
    directly inside for unlabeled data). Other sub-folders, or image or WAV files beside the
    splits, are an error: read as classes they would silently turn the split names into labels."""
    subs = _subfolders(folder)
    splits = {p.name: p for p in subs if p.name in SPLIT_NAMES}
    if not splits:
        return {}
    others = [p.name for p in subs if p.name not in SPLIT_NAMES] + [p.name for p in folder.iterdir() if _supported(p)]
    if others:
        raise DataError(f"{folder}: holds the splits {', '.join(s + '/' for s in splits)} and also {sorted(others)[:5]}; "
                        f"expected only train/, val/ (or valid/, validation/) and test/ there (move the rest out, "
                        f"or pass one split's folder)")
    return splits


def split_classes(splits: dict[str, Path]) -> tuple[str, ...]:
    """The class names of every split together, sorted: index i is class i in each split."""
    return tuple(sorted({c.name for folder in splits.values() for c in _subfolders(folder)}))


def choose_split(splits: dict[str, Path], split: str | None, what: str, where: str) -> str:
    """The split to read: ``split`` (``"val"`` also finds ``valid/`` or ``validation/``), else
    ``train`` for calibration and training, ``test`` then the validation folder for evaluation."""
    if split is not None:
        wanted = VALIDATION_FOLDERS if split in VALIDATION_FOLDERS else (split,)
        found = [s for s in wanted if s in splits]
        if not found:
            raise DataError(f"{where}: has no split {split!r}; its splits are {list(splits)}")
        return found[0]
    held_out = ("test", *VALIDATION_FOLDERS)
    for name in (("train", *held_out) if what in ("calibration", "training") else held_out):
        if name in splits and any(p.is_file() for p in splits[name].rglob("*")):  # an empty split is passed over
            return name
    raise DataError(f"{where}: has the splits {list(splits)}, none of them with files for {what} data; expected "
                    f"files in test/ or val/ (or valid/, validation/), or name the split to read")


def _supported(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES


def _scan(folder: Path, where: str, classes: tuple[str, ...] | None = None
          ) -> tuple[list[Path], list[int] | None, tuple[str, ...]]:
    """(files, class index per file or None, labels) of a folder, in a fixed order. ``classes``
    (a split's: all the splits' names) numbers the class sub-folders instead of their own order."""
    entries = sorted(folder.iterdir())
    if not entries:
        raise DataError(f"{where}: the folder is empty; expected image or WAV files, directly inside "
                        f"(unlabeled) or in one sub-folder per class")
    top = [p for p in entries if _supported(p)]
    classes_found = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    per_class = [sorted(p for p in c.rglob("*") if _supported(p)) for c in classes_found]
    if top and any(per_class):
        raise DataError(f"{where}: holds {len(top)} files at its top level and more in sub-folders; expected "
                        f"either only files (unlabeled) or only class sub-folders (labeled)")
    if top:
        return top, None, ()
    if any(per_class):
        files = [f for group in per_class for f in group]
        names = classes if classes is not None else tuple(c.name for c in classes_found)
        index = [names.index(c.name) for c, group in zip(classes_found, per_class) for _ in group]
        return files, index, names
    suffixes = sorted({p.suffix.lower() or "(none)" for p in folder.rglob("*") if p.is_file()})
    raise DataError(f"{where}: has no supported files (expected {', '.join(IMAGE_SUFFIXES + AUDIO_SUFFIXES)}); "
                    f"found files with suffixes {suffixes}")


def from_folder(folder: Path, shape: tuple, pre: Preprocess, limit: int | None, seed: int, where: str,
                progress: Progress | None, classes: tuple[str, ...] | None = None) -> Dataset:
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        raise DataError(f"{where}: holds images/ and labels/ as a YOLO data set does, but no data.yaml; write one "
                        f"naming the splits and classes (train: images/train, val: images/val, names: [...]) "
                        f"rather than reading images/ and labels/ as two classes")
    files, index, labels = _scan(folder, where, classes)
    audio = [f.suffix.lower() in AUDIO_SUFFIXES for f in files]
    if any(audio) and not all(audio):
        raise DataError(f"{where}: holds both images ({audio.count(False)}) and WAV files ({audio.count(True)}); "
                        f"expected one kind per folder")
    keep = subset_indices(len(files), limit, seed)
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


def image_input(shape: tuple, pre: Preprocess, where: str) -> tuple[int, int, int]:
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
    height, width, channels = image_input(shape, pre, where)

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
    """A whole clip from ``rate_hz`` to ``target_hz`` with soxr (high quality, band-limited), as the
    speech app resamples its input, so a model sees the same audio in evaluation as on the device."""
    if rate_hz == target_hz or len(samples) == 0:
        return samples
    from edge_runtime.deps import require

    soxr = require("soxr", f"resampling WAV files from {rate_hz} Hz to the model's {target_hz} Hz")
    return soxr.resample(np.asarray(samples, np.float32), rate_hz, target_hz, quality="HQ").astype(np.float32)


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

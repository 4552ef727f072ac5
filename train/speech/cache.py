"""The on-disk cache of synthesized speech and built clip sets: content-hash keys (a changed option
or engine version never reuses a stale entry), atomic writes (a reader sees a whole entry or none),
plain ``.npy``/``.npz`` files read without pickle."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

# Bump when the synthesis or clip-building code changes what a key's entry holds.
CODE_VERSION = "speech-data-2"
INT16_SCALE = 32767.0  # the same scale as apps.speech.frontend.to_int16


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edgepilot/kws`` (``~/.cache/edgepilot/kws``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepilot" / "kws"


def resolve(cache_dir) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def key(*parts) -> str:
    """A stable hex digest of JSON-serialisable ``parts`` (floats written with repr precision)."""
    text = json.dumps([CODE_VERSION, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


CHUNK_ROWS = 1024  # rows converted at a time: no full-size float64 temporaries of a large clip set


def quantize(audio: np.ndarray) -> np.ndarray:
    """Float audio rounded onto the int16 grid, as int16 (clipped to [-1, 1])."""
    audio = np.asarray(audio)
    if audio.ndim != 2:
        return np.clip(np.round(audio.astype(np.float64) * INT16_SCALE), -32767, 32767).astype(np.int16)
    out = np.empty(audio.shape, np.int16)
    for i in range(0, len(audio), CHUNK_ROWS):
        out[i:i + CHUNK_ROWS] = quantize(audio[i:i + CHUNK_ROWS].ravel()).reshape(-1, audio.shape[1])
    return out


def dequantize(samples: np.ndarray) -> np.ndarray:
    """int16 samples as float32 in [-1, 1] (the inverse of :func:`quantize` on its grid)."""
    if samples.ndim != 2:
        return samples.astype(np.float32) / np.float32(INT16_SCALE)
    out = np.empty(samples.shape, np.float32)
    for i in range(0, len(samples), CHUNK_ROWS):
        out[i:i + CHUNK_ROWS] = dequantize(samples[i:i + CHUNK_ROWS].ravel()).reshape(-1, samples.shape[1])
    return out


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_array(path: Path, array: np.ndarray) -> None:
    _atomic(Path(path), lambda handle: np.save(handle, array, allow_pickle=False))


def load_array(path: Path) -> np.ndarray | None:
    """The array at ``path``, or None when there is no entry."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    _atomic(Path(path), lambda handle: np.savez(handle, **arrays))


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        return None

"""Keyword models behind one small interface: ``step(frames) -> probabilities per keyword``.

:func:`open_model` takes
- a folder from ``edgepilot train kws`` (its streaming int8 model, ``kws_stream_int8.tflite``),
- one of our .tflite / .onnx files: a streaming stateful model (input [1, stride_frames, 40]) or
  a non-streaming window model (input [1, window_frames, 40], run every stride_frames frames on
  the last window_frames frames, zeros before the stream has that many), both described by
  edgepilot metadata (task "keyword_spotting"),
- a microWakeWord model: ``NAME.tflite`` with its JSON manifest ``NAME.json`` beside it.

microWakeWord models run exactly as pymicro-wakeword runs them: without XNNPACK (its int8
kernels round differently from the reference ones), inputs quantized with
``round(x / scale + zero_point)`` in float64, one step per 3 frames, the uint8 output
dequantized; their state (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE) lives in the interpreter
and :meth:`KeywordModel.reset` rebuilds it."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.speech.frontend import BINS

DEFAULT_FOLDER_MODEL = "kws_stream_int8.tflite"
DEFAULT_THRESHOLD = 0.5
DEFAULT_REFRACTORY_S = 1.0
LABELS_BEFORE_WORDS = ("_silence_", "_unknown_")


class NotAKeywordModel(ValueError):
    """A model file that is not a keyword spotter (one line naming the file)."""


@dataclass(frozen=True)
class ModelSpec:
    """What the spotter needs to know about a keyword model.

    ``keywords``: the event names, in the order of :meth:`KeywordModel.step`'s output;
    ``stride_frames``: frames consumed per step; ``thresholds``: per keyword, fire when the
    smoothed probability exceeds it; ``smoothing_steps``: mean over this many steps (no score
    before that many); ``refractory_s``: a keyword stays quiet this long after it fired;
    ``receptive_frames``: how many past frames determine an output (replayed after a VAD gap)."""

    path: str
    kind: str  # "micro", "stream" or "window"
    keywords: tuple[str, ...]
    stride_frames: int
    thresholds: tuple[float, ...]
    smoothing_steps: int = 1
    refractory_s: float = DEFAULT_REFRACTORY_S
    receptive_frames: int = 98

    def __post_init__(self):
        if len(self.thresholds) != len(self.keywords):
            raise ValueError(f"{self.path}: {len(self.thresholds)} thresholds for {len(self.keywords)} keywords")
        if self.stride_frames < 1 or self.smoothing_steps < 1:
            raise ValueError(f"{self.path}: stride_frames and smoothing_steps must be >= 1, got "
                             f"{self.stride_frames} and {self.smoothing_steps}")


class KeywordModel:
    """One keyword model. ``step(frames [stride_frames, 40] float32) -> [probability per keyword]``
    (a list of floats: the spotter works on a handful of them with plain Python arithmetic)."""

    spec: ModelSpec

    def __init__(self, model, spec: ModelSpec):
        self.model, self.spec = model, spec

    @property
    def accelerator(self) -> str:
        return self.model.accelerator

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.model.warnings

    def step(self, frames: np.ndarray) -> list[float]:
        raise NotImplementedError

    def reset(self) -> None:
        self.model.reset()


class MicroWakeWordModel(KeywordModel):
    """A microWakeWord streaming model: int8 [1, 3, 40] in, uint8 [1, 1] out."""

    def __init__(self, model, spec: ModelSpec):
        super().__init__(model, spec)
        q = model.inputs[0].quantization
        self._scale, self._zero = float(q.scale), float(q.zero_point)
        out = model.outputs[0].quantization
        self._out_scale, self._out_zero = float(out.scale), int(out.zero_point)
        info = np.iinfo(model.inputs[0].dtype)
        self._lo, self._hi = float(info.min), float(info.max)
        shape = (1, spec.stride_frames, BINS)
        self._real = np.zeros(shape, np.float64)  # buffers reused every step (this is the hot path)
        self._quantized = np.zeros(shape, model.inputs[0].dtype)

    def step(self, frames: np.ndarray) -> list[float]:
        # pymicro-wakeword's quantization, to the bit: round(x / scale + zero_point) in float64,
        # half to even; features lie in 0..26, i.e. inside int8 at this scale (clipped all the same)
        q = self._real
        np.divide(frames.reshape(q.shape), self._scale, out=q)
        np.add(q, self._zero, out=q)
        np.rint(q, out=q)
        np.minimum(q, self._hi, out=q)
        np.maximum(q, self._lo, out=q)
        np.copyto(self._quantized, q, casting="unsafe")
        raw = self.model.run(self._quantized, raw=True)[0]
        return [(int(raw.flat[0]) - self._out_zero) * self._out_scale]  # exact: k / 256


class StreamingModel(KeywordModel):
    """An edgepilot streaming model: [1, stride_frames, 40] -> [1, K] softmax over the labels."""

    def __init__(self, model, spec: ModelSpec, word_index: np.ndarray):
        super().__init__(model, spec)
        self._words = word_index
        self._shape = (1, spec.stride_frames, BINS)

    def step(self, frames: np.ndarray) -> list[float]:
        out = self.model.run(np.ascontiguousarray(frames, np.float32).reshape(self._shape))[0]
        return out.reshape(-1)[self._words].tolist()


class WindowModel(KeywordModel):
    """An edgepilot non-streaming model run on the last ``window_frames`` frames every step."""

    def __init__(self, model, spec: ModelSpec, word_index: np.ndarray, window_frames: int):
        super().__init__(model, spec)
        self._words = word_index
        self._window = np.zeros((1, window_frames, BINS), np.float32)

    def step(self, frames: np.ndarray) -> list[float]:
        n = len(frames)
        self._window[0, :-n] = self._window[0, n:]
        self._window[0, -n:] = frames
        out = self.model.run(self._window)[0]
        return out.reshape(-1)[self._words].tolist()

    def reset(self) -> None:
        self._window[:] = 0.0


def manifest_of(path: Path) -> dict | None:
    """The microWakeWord manifest beside ``path`` (same stem, .json), or None."""
    candidate = path.with_suffix(".json")
    if not candidate.is_file():
        return None
    try:
        value = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise NotAKeywordModel(f"{candidate}: the manifest beside {path.name} is not readable JSON: {exc}") from None
    return value if isinstance(value, dict) and value.get("type") == "micro" else None


def resolve(path: str | os.PathLike) -> Path:
    """The model file for a path: a training folder's default model, or the file itself."""
    p = Path(path).expanduser()
    if p.is_dir():
        candidate = p / DEFAULT_FOLDER_MODEL
        if not candidate.is_file():
            present = sorted(f.name for f in p.iterdir() if f.suffix in (".tflite", ".onnx"))
            raise NotAKeywordModel(
                f"{p}: no {DEFAULT_FOLDER_MODEL} in this folder; expected a folder from `edgepilot train kws` "
                f"(or give one of its model files; model files here: {present or 'none'})")
        return candidate
    return p


def open_model(path: str | os.PathLike, threads: int = 1, device: str = "cpu") -> KeywordModel:
    """The :class:`KeywordModel` for a folder or a file (see the module doc)."""
    import edge_runtime

    p = resolve(path)
    manifest = manifest_of(p) if p.suffix != ".onnx" else None
    if manifest is not None:
        model = edge_runtime.load(p, device=device, threads=threads, xnnpack=False)
        return _micro(p, model, manifest)
    model = edge_runtime.load(p, device=device, threads=threads)
    info = model.info
    expected = ("expected a model from `edgepilot train kws` (metadata task 'keyword_spotting') or a microWakeWord "
                f"model with its manifest {p.with_suffix('.json').name} beside it")
    if info is None:
        raise NotAKeywordModel(f"{p}: not a keyword spotter: it carries no edgepilot metadata; {expected}")
    if info.task != "keyword_spotting":
        raise NotAKeywordModel(f"{p}: not a keyword spotter: its metadata says task {info.task!r}; {expected}")
    return _ours(p, model, info)


def _micro(p: Path, model, manifest: dict) -> MicroWakeWordModel:
    micro = manifest.get("micro") or {}
    try:
        cutoff = float(micro["probability_cutoff"])
        window = int(micro["sliding_window_size"])
    except (KeyError, TypeError, ValueError):
        raise NotAKeywordModel(f"{p.with_suffix('.json')}: a microWakeWord manifest needs micro.probability_cutoff "
                               f"and micro.sliding_window_size; it holds {sorted(micro)}") from None
    ins, outs = model.inputs, model.outputs
    if (len(ins) != 1 or len(ins[0].shape) != 3 or ins[0].shape[2] != BINS or not ins[0].quantized
            or len(outs) != 1 or int(np.prod(outs[0].shape)) != 1 or not outs[0].quantized):
        raise NotAKeywordModel(
            f"{p}: not a microWakeWord model: expected one quantized input [1, stride, {BINS}] and one quantized "
            f"output [1, 1], got inputs {[list(s.shape) for s in ins]} and outputs {[list(s.shape) for s in outs]}")
    name = Path(str(manifest.get("model") or p.name)).stem  # pymicro-wakeword's id
    spec = ModelSpec(str(p), "micro", (name,), int(ins[0].shape[1]), (cutoff,), window, DEFAULT_REFRACTORY_S,
                     receptive_frames=100)
    return MicroWakeWordModel(model, spec)


def _extra_int(p: Path, extra: dict, key: str, default: int | None) -> int:
    value = extra.get(key)
    if value is None:
        if default is None:
            raise NotAKeywordModel(f"{p}: keyword-spotting metadata without extra[{key!r}]")
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise NotAKeywordModel(f"{p}: metadata extra[{key!r}] = {value!r}; expected a whole number") from None
    if number < 1:
        raise NotAKeywordModel(f"{p}: metadata extra[{key!r}] = {number}; expected >= 1")
    return number


def _ours(p: Path, model, info) -> KeywordModel:
    extra, labels = dict(info.extra), tuple(info.labels)
    try:
        words = tuple(json.loads(extra["words"])) if "words" in extra else tuple(labels[len(LABELS_BEFORE_WORDS):])
    except ValueError:
        raise NotAKeywordModel(f"{p}: metadata extra['words'] is not a JSON list: {extra['words']!r}") from None
    missing = [w for w in words if w not in labels]
    if not words or missing:
        raise NotAKeywordModel(f"{p}: keyword metadata names words {list(words)} but its labels are {list(labels)}")
    stride = _extra_int(p, extra, "stride_frames", None)
    window = _extra_int(p, extra, "window_frames", None)
    smoothing = _extra_int(p, extra, "smoothing_steps", 1)
    try:
        refractory = float(extra.get("refractory_s", DEFAULT_REFRACTORY_S))
    except ValueError:
        raise NotAKeywordModel(f"{p}: metadata extra['refractory_s'] = {extra['refractory_s']!r}; expected seconds") from None
    streaming = str(extra.get("streaming", "true")).lower() == "true"
    thresholds = tuple(float(info.thresholds.get(w, DEFAULT_THRESHOLD)) for w in words)
    ins, outs = model.inputs, model.outputs
    frames = stride if streaming else window
    shape_ok = (len(ins) == 1 and len(ins[0].shape) == 3 and ins[0].shape[1] in (frames, -1)
                and ins[0].shape[2] == BINS and len(outs) == 1 and outs[0].shape[-1] == len(labels))
    if not shape_ok:
        raise NotAKeywordModel(
            f"{p}: a {'streaming' if streaming else 'window'} keyword model must take [1, {frames}, {BINS}] and give "
            f"[1, {len(labels)}] (one probability per label); it takes {[list(s.shape) for s in ins]} and gives "
            f"{[list(s.shape) for s in outs]}")
    index = np.array([labels.index(w) for w in words])
    spec = ModelSpec(str(p), "stream" if streaming else "window", words, stride, thresholds, smoothing, refractory,
                     receptive_frames=window)
    if streaming:
        return StreamingModel(model, spec, index)
    return WindowModel(model, spec, index, window)

"""The streaming keyword spotter: audio blocks of any size in, :class:`Detection` events out.

    spotter = Spotter(open_model("kws/"))
    for block in blocks:                      # int16 (or float) mono 16 kHz, any length
        for d in spotter.process(block):
            print(d.keyword, d.score, d.t)
    spotter.reset()                           # before the next, unrelated stream

Per step (``stride_frames`` frames, 30 ms for every model here): the model's probabilities,
smoothed as the mean of the last ``smoothing_steps`` of them (0 until there are that many, as
microWakeWord does), compared with each keyword's threshold (fires when the mean *exceeds* it,
as microWakeWord does). After firing, that keyword alone stays quiet until both ``refractory_s``
seconds of stream time have passed and its score has fallen below half its threshold (some
models hold a high, wavering score for over a second after the word), so one utterance gives
one event while a different keyword said right after still fires. ``t`` is the end of the audio the firing step had seen: frames consumed x
10 ms + the 20 ms tail of the last 30 ms window. Everything is counted in stream samples, never
in wall time, so the events are identical whatever the block size."""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from apps.common.timing import LoopTimer
from apps.speech.frontend import (
    BINS,
    SAMPLE_RATE_HZ,
    STEP_SAMPLES,
    WINDOW_SAMPLES,
    StreamingFrontend,
)
from apps.speech.models import KeywordModel

_TAIL_S = (WINDOW_SAMPLES - STEP_SAMPLES) / SAMPLE_RATE_HZ  # 20 ms
REARM_FRACTION = 0.5  # a keyword fires again only after its score fell below this part of its threshold


@dataclass(frozen=True)
class Detection:
    """A keyword heard: ``score`` = the smoothed probability that fired, ``t`` = seconds from the
    start of the stream to the end of the audio that fired."""

    keyword: str
    score: float
    t: float

    def to_dict(self) -> dict:
        return {"keyword": self.keyword, "score": round(self.score, 6), "t": round(self.t, 3)}

    def __str__(self) -> str:
        return f"{self.t:8.2f} s  {self.keyword}  ({self.score:.3f})"


@dataclass(frozen=True)
class SpotterStats:
    """Counts over every stream a spotter processed. ``compute_s`` covers frontend, gate and
    model; ``rtf`` = compute_s / audio seconds."""

    seconds: float
    steps: int
    vad_skipped: int
    compute_s: float
    model_s: float  # time in the model's steps (the replays after a gap excluded)
    replayed: int  # steps run again after a voice-gate gap to rebuild the model's state
    detections: dict
    latency_ms_p50: float
    latency_ms_p99: float

    @property
    def rtf(self) -> float:
        return self.compute_s / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(rtf=round(self.rtf, 6), seconds=round(self.seconds, 3), compute_s=round(self.compute_s, 4),
                    model_s=round(self.model_s, 4),
                    latency_ms_p50=round(self.latency_ms_p50, 4), latency_ms_p99=round(self.latency_ms_p99, 4))
        return data


def _per_keyword(value, keywords: tuple[str, ...], default: tuple[float, ...], what: str) -> tuple[float, ...]:
    """None -> ``default``; a number -> every keyword; a mapping -> those keywords."""
    if value is None:
        return default
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(keywords))
        if unknown:
            raise ValueError(f"{what} for unknown keyword(s) {unknown}; the model's keywords are {list(keywords)}")
        return tuple(float(value.get(k, d)) for k, d in zip(keywords, default))
    return (float(value),) * len(keywords)


class Spotter:
    """Frontend + keyword model + smoothing + thresholds + refractory period.

    Args:
        model: a :class:`~apps.speech.models.KeywordModel`.
        thresholds: None (the model's calibrated operating point), one probability for all
            keywords, or ``{keyword: probability}``.
        refractory_s / smoothing_steps: override the model's.
        gate: an optional voice-activity gate (:class:`apps.speech.vad.VadGate`); steps it
            calls non-speech skip the model.
        on_step: called as ``on_step(t, scores)`` after every model step (tests, plots).
    """

    def __init__(self, model: KeywordModel, thresholds=None, refractory_s: float | None = None,
                 smoothing_steps: int | None = None, gate=None, on_step: Callable | None = None):
        spec = model.spec
        self.model, self.spec = model, spec
        self.keywords = spec.keywords
        self.thresholds = _per_keyword(thresholds, spec.keywords, spec.thresholds, "threshold")
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must lie in 0..1, got {list(self.thresholds)}")
        self._rearm = tuple(t * REARM_FRACTION for t in self.thresholds)
        self.refractory_s = spec.refractory_s if refractory_s is None else float(refractory_s)
        if self.refractory_s < 0:
            raise ValueError(f"refractory period must be >= 0 s, got {self.refractory_s}")
        self.smoothing_steps = spec.smoothing_steps if smoothing_steps is None else int(smoothing_steps)
        if self.smoothing_steps < 1:
            raise ValueError(f"smoothing steps must be >= 1, got {self.smoothing_steps}")
        self.stride = spec.stride_frames
        self.gate = gate
        self.on_step = on_step
        self.frontend = StreamingFrontend()
        self._pending = np.zeros((self.stride, BINS), np.float32)
        self._probs: list = [None] * self.smoothing_steps  # the last probabilities, a ring of lists
        self.timer = LoopTimer()
        self._totals = {"samples": 0, "steps": 0, "vad_skipped": 0, "compute_s": 0.0, "model_s": 0.0, "replayed": 0}
        # frames of the model's receptive field, replayed when the voice gate opens again
        history = -(-max(model.spec.receptive_frames, self.stride) // self.stride) * self.stride
        self._history = np.zeros((history, BINS), np.float32) if gate is not None else None
        self.counts: Counter = Counter()
        self._start_stream()

    def _start_stream(self) -> None:
        self._n_pending = 0
        self._n_probs = 0
        self._n_history = 0
        self._gap = False
        self.frames = 0  # frames handed to the model (or the gate) in this stream
        self.samples = 0  # samples received in this stream
        self._quiet_until = [-math.inf] * len(self.keywords)
        self._armed = [True] * len(self.keywords)

    def reset(self) -> None:
        """Start a new, unrelated stream: stream time back to 0, model state and frontend fresh."""
        self.frontend.reset()
        self.model.reset()
        if self.gate is not None:
            self.gate.reset()
        self._start_stream()

    @property
    def t(self) -> float:
        """Seconds of audio received in this stream."""
        return self.samples / SAMPLE_RATE_HZ

    def process(self, block: np.ndarray) -> list[Detection]:
        """Feed a block of 16 kHz mono samples (int16, or float in [-1, 1]); the detections it completed."""
        start = time.perf_counter()
        block = np.asarray(block).reshape(-1)
        self.samples += len(block)
        self._totals["samples"] += len(block)
        if self.gate is not None:
            self.gate.push(block)
        frames = self.frontend.push(block)
        found: list[Detection] = []
        i, n = 0, len(frames)
        while i < n:
            take = min(self.stride - self._n_pending, n - i)
            self._pending[self._n_pending:self._n_pending + take] = frames[i:i + take]
            self._n_pending += take
            i += take
            if self._n_pending == self.stride:
                self._n_pending = 0
                self._step(found)
        self._totals["compute_s"] += time.perf_counter() - start
        return found

    def _step(self, found: list) -> None:
        self.frames += self.stride
        t = self.frames * STEP_SAMPLES / SAMPLE_RATE_HZ + _TAIL_S
        if self.gate is not None:
            self._remember(self._pending)
            if not self.gate.speech_at(t):
                self._totals["vad_skipped"] += 1
                self._gap = True
                return
            if self._gap:
                self._replay(t)
                self._gap = False
        self._run(self._pending, t, found)

    def _remember(self, frames: np.ndarray) -> None:
        h, n = self._history, len(frames)
        h[:-n] = h[n:]
        h[-n:] = frames
        self._n_history = min(len(h), self._n_history + n)

    def _replay(self, t: float) -> None:
        """The gate opens after a gap: a fresh model state, rebuilt from the remembered frames
        before this step (no events while replaying)."""
        self.model.reset()
        self._n_probs = 0
        earlier = self._history[len(self._history) - self._n_history:len(self._history) - self.stride]
        for i in range(0, len(earlier), self.stride):
            self._run(earlier[i:i + self.stride], t, None)

    def _run(self, frames: np.ndarray, t: float, found: list | None) -> None:
        """One model step on ``frames`` ending at stream time ``t``; ``found`` None: state only (a replay)."""
        # plain Python floats from here on: a handful of keywords, and numpy's per-call cost
        # would exceed the arithmetic (this runs 33 times a second per stream)
        t0 = time.perf_counter()
        probs = self.model.step(frames)
        t1 = time.perf_counter()
        n = self.smoothing_steps
        self._probs[self._n_probs % n] = probs
        self._n_probs += 1
        if found is None:
            self._totals["replayed"] += 1
            return
        totals = self._totals
        totals["steps"] += 1
        totals["model_s"] += t1 - t0
        self.timer.record(t1, t1 - t0)
        if self._n_probs < n:
            scores = [0.0] * len(probs)
        elif n == 1:
            scores = probs
        else:  # the exact sum of the window, then one division (as statistics.mean rounds)
            scores = [sum(column) / n for column in zip(*self._probs)]
        if self.on_step is not None:
            self.on_step(t, scores)
        for k, score in enumerate(scores):
            if score < self._rearm[k]:
                self._armed[k] = True
            elif score > self.thresholds[k] and self._armed[k] and t >= self._quiet_until[k]:
                self._quiet_until[k] = t + self.refractory_s
                self._armed[k] = False
                keyword = self.keywords[k]
                self.counts[keyword] += 1
                found.append(Detection(keyword, float(score), round(t, 6)))

    def stats(self) -> SpotterStats:
        timing = self.timer.summary()
        return SpotterStats(
            seconds=self._totals["samples"] / SAMPLE_RATE_HZ, steps=self._totals["steps"],
            vad_skipped=self._totals["vad_skipped"], compute_s=self._totals["compute_s"],
            model_s=self._totals["model_s"], replayed=self._totals["replayed"],
            detections={k: self.counts.get(k, 0) for k in self.keywords},
            latency_ms_p50=timing.latency_ms_p50, latency_ms_p99=timing.latency_ms_p99)

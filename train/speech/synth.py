"""Speech from the engines as :class:`Utterance` values: 16 kHz mono float32 (on the int16 grid),
leading and trailing silence trimmed (energy based) so the audio is the word, cached on disk by a
content hash of (engine, voice, variant, speed, pitch, text, engine version)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.speech import cache
from train.speech.engines import Request, Voice, pitch_rate, render

SAMPLE_RATE_HZ = 16000
TRIM_FRAME_SAMPLES = 160  # 10 ms
TRIM_BELOW_PEAK_DB = 40.0  # a frame is speech when its energy is within this of the loudest frame
TRIM_FLOOR_DBFS = -65.0  # ... and above this
TRIM_MARGIN_SAMPLES = 80  # kept either side of the first and last speech frame


@dataclass(frozen=True, eq=False)
class Utterance:
    """One spoken text: ``audio`` 16 kHz mono float32 in [-1, 1], silence trimmed."""

    audio: np.ndarray = field(repr=False)
    text: str
    voice: str  # Voice.id
    speed: float
    pitch: float  # semitones from the voice's own

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE_HZ


def resample(audio: np.ndarray, from_hz: float, to_hz: float = SAMPLE_RATE_HZ) -> np.ndarray:
    import soxr

    if from_hz == to_hz:
        return np.asarray(audio, np.float32)
    return soxr.resample(np.asarray(audio, np.float32), from_hz, to_hz, quality="HQ").astype(np.float32)


def speech_bounds(audio: np.ndarray) -> tuple[int, int]:
    """(start, end) samples of the speech in ``audio`` by frame energy; (0, 0) when silent."""
    n = len(audio) // TRIM_FRAME_SAMPLES
    if n == 0:
        return 0, 0
    frames = audio[:n * TRIM_FRAME_SAMPLES].astype(np.float64).reshape(n, TRIM_FRAME_SAMPLES)
    energy_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    threshold = max(energy_db.max() - TRIM_BELOW_PEAK_DB, TRIM_FLOOR_DBFS)
    loud = np.flatnonzero(energy_db >= threshold)
    if len(loud) == 0 or energy_db.max() < TRIM_FLOOR_DBFS:
        return 0, 0
    start = max(0, loud[0] * TRIM_FRAME_SAMPLES - TRIM_MARGIN_SAMPLES)
    end = min(len(audio), (loud[-1] + 1) * TRIM_FRAME_SAMPLES + TRIM_MARGIN_SAMPLES)
    return int(start), int(end)


def trim(audio: np.ndarray) -> np.ndarray:
    start, end = speech_bounds(audio)
    return audio[start:end]


def _entry(folder: Path, request: Request) -> Path:
    digest = cache.key("utterance", *request.key_parts)
    return folder / "utterances" / digest[:2] / f"{digest}.npy"


def synthesize_requests(requests, *, cache_dir=None, jobs: int = 2, progress=None) -> list[Utterance]:
    """Speak each :class:`Request` (in order), from the cache where it has them."""
    requests = list(requests)
    folder = cache.resolve(cache_dir)
    stored = [cache.load_array(_entry(folder, r)) for r in requests]
    missing = [i for i, a in enumerate(stored) if a is None]
    if progress is not None:
        progress(len(requests) - len(missing), len(requests))
    if missing:
        base = len(requests) - len(missing)
        step = (lambda done, total: progress(base + done, len(requests))) if progress is not None else None
        rendered = render([requests[i] for i in missing], jobs=jobs, progress=step)
        for i, (rate, audio) in zip(missing, rendered):
            samples = cache.quantize(trim(resample(audio, pitch_rate(requests[i], rate))))
            if len(samples) == 0:
                raise RuntimeError(f"{requests[i].voice.id} spoke nothing for {requests[i].text!r}")
            cache.save_array(_entry(folder, requests[i]), samples)
            stored[i] = samples
    return [Utterance(cache.dequantize(a), r.text, r.voice.id, float(r.speed), float(r.pitch))
            for a, r in zip(stored, requests)]


def synthesize(texts, voices, *, cache_dir=None, speeds=(1.0,), pitches=(0.0,), jobs: int = 2,
               progress=None) -> list[Utterance]:
    """Every text in every voice at every speed and pitch (texts outermost, then voices, speeds,
    pitches). ``speeds``: rate factors (1.0 = the voice's own); ``pitches``: semitones."""
    if isinstance(texts, str):
        texts = [texts]
    voice_list = [v if isinstance(v, Voice) else Voice.parse(v) for v in voices]
    requests = [Request(v, t, float(s), float(p))
                for t, v, s, p in itertools.product(texts, voice_list, speeds, pitches)]
    return synthesize_requests(requests, cache_dir=cache_dir, jobs=jobs, progress=progress)

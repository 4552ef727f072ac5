"""Long audio for measuring a keyword spotter on running speech.

- :func:`running_speech`: sentences of the fortunes, each said by one voice, most with a keyword
  said inside (between two parts of the sentence, by the same voice at the same speed and pitch),
  with the keywords' exact times (:class:`SpokenWord`): the demo WAV, positives in context, latency.
- :func:`negative_stream`: sentences with no keyword (nor a word containing or sounding like one),
  over noise, babble and music at SNRs from a range: false accepts per hour."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.speech import text
from train.speech.augment import REFERENCE_DBFS, active_rms
from train.speech.backgrounds import Backgrounds, make_backgrounds
from train.speech.engines import Request, Voice, voices as machine_voices
from train.speech.synth import SAMPLE_RATE_HZ, synthesize_requests

SPEED_RANGE = (0.85, 1.2)
PITCH_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class SpokenWord:
    """A keyword said in a stream, from ``start_s`` to ``end_s`` (its trimmed audio)."""

    word: str
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    def contains(self, t: float, tolerance_s: float = 0.0) -> bool:
        return self.start_s - tolerance_s <= t <= self.end_s + tolerance_s


def _voice_list(voices) -> list[Voice]:
    found = list(machine_voices() if voices is None else voices)
    if not found:
        raise ValueError("expected at least one voice, got none")
    return [v if isinstance(v, Voice) else Voice.parse(v) for v in found]


def _level(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return audio * (10 ** ((REFERENCE_DBFS + rng.uniform(-8.0, 4.0)) / 20) / max(active_rms(audio), 1e-9))


def _pause(rng: np.random.Generator, low_s: float, high_s: float) -> np.ndarray:
    return np.zeros(int(rng.uniform(low_s, high_s) * SAMPLE_RATE_HZ), np.float32)


def _sentence_count(seconds: float) -> int:
    return max(1, int(seconds / 4.0) + 1)  # a sentence with its pause lasts ~3-6 s


def running_speech(words, *, voices=None, seconds: float, seed: int = 0, cache_dir=None,
                   keyword_share: float = 0.75, jobs: int = 2,
                   part: str | None = None) -> tuple[np.ndarray, tuple[SpokenWord, ...]]:
    """``seconds`` of sentences (16 kHz float32) with keywords said inside ``keyword_share`` of them,
    and the keywords' times. Only keywords wholly inside the stream are listed. ``part`` limits
    the filler sentences to one part of the fortunes (see :func:`text.fortune_sentences`)."""
    words = tuple(words)
    voice_list = _voice_list(voices)
    rng = np.random.default_rng([seed, 0x5EED])
    filler = text.fortune_sentences(words, part)
    n = int(round(seconds * SAMPLE_RATE_HZ))
    pieces, found, at = [], [], 0
    while at < n:  # batches of sentences until the stream is long enough
        plans, requests = [], []
        for _ in range(_sentence_count((n - at) / SAMPLE_RATE_HZ)):
            voice = voice_list[int(rng.integers(len(voice_list)))]
            speed, pitch = round(float(rng.uniform(*SPEED_RANGE)), 2), round(float(rng.uniform(*PITCH_RANGE)), 1)
            tokens = text.pick(filler, 1, rng)[0].split()
            cut = int(rng.integers(1, len(tokens)))
            word = words[int(rng.integers(len(words)))] if rng.random() < keyword_share else None
            said = [" ".join(tokens[:cut])] + ([text.spoken(word)] if word else []) + [" ".join(tokens[cut:])]
            plans.append((said, word))
            requests += [Request(voice, s, speed, pitch) for s in said]
        spoken = iter(synthesize_requests(requests, cache_dir=cache_dir, jobs=jobs))
        for said, word in plans:
            utts = [next(spoken).audio for _ in said]
            gain = 10 ** ((REFERENCE_DBFS + rng.uniform(-8.0, 4.0)) / 20) / max(active_rms(np.concatenate(utts)), 1e-9)
            for k, audio in enumerate(utts):
                if word is not None and k == 1 and at + len(audio) <= n:
                    found.append(SpokenWord(word, at / SAMPLE_RATE_HZ, (at + len(audio)) / SAMPLE_RATE_HZ))
                pause = _pause(rng, 0.08, 0.3) if k + 1 < len(utts) else _pause(rng, 0.4, 1.2)
                pieces += [(audio * gain).astype(np.float32), pause]
                at += len(audio) + len(pause)
    stream = np.concatenate(pieces)[:n] if pieces else np.zeros(0, np.float32)
    stream = np.pad(stream, (0, n - len(stream)))
    return np.clip(stream, -1.0, 1.0).astype(np.float32), tuple(found)


def negative_stream(words, *, seconds: float, seed: int = 0, cache_dir=None, voices=None,
                    snr_db=(5.0, 25.0), segment_s=(5.0, 20.0), jobs: int = 2, part: str = "heldout",
                    backgrounds: Backgrounds | None = None) -> np.ndarray:
    """``seconds`` of running speech without any keyword (16 kHz float32): fortunes sentences by
    random voices, over a background (white/pink/brown noise, babble or music) that changes every
    ``segment_s`` seconds, at an SNR drawn from ``snr_db`` for each segment. ``part`` "train" draws
    from the quarter of the sentences training may use (hard negatives for ``train kws``),
    "heldout" (the default, for measuring false accepts) from the rest. ``backgrounds``: default
    :func:`~train.speech.backgrounds.make_backgrounds` of ``voices`` (six music and six babble tracks)."""
    words = tuple(words)
    voice_list = _voice_list(voices)
    rng = np.random.default_rng([seed, 0x2E6])
    sentences = text.fortune_sentences(words, part)
    n = int(round(seconds * SAMPLE_RATE_HZ))
    pieces, at = [], 0
    while at < n:  # batches of sentences until the stream is long enough
        requests = [Request(voice_list[int(rng.integers(len(voice_list)))], s,
                            round(float(rng.uniform(*SPEED_RANGE)), 2), round(float(rng.uniform(*PITCH_RANGE)), 1))
                    for s in text.pick(sentences, _sentence_count((n - at) / SAMPLE_RATE_HZ), rng)]
        for u in synthesize_requests(requests, cache_dir=cache_dir, jobs=jobs):
            pieces += [_level(u.audio, rng).astype(np.float32), _pause(rng, 0.3, 1.5)]
            at += len(pieces[-2]) + len(pieces[-1])
    speech = np.concatenate(pieces).astype(np.float64)
    speech = speech[:n]
    if backgrounds is None:
        backgrounds = make_backgrounds(words, voice_list, seed=seed, cache_dir=cache_dir, babble_tracks=6,
                                       music_tracks=6, part=part)
    speech_rms = 10 ** (REFERENCE_DBFS / 20)
    out, at = speech.copy(), 0
    while at < n:
        length = min(n - at, int(rng.uniform(*segment_s) * SAMPLE_RATE_HZ))
        _kind, noise = backgrounds.sample(length, rng)
        out[at:at + length] += noise * speech_rms / 10 ** (rng.uniform(*snr_db) / 20)
        at += length
    return np.clip(out, -1.0, 1.0).astype(np.float32)

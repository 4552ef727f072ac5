"""Background sounds made here, nothing downloaded: white, pink and brown noise, babble (several TTS
voices of other text at once) and simple music (chords, bass and a melody of notes with harmonics
and envelopes, sometimes a drum)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from train.speech.synth import SAMPLE_RATE_HZ

NOISES = ("white", "pink", "brown")
# How make_backgrounds makes its tracks: part of a clip build's cache key.
RULE = "music + babble of the fortunes' train part (2)"
KINDS = (*NOISES, "babble", "music")


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f^0 (white), 1/f (pink) or 1/f^2 (brown) power spectrum."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}.get(kind)
    if exponent is None:
        raise ValueError(f"noise kind {kind!r}: expected one of {', '.join(NOISES)}")
    white = rng.standard_normal(max(n, 2))
    if exponent:
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(len(white), 1.0 / SAMPLE_RATE_HZ)
        f[0] = f[1]
        spectrum *= np.maximum(f, 20.0) ** (-exponent / 2)  # flat below 20 Hz: no drifting offset
        white = np.fft.irfft(spectrum, len(white))
    white = white[:n] - white[:n].mean()
    return (white / (np.sqrt(np.mean(white ** 2)) + 1e-12)).astype(np.float32)


def _note(freq_hz: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = max(1, int(seconds * SAMPLE_RATE_HZ))
    t = np.arange(n) / SAMPLE_RATE_HZ
    tone = np.zeros(n)
    rolloff = rng.uniform(0.8, 2.0)
    for k in range(1, 9):
        if freq_hz * k < 7000:
            tone += np.sin(2 * np.pi * freq_hz * k * t + rng.uniform(0, 2 * np.pi)) / k ** rolloff
    attack = min(n, int(rng.uniform(0.005, 0.08) * SAMPLE_RATE_HZ))
    envelope = np.exp(-t * rng.uniform(0.5, 6.0))
    envelope[:attack] *= np.linspace(0, 1, attack, endpoint=False)
    release = min(n, int(0.02 * SAMPLE_RATE_HZ))
    envelope[n - release:] *= np.linspace(1, 0, release)
    return tone * envelope


def _add(out: np.ndarray, start: int, x: np.ndarray) -> None:
    x = x[:max(0, len(out) - start)]
    out[start:start + len(x)] += x


def music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A few bars of synthesized music, unit RMS: a chord progression in a random key and tempo,
    a bass line, a melody, sometimes a noise-burst drum."""
    n = int(seconds * SAMPLE_RATE_HZ)
    out = np.zeros(n + SAMPLE_RATE_HZ)
    beat_s = 60.0 / rng.uniform(60, 160)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.6 else (0, 2, 3, 5, 7, 8, 10)
    degrees = rng.choice(7, size=4)
    drum = rng.random() < 0.5
    t, bar = 0.0, 0
    while t < seconds:
        degree = int(degrees[bar % 4])
        chord = [root * 2 ** ((scale[(degree + k) % 7] + 12 * ((degree + k) // 7)) / 12) for k in (0, 2, 4)]
        start = int(t * SAMPLE_RATE_HZ)
        for f in chord:
            _add(out, start, 0.3 * _note(f * 2, 4 * beat_s, rng))
        for b in range(4):
            s = int((t + b * beat_s) * SAMPLE_RATE_HZ)
            _add(out, s, 0.5 * _note(chord[0] / 2, beat_s, rng))
            if rng.random() < 0.8:
                mel = 0.4 * _note(chord[0] * 4 * 2 ** (scale[int(rng.integers(7))] / 12), beat_s / 2, rng)
                m = s + int(rng.integers(2)) * int(beat_s / 2 * SAMPLE_RATE_HZ)
                _add(out, m, mel)
            if drum:
                hit = rng.standard_normal(int(0.08 * SAMPLE_RATE_HZ)) * np.exp(-np.arange(int(0.08 * SAMPLE_RATE_HZ)) / 300)
                _add(out, s, 0.3 * hit)
        t += 4 * beat_s
        bar += 1
    out = out[:n]
    return (out / (np.sqrt(np.mean(out ** 2)) + 1e-12)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Backgrounds:
    """Unit-RMS background tracks to cut from; noise is made on demand."""

    music: tuple[np.ndarray, ...] = field(repr=False)
    babble: tuple[np.ndarray, ...] = field(repr=False)

    def __post_init__(self):
        if not self.music or not self.babble:
            raise ValueError(f"Backgrounds: expected music and babble tracks, got {len(self.music)} "
                             f"and {len(self.babble)}")

    def digest(self) -> str:
        """A hash of every track (part of a clip build's cache key)."""
        import hashlib

        h = hashlib.sha256()
        for track in (*self.music, *self.babble):
            h.update(np.ascontiguousarray(track, np.float32).tobytes())
        return h.hexdigest()[:32]

    def sample(self, n: int, rng: np.random.Generator, kind: str | None = None) -> tuple[str, np.ndarray]:
        """(kind, ``n`` unit-RMS samples): a random kind of :data:`KINDS` unless ``kind`` is given;
        tracks shorter than ``n`` repeat."""
        kind = KINDS[int(rng.integers(len(KINDS)))] if kind is None else kind
        if kind in NOISES:
            return kind, colored_noise(kind, n, rng)
        tracks = {"music": self.music, "babble": self.babble}.get(kind)
        if tracks is None:
            raise ValueError(f"background kind {kind!r}: expected one of {', '.join(KINDS)}")
        track = tracks[int(rng.integers(len(tracks)))]
        reps = -(-(n + len(track)) // len(track))
        start = int(rng.integers(len(track)))
        piece = np.tile(track, reps)[start:start + n]
        return kind, (piece / (np.sqrt(np.mean(piece ** 2)) + 1e-12)).astype(np.float32)


def make_backgrounds(keywords, voices, *, seed: int = 0, cache_dir=None, music_tracks: int = 12,
                     babble_tracks: int = 12, track_seconds: float = 8.0, talkers=(3, 7),
                     part: str | None = "train", progress=None) -> Backgrounds:
    """Music tracks and babble tracks (``talkers`` voices at once, reading fortunes without any of
    ``keywords``, from ``part`` of them: the training part by default, so the sentences false
    accepts are measured on are never heard in training) for :func:`train.speech.augment.augment`."""
    from train.speech import text
    from train.speech.engines import Request
    from train.speech.synth import synthesize_requests

    rng = np.random.default_rng([seed, 0xBA6])
    tracks = [music(track_seconds, rng) for _ in range(music_tracks)]
    voices = list(voices)
    sentences = text.fortune_sentences(keywords, part)
    plan = [[(voices[int(rng.integers(len(voices)))], text.pick(sentences, 3, rng))
             for _ in range(int(rng.integers(talkers[0], talkers[1] + 1)))] for _ in range(babble_tracks)]
    requests = [Request(v, s, float(np.round(rng.uniform(0.9, 1.2), 2))) for track in plan for v, ss in track for s in ss]
    spoken = iter(synthesize_requests(requests, cache_dir=cache_dir,
                                      progress=(lambda d, t: progress("babble", d, t)) if progress else None))
    babble = []
    n = int(track_seconds * SAMPLE_RATE_HZ)
    for track in plan:
        mix = np.zeros(n)
        for _voice, ss in track:
            talk = np.concatenate([np.concatenate([next(spoken).audio, np.zeros(int(0.2 * SAMPLE_RATE_HZ), np.float32)])
                                   for _ in ss])
            talk = np.roll(np.resize(talk, n), int(rng.integers(n)))
            mix += talk / (np.sqrt(np.mean(talk ** 2)) + 1e-12) * rng.uniform(0.5, 1.0)
        babble.append((mix / (np.sqrt(np.mean(mix ** 2)) + 1e-12)).astype(np.float32))
    return Backgrounds(tuple(tracks), tuple(babble))

"""Augmentation that turns a dozen synthetic speakers into many.

On an utterance, before it is placed in a clip: :func:`perturb` (speed 0.85-1.15 by resampling,
which moves the pitch with it). On a clip, keeping its length (so a trainer can call it on the fly):
:func:`augment`, one random chain of room reverberation (simulated impulse responses: direct path,
early reflections, an exponentially decaying noise tail with RT60 0.1-0.8 s), background noise,
babble or music at an SNR from a range, band-limiting (telephone 300-3400 Hz, cheap microphones)
and gain (-20..+6 dB around a speech level of -26 dBFS, peaks limited to a little clipping)."""
from __future__ import annotations

import numpy as np

from train.speech.backgrounds import Backgrounds
from train.speech.synth import SAMPLE_RATE_HZ, resample

REFERENCE_DBFS = -26.0  # speech level (RMS over its active frames) that gain is relative to
MAX_PEAK = 1.12  # louder peaks are scaled down to this, then clipped at 1: a little clipping


def active_rms(audio: np.ndarray, frame: int = 160) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest (the speech, not the pauses)."""
    n = len(audio) // frame
    if n == 0:
        return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))
    power = np.mean(audio[:n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    loud = power[power >= power.max() * 1e-3]
    return float(np.sqrt(loud.mean() + 1e-20))


def perturb(audio: np.ndarray, rng: np.random.Generator, speed=(0.85, 1.15)) -> np.ndarray:
    """The utterance ``speed`` times faster (and higher) by resampling."""
    factor = rng.uniform(*speed)
    return resample(audio, SAMPLE_RATE_HZ * factor, SAMPLE_RATE_HZ)


def room_impulse(rng: np.random.Generator, rt60_s=(0.1, 0.8), drr_db=(-2.0, 12.0)) -> np.ndarray:
    """A simulated room impulse response: the direct path at sample 0 (the speech does not move),
    4-10 early reflections within 3-40 ms, then decaying noise reaching -60 dB at RT60, darker as
    it decays (air and wall absorption); direct-to-reverberant ratio from ``drr_db``."""
    rt60 = rng.uniform(*rt60_s)
    n = int(min(1.2 * rt60, 1.0) * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    onset = int(0.003 * SAMPLE_RATE_HZ)
    tail[:onset] = 0.0
    for _ in range(int(rng.integers(4, 11))):
        tail[int(rng.uniform(0.003, 0.04) * SAMPLE_RATE_HZ)] += rng.choice((-1, 1)) * rng.uniform(2, 8)
    from scipy.signal import lfilter

    smooth = rng.uniform(0.2, 0.7)  # one-pole low-pass of the tail
    tail = lfilter([1 - smooth], [1, -smooth], tail)
    drr = 10 ** (rng.uniform(*drr_db) / 10)
    tail *= np.sqrt(1.0 / (drr * np.sum(tail ** 2) + 1e-20))
    tail[0] = 1.0
    return tail


def reverberate(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(audio, room_impulse(rng))[:len(audio)]


def band_limit(audio: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """``telephone`` (300-3400 Hz band-pass) or ``cheap_mic`` (high-pass 100-300 Hz, low-pass 4-7
    kHz, a resonance of +3..+9 dB at 1.5-4 kHz)."""
    from scipy.signal import butter, iirpeak, lfilter, sosfilt

    kind = kind or ("telephone" if rng.random() < 0.5 else "cheap_mic")
    if kind == "telephone":
        sos = butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
        return sosfilt(sos, audio)
    if kind != "cheap_mic":
        raise ValueError(f"band-limit kind {kind!r}: expected 'telephone' or 'cheap_mic'")
    sos = np.concatenate([butter(2, rng.uniform(100, 300), btype="highpass", fs=SAMPLE_RATE_HZ, output="sos"),
                          butter(4, rng.uniform(4000, 7000), btype="lowpass", fs=SAMPLE_RATE_HZ, output="sos")])
    filtered = sosfilt(sos, audio)
    b, a = iirpeak(rng.uniform(1500, 4000), rng.uniform(1.0, 3.0), fs=SAMPLE_RATE_HZ)
    boost = 10 ** (rng.uniform(3, 9) / 20) - 1
    return filtered + boost * lfilter(b, a, filtered)


def set_level(audio: np.ndarray, level_dbfs: float, reference_rms: float | None = None) -> np.ndarray:
    """``audio`` scaled so its active RMS (or ``reference_rms``) sits at ``level_dbfs``, peaks limited
    to :data:`MAX_PEAK` and clipped to [-1, 1], as float32."""
    rms = active_rms(audio) if reference_rms is None else reference_rms
    out = audio * (10 ** (level_dbfs / 20) / max(rms, 1e-9))
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > MAX_PEAK:
        out = out * (MAX_PEAK / peak)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def augment(audio: np.ndarray, rng: np.random.Generator, *, backgrounds: Backgrounds,
            snr_db=(0.0, 25.0), gain_db=(-20.0, 6.0), p_reverb: float = 0.5, p_background: float = 0.85,
            p_band_limit: float = 0.3) -> np.ndarray:
    """One random augmentation chain over a clip (same length, float32 in [-1, 1]): reverberation,
    a background at ``snr_db`` (relative to the speech's active RMS), band-limiting, then gain."""
    x = np.asarray(audio, np.float64)
    speech_rms = active_rms(x)
    if rng.random() < p_reverb:
        x = reverberate(x, rng)
        x *= speech_rms / max(active_rms(x), 1e-12)
    if rng.random() < p_background:
        _kind, noise = backgrounds.sample(len(x), rng)
        x = x + noise * (speech_rms / 10 ** (rng.uniform(*snr_db) / 20))
    if rng.random() < p_band_limit:
        x = band_limit(x, rng)
    return set_level(x, REFERENCE_DBFS + rng.uniform(*gain_db), reference_rms=speech_rms)


def background_clip(n: int, rng: np.random.Generator, backgrounds: Backgrounds,
                    level_dbfs=(-65.0, -25.0), p_near_silence: float = 0.2) -> np.ndarray:
    """A ``_silence_`` clip: noise, babble-free background (noise or music) or near silence
    (-90..-65 dBFS noise), sometimes band-limited."""
    if rng.random() < p_near_silence:
        kind, level = ("white", "pink", "brown")[int(rng.integers(3))], rng.uniform(-90.0, -65.0)
    else:
        kind, level = ("white", "pink", "brown", "music")[int(rng.integers(4))], rng.uniform(*level_dbfs)
    _, x = backgrounds.sample(n, rng, kind=kind)
    x = x.astype(np.float64)
    if rng.random() < 0.3:
        x = band_limit(x, rng)
    return set_level(x, level, reference_rms=float(np.sqrt(np.mean(x ** 2)) + 1e-12))

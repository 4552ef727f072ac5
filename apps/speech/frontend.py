"""The audio frontend every keyword model here is fed by: the TFLite-Micro audio frontend
(30 ms windows every 10 ms, 40 filterbank channels, noise reduction and PCAN gain control), the
one microWakeWord's models were trained on, through ``pymicro-features``.

Training (:func:`features` on a whole clip) and streaming (:class:`StreamingFrontend` on blocks of
any size) share this one implementation: both feed the C frontend exactly 160 samples at a time
from a fresh state, so a clip gives the same frames whichever way it arrives (a parity test proves
it). The frontend adapts (noise estimate, gain), so a frame depends on the audio before it."""
from __future__ import annotations

import numpy as np

SAMPLE_RATE_HZ = 16000
STEP_SAMPLES = 160  # 10 ms
WINDOW_SAMPLES = 480  # 30 ms
BINS = 40

# What a model's metadata records about the frontend it was trained on (``extra["frontend"]``).
SETTINGS = {
    "name": "micro_frontend",
    "implementation": "pymicro-features (TFLite-Micro audio frontend)",
    "sample_rate_hz": SAMPLE_RATE_HZ,
    "window_ms": 30,
    "step_ms": 10,
    "bins": BINS,
    "noise_reduction": True,
    "pcan": True,
    "log_scale": True,
}


def _micro_frontend():
    try:
        from pymicro_features import MicroFrontend
    except ImportError as exc:
        raise ImportError(
            "keyword spotting needs the audio frontend from pymicro-features: pip install 'edgepilot[apps]'"
        ) from exc
    return MicroFrontend()


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (clipped) or int16 samples, as int16.

    Scale 32767, not the PCM convention 32768 of :func:`apps.speech.audio.to_int16`, on purpose:
    train.speech keeps its float audio on the int16 grid with scale 32767 (train/speech/cache.py),
    so training features see exactly the int16 samples a WAV of that audio holds. Apps hand
    this frontend int16 (WAV files, resampled audio and the microphone all arrive as int16), so
    only training audio takes the float path."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples
    return np.clip(np.round(samples.astype(np.float32) * 32767.0), -32768, 32767).astype(np.int16)


class StreamingFrontend:
    """Feature frames from audio arriving in blocks of any size (16 kHz mono).

    ``push(block)`` returns the frames completed by that block, shape [n, 40] float32; samples
    short of the next 10 ms step wait for the next block."""

    def __init__(self):
        self._frontend = _micro_frontend()
        self._pending = np.zeros(0, dtype=np.int16)
        self.frames = 0  # frames produced since the last reset

    def reset(self) -> None:
        self._frontend.reset()
        self._pending = np.zeros(0, dtype=np.int16)
        self.frames = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        samples = np.concatenate([self._pending, to_int16(block).ravel()])
        usable = len(samples) - len(samples) % STEP_SAMPLES
        data = samples[:usable].tobytes()
        out = []
        for start in range(0, len(data), 2 * STEP_SAMPLES):
            result = self._frontend.process_samples(data[start:start + 2 * STEP_SAMPLES])
            if result.features:
                out.append(result.features)
        self._pending = samples[usable:]
        self.frames += len(out)
        return np.asarray(out, dtype=np.float32).reshape(len(out), BINS)


def features(samples: np.ndarray) -> np.ndarray:
    """All frames of one clip from a fresh frontend, [frames, 40] float32 (98 for one second)."""
    return StreamingFrontend().push(samples)


def frames_for(seconds: float) -> int:
    """Frames a fresh frontend gives for ``seconds`` of audio."""
    samples = int(round(seconds * SAMPLE_RATE_HZ))
    return 0 if samples < WINDOW_SAMPLES else 1 + (samples - WINDOW_SAMPLES) // STEP_SAMPLES

"""A voice-activity gate: Silero VAD (ONNX, through edge_runtime) decides which model steps run.

Silero VAD reads 512-sample chunks (32 ms at 16 kHz) with the 64 samples before each as
context, and carries a [2, 1, 128] state. A chunk is speech when its probability reaches
``threshold``, and stays so until the probability falls below ``threshold - 0.15`` (Silero's own
hysteresis). A keyword-model step ending at stream time t runs when a speech chunk ended in
(t - hangover_s, t]: the hangover keeps the model running through the end of a word, where
keywords fire. Every decision depends on stream position only, so detections stay the same
whatever the block size.

When the gate opens again after skipped steps, the spotter resets the keyword model and replays
the frames of its receptive field, so the model's state is what it would have been had it run
all along over that stretch (exact for models whose receptive field that covers).

The gate costs compute too (about 0.3 ms per 32 ms chunk here): it pays off for keyword models
that cost more than that per 30 ms step, not for microWakeWord's tiny ones. The summary reports
both sides: model time saved, gate time spent, and the net."""
from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from apps.speech.frontend import SAMPLE_RATE_HZ

CHUNK_SAMPLES = 512
CONTEXT_SAMPLES = 64
ASSET_NAME = "silero_vad.onnx"


def default_model_path() -> Path:
    """Where ``python scripts/assets.py fetch`` caches Silero VAD (``$EDGEPILOT_ASSETS`` or
    ~/.cache/edgepilot/assets); nothing is downloaded at run time."""
    env = os.environ.get("EDGEPILOT_ASSETS")
    folder = Path(env).expanduser() if env else Path.home() / ".cache" / "edgepilot" / "assets"
    return folder / ASSET_NAME


class VadGate:
    """Silero VAD over the stream; :meth:`speech_at` answers for a model step."""

    def __init__(self, path: str | os.PathLike | None = None, threshold: float = 0.5, hangover_s: float = 0.5,
                 threads: int = 1):
        import edge_runtime

        if not 0.0 < threshold < 1.0:
            raise ValueError(f"--vad-threshold must lie between 0 and 1, got {threshold}")
        model_path = Path(path) if path else default_model_path()
        if not model_path.is_file():
            raise ValueError(f"--vad: no Silero VAD model at {model_path}; fetch it once with "
                             "`python scripts/assets.py fetch` or give --vad PATH/silero_vad.onnx")
        self.model = edge_runtime.load(model_path, device="cpu", threads=threads)
        names = [s.name for s in self.model.inputs]
        if names != ["input", "state", "sr"]:
            raise ValueError(f"--vad {model_path}: expected a Silero VAD model with inputs ['input', 'state', 'sr'], "
                             f"got {names}")
        self.path, self.threshold, self.hangover_s = str(model_path), threshold, hangover_s
        self._hangover = round(hangover_s * SAMPLE_RATE_HZ)
        self._sr = np.array(SAMPLE_RATE_HZ, np.int64)
        self.chunks = 0
        self.speech_chunks = 0
        self.compute_s = 0.0
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._buffer = np.zeros(CONTEXT_SAMPLES + CHUNK_SAMPLES, np.float32)  # context + the chunk being filled
        self._filled = 0
        self._samples = 0  # samples of this stream seen
        self._speech = False
        self._speech_ends: deque[int] = deque()  # end sample of each recent speech chunk

    def push(self, block: np.ndarray) -> None:
        """Feed the stream's samples (int16 or float, 16 kHz mono), in any block size."""
        start = time.perf_counter()
        x = np.asarray(block).reshape(-1)
        x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
        i = 0
        while i < len(x):
            take = min(CHUNK_SAMPLES - self._filled, len(x) - i)
            at = CONTEXT_SAMPLES + self._filled
            self._buffer[at:at + take] = x[i:i + take]
            self._filled += take
            self._samples += take
            i += take
            if self._filled == CHUNK_SAMPLES:
                self._chunk()
        self.compute_s += time.perf_counter() - start

    def _chunk(self) -> None:
        out = self.model.run(self._buffer.reshape(1, -1), self._state, self._sr)
        probability, self._state = float(out[0].reshape(-1)[0]), out[1]
        self.chunks += 1
        if probability >= self.threshold:
            self._speech = True
        elif probability < self.threshold - 0.15:
            self._speech = False
        if self._speech:
            self.speech_chunks += 1
            self._speech_ends.append(self._samples)
        self._buffer[:CONTEXT_SAMPLES] = self._buffer[-CONTEXT_SAMPLES:]
        self._filled = 0

    def speech_at(self, t: float) -> bool:
        """True when a speech chunk ended within the hangover before stream time ``t`` (seconds)."""
        end = round(t * SAMPLE_RATE_HZ)
        ends = self._speech_ends
        while ends and ends[0] <= end - self._hangover:
            ends.popleft()
        return bool(ends) and ends[0] <= end

    def report(self, stats) -> dict:
        """The gate's share of the summary: steps skipped, model time saved, gate time spent."""
        total = stats.steps + stats.vad_skipped
        step_s = stats.model_s / stats.steps if stats.steps else 0.0
        saved = stats.vad_skipped * step_s
        replay = stats.replayed * step_s
        return {"model": self.path, "threshold": self.threshold, "hangover_s": self.hangover_s,
                "chunks": self.chunks, "speech_chunks": self.speech_chunks,
                "skipped_pct": round(100.0 * stats.vad_skipped / total, 2) if total else 0.0,
                "replayed_steps": stats.replayed, "saved_s": round(saved, 4), "vad_s": round(self.compute_s, 4),
                "net_saved_s": round(saved - replay - self.compute_s, 4)}

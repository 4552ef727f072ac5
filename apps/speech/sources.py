"""Where audio comes from: WAV files (:class:`WavFiles`) or a microphone through PortAudio
(:class:`Microphone`). Both yield :class:`Stream` objects whose ``blocks()`` give int16 mono
16 kHz blocks; one stream per file (the spotter is reset between them), one for the microphone.

The microphone is opened at 16 kHz mono int16 when the device takes it, else at its own rate
and resampled with soxr. PortAudio's callback only copies blocks into a queue; input overflows
(audio lost because the reader fell behind) are counted from the callback's status flags."""
from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from apps.speech.audio import AudioError, StreamResampler, Wav, read_wav
from apps.speech.frontend import SAMPLE_RATE_HZ


@dataclass(frozen=True)
class Stream:
    """One unrelated stretch of audio: ``name`` (a file path, or None for the microphone) and
    a function giving its blocks."""

    name: str | None
    blocks: Callable[[], Iterator[np.ndarray]]


class WavFiles:
    """Every file decoded up front, so a bad one is reported before any output."""

    live = False

    def __init__(self, paths: list[str], block_samples: int = 1600):
        if not paths:
            raise AudioError("--wav needs at least one file")
        self.wavs: list[Wav] = [read_wav(p) for p in paths]
        self.block_samples = block_samples
        self.overflows = 0

    def describe(self) -> str:
        if len(self.wavs) == 1:
            w = self.wavs[0]
            return f"{w.path} ({w.rate_hz} Hz, {w.channels} ch, {w.bits}-bit {w.encoding}, {w.seconds:.2f} s)"
        return f"{len(self.wavs)} WAV files"

    def streams(self) -> Iterator[Stream]:
        for wav in self.wavs:
            yield Stream(wav.path, lambda wav=wav: self._blocks(wav))

    def _blocks(self, wav: Wav) -> Iterator[np.ndarray]:
        samples = wav.mono16k()
        for i in range(0, len(samples), self.block_samples):
            yield samples[i:i + self.block_samples]

    def close(self) -> None:
        pass


class Capture:
    """PortAudio's input callback: copies each block into a queue and counts input overflows
    (blocks PortAudio had to drop because they were not read in time)."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.overflows = 0

    def __call__(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.queue.put(indata.copy())


def _device_arg(device: str | None):
    """sounddevice's device argument: None (the default input), an index, or a name fragment."""
    if device in (None, "", "default"):
        return None
    return int(device) if device.isdigit() else device


class Microphone:
    """A PortAudio input stream. ``duration_s`` stops after that much audio (None: until Ctrl-C)."""

    live = True

    def __init__(self, device: str | None = None, block_s: float = 0.1, duration_s: float | None = None):
        from edge_runtime import deps

        self.sd = deps.require("sounddevice", "listening to a microphone (--mic)")
        self.device = _device_arg(device)
        self.block_s, self.duration_s = block_s, duration_s
        self.capture = Capture()
        self._stream = None
        self.info = self._query()
        self.rate_hz, self.channels, self.dtype = self._settings()

    def _query(self) -> dict:
        sd = self.sd
        try:
            info = sd.query_devices(self.device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            try:
                names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
            except sd.PortAudioError:
                names = []
            wanted = "the default input device" if self.device is None else f"input device {self.device!r}"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AudioError(f"--mic: no microphone: {wanted} is not available ({reason}); "
                             f"input devices PortAudio sees: {names or 'none'}") from None
        return dict(info)

    def _settings(self) -> tuple[float, int, str]:
        """16 kHz mono int16 when the device takes it, else its default rate (resampled)."""
        sd = self.sd
        try:
            sd.check_input_settings(self.device, channels=1, dtype="int16", samplerate=SAMPLE_RATE_HZ)
            return float(SAMPLE_RATE_HZ), 1, "int16"
        except (ValueError, sd.PortAudioError):
            pass
        rate = float(self.info.get("default_samplerate") or 48000)
        for channels in (1, int(self.info.get("max_input_channels") or 1)):
            try:
                sd.check_input_settings(self.device, channels=channels, dtype="float32", samplerate=rate)
                return rate, channels, "float32"
            except (ValueError, sd.PortAudioError):
                continue
        raise AudioError(f"--mic: {self.info.get('name')!r} takes neither 16 kHz mono nor {rate:g} Hz input")

    def describe(self) -> str:
        how = "16 kHz mono" if self.rate_hz == SAMPLE_RATE_HZ and self.channels == 1 else \
            f"{self.rate_hz:g} Hz x{self.channels}, resampled to 16 kHz mono"
        return f"microphone {self.info.get('name')!r} ({how})"

    @property
    def overflows(self) -> int:
        return self.capture.overflows

    def streams(self) -> Iterator[Stream]:
        yield Stream(None, self._blocks)

    def _blocks(self) -> Iterator[np.ndarray]:
        sd = self.sd
        resampler = StreamResampler(self.rate_hz)
        try:
            self._stream = sd.InputStream(device=self.device, samplerate=self.rate_hz, channels=self.channels,
                                          dtype=self.dtype, blocksize=round(self.rate_hz * self.block_s),
                                          callback=self.capture)
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioError(f"--mic: cannot open {self.info.get('name')!r}: {exc}") from None
        wanted = None if self.duration_s is None else round(self.duration_s * SAMPLE_RATE_HZ)
        given = 0
        while wanted is None or given < wanted:
            try:
                block = self.capture.queue.get(timeout=max(2.0, 20 * self.block_s))
            except queue.Empty:
                raise AudioError(f"--mic: {self.info.get('name')!r} delivered no audio for "
                                 f"{max(2.0, 20 * self.block_s):g} s") from None
            out = resampler.push(block)
            if wanted is not None:
                out = out[:wanted - given]
            given += len(out)
            yield out
        self.close()

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except self.sd.PortAudioError:
                pass

"""Audio in: WAV files of any rate, channel count and sample format, mixed to mono and
resampled to the 16 kHz the frontend expects with soxr (whole clips and streams).

``read_wav`` parses the RIFF container itself (Python 3.11's ``wave`` reads neither float
samples nor WAVE_FORMAT_EXTENSIBLE headers, which most 24-bit and multichannel files carry):
integer PCM of 8 (unsigned), 16, 24 and 32 bits and IEEE float of 32 and 64 bits. Anything else
is refused with one line naming the file and what it holds.

16-bit mono 16 kHz audio passes through bit-exact (the reference wake-word engines read those
bytes as they are); everything else becomes float in [-1, 1), is resampled, and is rounded back
to int16 with the same scale (x * 32768), so int16 -> float -> int16 is the identity."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.speech.frontend import SAMPLE_RATE_HZ

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
_FORMAT_NAMES = {2: "Microsoft ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x55: "MP3"}


class AudioError(ValueError):
    """An audio file or stream that cannot be used, said in one line."""


@dataclass(frozen=True)
class Wav:
    """A decoded WAV file: ``samples`` [n, channels] in the file's own dtype (uint8, int16,
    int32 (24-bit files are widened), float32 or float64)."""

    path: str
    samples: np.ndarray
    rate_hz: int
    bits: int
    encoding: str  # "pcm" or "float"

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate_hz

    def mono16k(self) -> np.ndarray:
        """The audio as the spotter takes it: int16 mono at 16 kHz."""
        if self.rate_hz == SAMPLE_RATE_HZ and self.channels == 1 and self.samples.dtype == np.int16:
            return self.samples[:, 0].copy()
        return to_int16(resample(mono(to_float(self.samples)), self.rate_hz, SAMPLE_RATE_HZ))


def to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float samples as float32 in [-1, 1)."""
    samples = np.asarray(samples)
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if samples.dtype == np.int32:
        return (samples.astype(np.float64) / 2147483648.0).astype(np.float32)
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    raise AudioError(f"audio samples of dtype {samples.dtype} are not supported; expected uint8, int16, int32 or float")


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) -> int16 (x * 32768, rounded, clipped); int16 as it is."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples
    return np.clip(np.round(samples.astype(np.float32) * 32768.0), -32768, 32767).astype(np.int16)


def mono(samples: np.ndarray) -> np.ndarray:
    """[n] or [n, channels] -> [n]: the mean of the channels."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1, dtype=np.float32 if samples.dtype.kind == "f" else np.float64).astype(np.float32)


def resample(samples: np.ndarray, rate_hz: float, target_hz: float = SAMPLE_RATE_HZ) -> np.ndarray:
    """A whole clip (float, mono) from ``rate_hz`` to ``target_hz`` with soxr (high quality)."""
    if rate_hz == target_hz:
        return samples
    import soxr

    return soxr.resample(np.asarray(samples, np.float32), rate_hz, target_hz, quality="HQ")


class StreamResampler:
    """Blocks of float or int samples ([n] or [n, channels]) at ``rate_hz`` -> int16 mono at
    16 kHz, through one soxr stream (state kept across blocks, so block edges leave no marks).
    At 16 kHz mono int16 it passes blocks through unchanged."""

    def __init__(self, rate_hz: float, target_hz: int = SAMPLE_RATE_HZ):
        if not rate_hz > 0:
            raise AudioError(f"sample rate must be > 0 Hz, got {rate_hz}")
        self.rate_hz, self.target_hz = float(rate_hz), target_hz
        self._stream = None
        if self.rate_hz != target_hz:
            import soxr

            self._stream = soxr.ResampleStream(self.rate_hz, target_hz, 1, dtype="float32", quality="HQ")

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.asarray(block)
        if block.ndim == 2 and block.shape[1] == 1:
            block = block[:, 0]
        if self._stream is None and block.ndim == 1 and block.dtype == np.int16:
            return block
        x = mono(to_float(block))
        if self._stream is not None:
            x = self._stream.resample_chunk(np.ascontiguousarray(x, np.float32), last=last)
        return to_int16(x)


def read_wav(path: str | os.PathLike) -> Wav:
    """Decode a WAV file; :class:`AudioError` (one line) for anything that is not one."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise AudioError(f"{p}: is a directory; expected a .wav file") from None
    except FileNotFoundError:
        raise AudioError(f"{p}: no such file") from None
    except OSError as exc:
        raise AudioError(f"{p}: cannot read it: {exc.strerror or exc}") from None
    if not data:
        raise AudioError(f"{p}: empty file (0 bytes); expected a WAV file")
    return decode_wav(data, str(p))


def decode_wav(data: bytes, source: str) -> Wav:
    """Decode the bytes of a WAV file named ``source`` in errors (a path, or what wrote them: a
    speech synthesizer's stdout, whose header may not know the data length)."""
    p = source
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise AudioError(f"{p}: not a WAV file (no RIFF/WAVE header; it starts with {data[:12]!r})")
    if data[:4] == b"RIFX":
        raise AudioError(f"{p}: big-endian WAV (RIFX) is not supported; expected little-endian RIFF")
    fmt, body = None, None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        start = pos + 8
        if chunk == b"fmt ":
            fmt = data[start:start + size]
        elif chunk == b"data":
            body = data[start:start + size]  # a size past the end (a writer that never finished): what is there
            if fmt is not None:
                break
        pos = start + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise AudioError(f"{p}: WAV file without a valid 'fmt ' chunk (truncated or corrupted)")
    if body is None:
        raise AudioError(f"{p}: WAV file without a 'data' chunk (truncated or corrupted)")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 40:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the first two bytes of the sub-format GUID
    if tag not in (PCM, FLOAT):
        name = _FORMAT_NAMES.get(tag, f"format tag {tag:#x}")
        raise AudioError(f"{p}: {name} WAV is not supported; expected PCM (8/16/24/32-bit) or IEEE float "
                         "(32/64-bit) samples (convert it, e.g. sox IN -e signed -b 16 OUT.wav)")
    if channels < 1 or rate < 1:
        raise AudioError(f"{p}: WAV header says {channels} channel(s) at {rate} Hz; expected at least 1 and > 0 Hz")
    width = bits // 8
    if (tag == PCM and bits not in (8, 16, 24, 32)) or (tag == FLOAT and bits not in (32, 64)) or bits % 8:
        kind = "PCM" if tag == PCM else "float"
        raise AudioError(f"{p}: {bits}-bit {kind} samples are not supported; expected PCM of 8, 16, 24 or 32 bits "
                         "or float of 32 or 64 bits")
    frame = width * channels
    if block_align and block_align != frame:
        raise AudioError(f"{p}: WAV block size {block_align} does not match {channels} channel(s) of {bits} bits")
    usable = len(body) - len(body) % frame
    raw = np.frombuffer(body[:usable], dtype=np.uint8)
    if tag == FLOAT:
        samples = raw.view("<f4" if bits == 32 else "<f8").astype(np.float32 if bits == 32 else np.float64)
        if not np.all(np.isfinite(samples)):
            raise AudioError(f"{p}: float WAV with NaN or infinite samples")
    elif bits == 8:
        samples = raw.copy()
    elif bits == 16:
        samples = raw.view("<i2").astype(np.int16)
    elif bits == 24:
        triplets = raw.reshape(-1, 3).astype(np.int32)
        samples = (triplets[:, 0] << 8 | triplets[:, 1] << 16 | triplets[:, 2] << 24)  # 24-bit in the top bits
    else:
        samples = raw.view("<i4").astype(np.int32)
    return Wav(source, samples.reshape(-1, channels), int(rate), bits, "float" if tag == FLOAT else "pcm")


def write_wav(path: str | os.PathLike, samples: np.ndarray, rate_hz: int) -> None:
    """int16 samples ([n] or [n, channels]) as a 16-bit PCM WAV (tests and tools)."""
    import wave

    samples = np.asarray(samples)
    samples = to_int16(samples) if samples.dtype != np.int16 else samples
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(int(rate_hz))
        w.writeframes(samples.astype("<i2").tobytes())

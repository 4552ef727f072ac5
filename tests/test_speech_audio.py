"""Reading WAV files of every common sample format and resampling them to 16 kHz mono."""
from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

pytest.importorskip("soxr")

from apps.speech.audio import AudioError, StreamResampler, read_wav, resample, to_int16


def riff(path, payload: bytes, tag: int, channels: int, rate: int, bits: int, extensible: bool = False) -> None:
    """A WAV file written byte by byte (the stdlib writes only 16-bit-style PCM headers)."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits)
    if extensible:  # cbSize, valid bits, channel mask, sub-format GUID (tag + the fixed tail)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


SINE = np.sin(2 * np.pi * 440 * np.arange(4410) / 44100) * 0.5  # 0.1 s at 44.1 kHz


@pytest.mark.parametrize("tag, bits, encode, extensible", [
    (1, 8, lambda x: np.round(x * 128 + 128).astype(np.uint8).tobytes(), False),  # unsigned 8-bit
    (1, 16, lambda x: np.round(x * 32768).astype("<i2").tobytes(), False),
    (1, 24, lambda x: b"".join(int(v).to_bytes(3, "little", signed=True) for v in np.round(x * 2**23)), True),
    (1, 32, lambda x: np.round(x * 2**31).astype("<i4").tobytes(), True),
    (3, 32, lambda x: x.astype("<f4").tobytes(), False),  # IEEE float
    (3, 64, lambda x: x.astype("<f8").tobytes(), True),
])
def test_every_sample_format_decodes_to_the_same_audio(tmp_path, tag, bits, encode, extensible):
    stereo = np.stack([SINE, -SINE * 0.5], axis=1).reshape(-1)  # interleaved L, R
    path = tmp_path / "x.wav"
    riff(path, encode(stereo), tag, 2, 44100, bits, extensible)
    wav = read_wav(path)
    assert (wav.rate_hz, wav.channels, wav.bits, len(wav.samples)) == (44100, 2, bits, 4410)
    mono = wav.mono16k()
    assert mono.dtype == np.int16 and abs(len(mono) - 1600) <= 1
    expected = to_int16(resample((SINE * 0.25).astype(np.float32), 44100))  # the mean of L and R
    assert np.abs(mono.astype(int) - expected.astype(int)).max() <= (260 if bits == 8 else 2)


def test_16k_mono_16_bit_passes_through_bit_exact(tmp_path):
    samples = np.random.default_rng(0).integers(-32768, 32767, 4000).astype(np.int16)
    with wave.open(str(tmp_path / "x.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    assert np.array_equal(read_wav(tmp_path / "x.wav").mono16k(), samples)


def test_stream_resampler_equals_whole_clip_resampling():
    x = (np.random.default_rng(1).standard_normal((48000, 2)) * 0.2).astype(np.float32)
    stream = StreamResampler(48000)
    parts = [stream.push(x[i:i + 777]) for i in range(0, len(x), 777)] + [stream.push(x[:0], last=True)]
    out = np.concatenate(parts)
    whole = to_int16(resample(x.mean(axis=1), 48000))
    assert len(out) == len(whole) == 16000
    assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"this is not audio at all, just text", "not a WAV file"),
    (b"RIFF\x04\x00\x00\x00WAVE", "without a valid 'fmt ' chunk"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        read_wav(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_compressed_wav_is_refused_by_name(tmp_path):
    riff(tmp_path / "alaw.wav", b"\x00" * 100, 6, 1, 8000, 8)
    with pytest.raises(AudioError, match="A-law WAV is not supported"):
        read_wav(tmp_path / "alaw.wav")

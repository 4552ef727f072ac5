"""Real media files for the data-loading tests: PNG, BMP and GIF encoded by hand, JPEG with
TensorFlow, WAV with the stdlib (PCM of any width, and an IEEE-float one the loader refuses),
and random pictures written as PNG by OpenCV (:func:`picture`, :func:`png`)."""
from __future__ import annotations

import struct
import wave
import zlib
from pathlib import Path

import numpy as np

def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(pixels: np.ndarray) -> bytes:
    """8-bit grayscale ([H, W]) or RGB ([H, W, 3]) PNG."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\0" + pixels[r].tobytes() for r in range(height))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def bmp_bytes(rgb: np.ndarray) -> bytes:
    """24-bit bottom-up BMP of an [H, W, 3] image."""
    height, width, _ = rgb.shape
    pad = b"\0" * ((-width * 3) % 4)
    rows = b"".join(rgb[r, :, ::-1].tobytes() + pad for r in range(height - 1, -1, -1))
    return (b"BM" + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0) + rows)


def gif_bytes(gray: np.ndarray) -> bytes:
    """GIF of an [H, W] uint8 image with a gray palette; LZW without compression: 9-bit literal
    codes and a clear code every 254 pixels, so the code width never grows."""
    height, width = gray.shape
    flat = gray.ravel().tolist()
    codes = [c for start in range(0, len(flat), 254) for c in [256] + flat[start:start + 254]] + [257]
    bits = nbits = 0
    out = bytearray()
    for code in codes:
        bits |= code << nbits
        nbits += 9
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits, nbits = bits >> 8, nbits - 8
    if nbits:
        out.append(bits)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + out[i:i + 255] for i in range(0, len(out), 255)) + b"\0"
    palette = bytes(v for i in range(256) for v in (i, i, i))
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + palette
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x08" + blocks + b";")


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_jpeg(rgb, quality=100).numpy()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_wav(path: Path, samples: np.ndarray, rate_hz: int, width: int = 2) -> Path:
    """PCM WAV of float samples in [-1, 1], [frames] or [frames, channels], ``width`` bytes each."""
    frames = samples.reshape(len(samples), -1)
    full = 2.0 ** (8 * width - 1)
    ints = np.clip(np.round(frames * full), -full, full - 1).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints.ravel())
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate_hz)
        w.writeframes(raw)
    return path


def float_wav_bytes(samples: np.ndarray, rate_hz: int) -> bytes:
    """IEEE-float (format 3) WAV, which the loader does not read."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate_hz, rate_hz * 4, 4, 32)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


H, W = 40, 60  # the size of a picture() unless told


def picture(seed: int, height: int = H, width: int = W) -> np.ndarray:
    """Random RGB pixels, the same for the same seed."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png(path: Path, rgb: np.ndarray) -> Path:
    """``rgb`` written as a PNG by OpenCV (lossless: it reads back as the very pixels)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path

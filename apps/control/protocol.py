"""The serial robot protocol: little-endian frames, checked with CRC-16/CCITT.

    A5 5A | kind u8 | seq u16 | n u8 | n x float32 | crc u16

``crc`` is ``binascii.crc_hqx(bytes from kind through the last value, 0xFFFF)`` (CRC-16/CCITT-
FALSE). Kind 1 is a command (host to robot: the action), kind 2 a state (robot to host: the
observation). The robot answers every valid command with one state frame carrying the same
``seq``; ``seq`` starts at 0 and goes up by one per command, wrapping at 2**16.
docs/control.md has the device side in C.

Pure functions and a byte-stream parser: nothing here touches a port, so the same code runs on
a real serial line, a pseudo-terminal in the tests, or a device simulator."""
from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

SYNC = b"\xA5\x5A"
COMMAND, STATE = 1, 2
MAX_VALUES = 255
_HEADER = struct.Struct("<BHB")  # kind, seq, n
CRC_INIT = 0xFFFF


@dataclass(frozen=True)
class Frame:
    kind: int
    seq: int
    values: tuple[float, ...]

    def array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float32)


def crc16(body: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF) of ``body``."""
    return binascii.crc_hqx(body, CRC_INIT)


def encode(kind: int, seq: int, values) -> bytes:
    """One frame as bytes. ``values`` are sent as float32 (non-finite values are refused: a
    NaN must never reach an actuator)."""
    array = np.asarray(values, dtype="<f4").ravel()
    if len(array) > MAX_VALUES:
        raise ValueError(f"a frame carries at most {MAX_VALUES} values, got {len(array)}")
    if kind == COMMAND and not np.all(np.isfinite(array)):
        raise ValueError(f"refusing to encode a command with non-finite values {array.tolist()}")
    body = _HEADER.pack(kind, seq & 0xFFFF, len(array)) + array.tobytes()
    return SYNC + body + struct.pack("<H", crc16(body))


class FrameReader:
    """Collects bytes from a stream and returns the complete frames in them.

    Garbage before a sync word is dropped; a frame whose CRC does not match is dropped and
    counted in ``crc_errors`` (the parser then looks for the next sync word one byte further,
    so a corrupted length cannot swallow the frames after it)."""

    def __init__(self):
        self._buffer = bytearray()
        self.crc_errors = 0
        self.dropped_bytes = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while True:
            start = self._buffer.find(SYNC)
            if start < 0:
                keep = 1 if self._buffer.endswith(SYNC[:1]) else 0
                self.dropped_bytes += len(self._buffer) - keep
                del self._buffer[: len(self._buffer) - keep]
                return frames
            if start:
                self.dropped_bytes += start
                del self._buffer[:start]
            if len(self._buffer) < 2 + _HEADER.size:
                return frames
            kind, seq, n = _HEADER.unpack_from(self._buffer, 2)
            total = 2 + _HEADER.size + 4 * n + 2
            if len(self._buffer) < total:
                return frames
            body = bytes(self._buffer[2 : total - 2])
            (crc,) = struct.unpack_from("<H", self._buffer, total - 2)
            if crc != crc16(body):
                self.crc_errors += 1
                del self._buffer[:1]  # resynchronise on the next sync word
                continue
            values = struct.unpack_from(f"<{n}f", body, _HEADER.size)
            frames.append(Frame(kind, seq, tuple(values)))
            del self._buffer[:total]

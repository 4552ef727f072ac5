"""The serial protocol, and a serial robot over a real pseudo-terminal pair with a simulated
device on the other end: normal exchange, a corrupted frame, a device that stops answering."""
from __future__ import annotations

import os
import struct
import threading

import numpy as np
import pytest

pytest.importorskip("serial")

from apps.control import SerialRobot, run
from apps.control.protocol import COMMAND, STATE, FrameReader, crc16, encode


def test_crc_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1  # the catalogue check value of CRC-16/CCITT-FALSE


def test_frame_layout_is_exact():
    frame = encode(COMMAND, 0x1234, [1.0, -2.5])
    body = bytes([1]) + struct.pack("<H", 0x1234) + bytes([2]) + struct.pack("<2f", 1.0, -2.5)
    assert frame == b"\xA5\x5A" + body + struct.pack("<H", crc16(body))
    assert len(frame) == 2 + 4 + 8 + 2


def test_reader_handles_split_garbage_and_corruption():
    good1, good2 = encode(STATE, 7, [0.5, 1.5, 2.5]), encode(STATE, 8, [3.0])
    bad = bytearray(encode(STATE, 9, [4.0]))
    bad[8] ^= 0xFF  # a flipped byte in the value
    stream = b"\x00\xA5garbage" + good1 + bytes(bad) + good2
    reader = FrameReader()
    frames = []
    for i in range(len(stream)):  # one byte at a time: the parser must not care about chunking
        frames += reader.feed(stream[i : i + 1])
    assert [(f.seq, f.values) for f in frames] == [(7, (0.5, 1.5, 2.5)), (8, (3.0,))]
    assert reader.crc_errors == 1


def test_sequence_numbers_wrap_and_nan_commands_are_refused():
    assert FrameReader().feed(encode(COMMAND, 65536 + 3, [0.0]))[0].seq == 3
    with pytest.raises(ValueError, match="non-finite"):
        encode(COMMAND, 0, [np.nan])


class Device(threading.Thread):
    """A simulated robot on the master side of a pty: a unit mass on a line. Each command (a
    force) advances it by ``dt`` and the answer carries position and velocity, with the seq.
    ``corrupt_seqs``: send a corrupted copy of the answer first; ``silent_after``: stop
    answering after that many commands (it still reads them)."""

    def __init__(self, fd: int, dt: float = 0.01, corrupt_seqs=(), silent_after: int | None = None):
        super().__init__(daemon=True)
        self.fd, self.dt = fd, dt
        self.corrupt_seqs, self.silent_after = set(corrupt_seqs), silent_after
        self.commands: list[tuple[int, tuple]] = []
        self.x, self.v = 0.0, 0.0
        self.running = True

    def run(self):
        reader = FrameReader()
        while self.running:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            for frame in reader.feed(data):
                if frame.kind != COMMAND:
                    continue
                self.commands.append((frame.seq, frame.values))
                if self.silent_after is not None and len(self.commands) > self.silent_after:
                    continue
                self.v += frame.values[0] * self.dt
                self.x += self.v * self.dt
                answer = encode(STATE, frame.seq, [self.x, self.v])
                if frame.seq in self.corrupt_seqs:
                    broken = bytearray(answer)
                    broken[-3] ^= 0x55
                    os.write(self.fd, bytes(broken))
                os.write(self.fd, answer)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    name = os.ttyname(slave)
    yield master, name
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def push(obs):
    return np.array([1.0 - obs[0]], np.float32)  # a spring toward x = 1


def test_serial_robot_over_a_pty(pty_pair):
    master, port = pty_pair
    device = Device(master, corrupt_seqs={5})
    device.start()
    robot = SerialRobot.from_url(f"serial:{port}?baud=115200", [-2.0], [2.0], timeout_s=0.05)
    summary = run(push, robot, rate_hz=200, ticks=20, seed=0)
    device.running = False
    assert robot.observation_spec.size == 2  # learnt from the first answer
    assert summary["ticks"] == 20 and summary["stop_reason"] == "ticks"
    assert summary["crc_errors"] == 1 and summary["timeouts"] == 0
    assert summary["interventions"]["stale"] == 0
    seqs = [s for s, _ in device.commands]
    assert seqs == list(range(22))  # connect's safe action (seq 0), one command per tick, the safe action at stop
    assert device.commands[0][1] == (0.0,) and device.commands[-1][1] == (0.0,)
    assert device.commands[1][1] == (1.0,)  # the first tick: the spring at x = 0
    assert device.x > 0  # the commands moved it


def test_silent_device_is_a_stale_sensor_and_the_last_command_is_safe(pty_pair):
    master, port = pty_pair
    device = Device(master, silent_after=6)
    device.start()
    robot = SerialRobot(port, [-2.0], [2.0], timeout_s=0.005, safe_action=[0.0])
    summary = run(push, robot, rate_hz=100, ticks=200, seed=0, stop_after_s=0.05)
    device.running = False
    # 6 answered commands (connect + 5 ticks), then silence: stale ticks until the fault limit
    assert summary["timeouts"] >= 1 and summary["interventions"]["stale"] == 5
    assert summary["stop_reason"] == "fault" and summary["ticks"] == 11
    assert device.commands[-1][1] == (0.0,)  # the last command the device received is the safe action
    assert all(values == (0.0,) for _, values in device.commands[-5:])


def test_no_device_is_a_clear_error(pty_pair):
    _, port = pty_pair
    robot = SerialRobot(port, [-1.0], [1.0], connect_timeout_s=0.1)
    with pytest.raises(OSError, match="no valid state frame"):
        run(push, robot, rate_hz=100, ticks=5)


@pytest.mark.parametrize("url, message", [
    ("serial:", "expected serial:/dev/ttyX"),
    ("serial:/dev/ttyS0?parity=E", "unknown option"),
    ("serial:/dev/ttyS0?baud=fast", "baud must be an integer"),
])
def test_bad_serial_urls(url, message):
    with pytest.raises(ValueError, match=message):
        SerialRobot.from_url(url, [-1.0], [1.0])

"""Robots the control loop drives: a small base class and two adapters.

A :class:`Robot` is a context manager (``connect`` on enter, ``close`` on exit) whose
observation and action specs (shape, limits, units) can be read without hardware. Per tick the
loop calls :meth:`Robot.observe` (the newest observation, or None when none arrived in time)
and :meth:`Robot.send` (returns what was really sent, after clipping to the limits). When the
run ends, :meth:`Robot.halt` sends the safe action as the last command before the port closes.

- :class:`GymRobot` wraps any gymnasium environment (a MuJoCo simulator from
  :func:`apps.control.sim.sim_env`, or the user's own wrapped env). ``send`` steps it once, in
  lockstep with the loop; paced by the loop at the env's rate, simulated time runs as real time.
- :class:`SerialRobot` speaks the frame protocol of :mod:`apps.control.protocol` over pyserial.
"""
from __future__ import annotations

import select
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import numpy as np

from apps.control import protocol


@dataclass(frozen=True)
class ArraySpec:
    """A flat vector's size, limits and units (limits may be +-inf)."""

    size: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    units: tuple[str, ...] = ()

    @classmethod
    def from_box(cls, box, units: tuple[str, ...] = ()) -> "ArraySpec":
        low = np.broadcast_to(np.asarray(box.low, np.float64), box.shape).ravel()
        high = np.broadcast_to(np.asarray(box.high, np.float64), box.shape).ravel()
        return cls(int(np.prod(box.shape)), tuple(low.tolist()), tuple(high.tolist()), units)

    def to_dict(self) -> dict:
        def finite(values):
            return [v if np.isfinite(v) else None for v in values]
        return {"size": self.size, "low": finite(self.low), "high": finite(self.high), "units": list(self.units)}


@dataclass(frozen=True)
class Outcome:
    """What the last :meth:`Robot.send` did to the task (simulators only)."""

    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False


class Robot:
    """Base class. Subclasses set ``observation_spec`` and ``action_spec`` in ``__init__`` and
    implement ``_write(action)``; the base clips to the action limits."""

    name = "robot"
    observation_spec: ArraySpec
    action_spec: ArraySpec
    sim_dt: float | None = None  # seconds of robot time per step, where the robot knows it

    def connect(self) -> None:
        """Open the connection (idempotent)."""

    def close(self) -> None:
        """Close the connection (idempotent)."""

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def reset(self, seed: int | None = None) -> np.ndarray | None:
        """Start an episode (simulators); a physical robot returns its newest observation."""
        return self.observe()

    def observe(self) -> np.ndarray | None:
        raise NotImplementedError

    def clip(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32).reshape(self.action_spec.size)
        return np.clip(a, np.asarray(self.action_spec.low, np.float32), np.asarray(self.action_spec.high, np.float32))

    def send(self, action: np.ndarray) -> np.ndarray:
        """Send ``action`` clipped to the limits; returns what was sent. Refuses non-finite values."""
        sent = self.clip(action)
        if not np.all(np.isfinite(sent)):
            raise ValueError(f"{self.name}: refusing to send a non-finite action {sent.tolist()}")
        self._write(sent)
        return sent

    def halt(self, safe_action: np.ndarray) -> None:
        """The last command before closing: the safe action."""
        self.send(safe_action)

    def outcome(self) -> Outcome:
        return Outcome()

    def _write(self, action: np.ndarray) -> None:
        raise NotImplementedError

    def stats(self) -> dict:
        return {}


class GymRobot(Robot):
    """A gymnasium environment as a robot, stepped once per ``send``.

    ``halt`` does not step the environment (a simulator has no actuator to leave in a safe
    state), so ``ticks=N`` runs exactly N environment steps."""

    def __init__(self, env, name: str | None = None):
        self.env = env
        spec = getattr(env, "spec", None)
        self.name = name or f"sim:{spec.id if spec is not None else type(env).__name__}"
        self.observation_spec = ArraySpec.from_box(env.observation_space)
        self.action_spec = ArraySpec.from_box(env.action_space)
        self.sim_dt = _env_dt(env)
        self._obs: np.ndarray | None = None
        self._outcome = Outcome()

    def close(self) -> None:
        self.env.close()

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        self._obs = np.asarray(obs)
        self._outcome = Outcome()
        return self._obs

    def observe(self) -> np.ndarray | None:
        return self._obs

    def _write(self, action: np.ndarray) -> None:
        obs, reward, terminated, truncated, _ = self.env.step(action.astype(self.env.action_space.dtype))
        self._obs = None if obs is None else np.asarray(obs)
        self._outcome = Outcome(float(reward), bool(terminated), bool(truncated))

    def halt(self, safe_action: np.ndarray) -> None:
        pass

    def outcome(self) -> Outcome:
        return self._outcome


def _env_dt(env) -> float | None:
    raw = getattr(env, "unwrapped", env)
    dt = getattr(raw, "dt", None)
    return float(dt) if dt is not None else None


class SerialRobot(Robot):
    """A robot on a serial line (``serial:/dev/ttyUSB0?baud=115200``), speaking the frame
    protocol. The action size and limits come from the caller (the model and its metadata, or
    ``--action-limits``); the observation size from the device's first answer, to the safe
    action sent on :meth:`connect`. A command whose answer does not arrive within
    ``timeout_s`` leaves no observation for the next tick (the loop treats it as stale)."""

    def __init__(self, port: str, action_low, action_high, baud: int = 115200, timeout_s: float = 0.02,
                 connect_timeout_s: float = 1.0, safe_action=None):
        self.port, self.baud = port, int(baud)
        self.name = f"serial:{port}"
        low, high = np.asarray(action_low, np.float64).ravel(), np.asarray(action_high, np.float64).ravel()
        if low.shape != high.shape or np.any(low > high) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"{self.name}: action limits must be finite, low <= high, one per action value; "
                             f"got {low.tolist()} and {high.tolist()}")
        self.action_spec = ArraySpec(len(low), tuple(low.tolist()), tuple(high.tolist()))
        self.observation_spec = ArraySpec(0, (), ())  # known after connect()
        self.timeout_s, self.connect_timeout_s = float(timeout_s), float(connect_timeout_s)
        self.safe_action = np.zeros(len(low), np.float32) if safe_action is None else np.asarray(safe_action, np.float32)
        self._serial = None
        self._reader = protocol.FrameReader()
        self._seq = 0
        self._obs: np.ndarray | None = None
        self.answers = 0
        self.timeouts = 0

    @classmethod
    def from_url(cls, url: str, action_low, action_high, **kwargs) -> "SerialRobot":
        """``serial:/dev/ttyX[?baud=N]``."""
        parsed = urlparse(url)
        if parsed.scheme != "serial" or not parsed.path:
            raise ValueError(f"robot {url!r}: expected serial:/dev/ttyX[?baud=N]")
        query = parse_qs(parsed.query)
        unknown = sorted(set(query) - {"baud"})
        if unknown:
            raise ValueError(f"robot {url!r}: unknown option(s) {unknown}; only baud=N is known")
        if "baud" in query:
            try:
                kwargs["baud"] = int(query["baud"][0])
            except ValueError:
                raise ValueError(f"robot {url!r}: baud must be an integer, got {query['baud'][0]!r}") from None
        return cls(parsed.path, action_low, action_high, **kwargs)

    def connect(self) -> None:
        if self._serial is not None:
            return
        from edge_runtime.deps import require

        serial = require("serial", "the serial robot adapter")
        self._serial = serial.Serial(self.port, self.baud, timeout=0)
        obs = self._exchange(self.safe_action, self.connect_timeout_s)
        if obs is None:
            self.close()
            raise OSError(f"{self.name}: no valid state frame within {self.connect_timeout_s} s of the first command "
                          "(is the device running the edgepilot protocol at this baud rate?)")
        self.observation_spec = ArraySpec(len(obs), (-np.inf,) * len(obs), (np.inf,) * len(obs))

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def observe(self) -> np.ndarray | None:
        return self._obs

    def _write(self, action: np.ndarray) -> None:
        self._exchange(action, self.timeout_s)

    def _exchange(self, action: np.ndarray, timeout_s: float) -> np.ndarray | None:
        """Send one command and wait for the state frame with its ``seq``."""
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        self._serial.write(protocol.encode(protocol.COMMAND, seq, action))
        deadline = time.monotonic() + timeout_s
        self._obs = None
        while True:
            remaining = deadline - time.monotonic()
            waiting = self._serial.in_waiting
            if waiting:
                for frame in self._reader.feed(self._serial.read(waiting)):
                    if frame.kind == protocol.STATE and frame.seq == seq:
                        self._obs = frame.array()
                if self._obs is not None:
                    self.answers += 1
                    return self._obs
            if remaining <= 0:
                self.timeouts += 1
                return None
            select.select([self._serial.fileno()], [], [], remaining)  # wake when bytes arrive

    def stats(self) -> dict:
        return {"crc_errors": self._reader.crc_errors, "answers": self.answers, "timeouts": self.timeouts,
                "dropped_bytes": self._reader.dropped_bytes}

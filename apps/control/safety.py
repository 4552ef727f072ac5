"""The safety layer between the policy and the actuator.

Every tick the loop hands it what happened (the observation, the policy's action or its
failure, how long inference took, the deadline streak) and it returns the action to send and
the kinds of intervention it made. An intervention is a tick whose sent action is not the
policy's raw output; each kind is counted at most once per tick:

| kind | when | what is sent |
|---|---|---|
| ``nonfinite`` | a NaN/Inf in the observation or the policy's action | the last good action held |
| ``exception`` | inference raised | the last good action held (or the fallback policy's) |
| ``stale`` | no new observation for ``stale_after_s`` | the safe action |
| ``overrun`` | ``miss_streak`` deadlines missed in a row, or inference over ``budget_s`` | the safe action |
| ``clamp`` | the action is outside the limits | clipped to the limits |
| ``rate_limit`` | the action moves faster than ``max_rate`` per second | moved by at most ``max_rate / rate_hz`` (from the safe action on the first tick) |

When the policy has been replaced (``stale``, ``overrun``, ``exception``, ``nonfinite``) for
``stop_after_s`` in a row, the run stops with ``stop_reason = "fault"``. A non-finite value
never leaves this layer: MuJoCo silently treats a NaN control as 0, which hides the bug."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

KINDS = ("clamp", "rate_limit", "nonfinite", "exception", "stale", "overrun")
FAULT_KINDS = ("nonfinite", "exception", "stale", "overrun")


@dataclass(frozen=True)
class SafetyConfig:
    """Options of the safety layer; units in the names. ``low``/``high`` default to the robot's
    action limits; ``safe_action`` to zero, or the middle of the limits where zero is outside
    them. ``max_rate`` is in action units per second (None: no rate limit). ``budget_s`` is the
    inference time allowed (None: the loop period)."""

    enabled: bool = True
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    max_rate: float | None = None
    safe_action: tuple[float, ...] | None = None
    stale_after_s: float = 0.05
    miss_streak: int = 5
    budget_s: float | None = None
    stop_after_s: float = 0.5

    def __post_init__(self):
        if self.stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be > 0 seconds, got {self.stale_after_s}")
        if self.miss_streak < 1:
            raise ValueError(f"miss_streak must be >= 1, got {self.miss_streak}")
        if self.max_rate is not None and not self.max_rate > 0:
            raise ValueError(f"max_rate must be > 0 action units per second, got {self.max_rate}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"budget_s must be > 0 seconds, got {self.budget_s}")
        if self.stop_after_s <= 0:
            raise ValueError(f"stop_after_s must be > 0 seconds, got {self.stop_after_s}")


def default_safe_action(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Zero, or the middle of the limits for each dimension where zero lies outside them."""
    zero_inside = (low <= 0) & (high >= 0)
    return np.where(zero_inside, 0.0, (low + high) / 2).astype(np.float32)


@dataclass
class Decision:
    action: np.ndarray
    kinds: tuple[str, ...] = ()


@dataclass
class SafetyLayer:
    """Stateful filter for one run. ``period_s`` is one tick of the robot's time."""

    config: SafetyConfig
    low: np.ndarray
    high: np.ndarray
    period_s: float
    counts: Counter = field(default_factory=Counter)
    fault_ticks: int = 0  # consecutive ticks whose policy output was replaced by a fault path
    _last_good: np.ndarray | None = None
    _last_sent: np.ndarray | None = None
    _last_obs: np.ndarray | None = None
    _unchanged_s: float = 0.0

    def __post_init__(self):
        c = self.config
        self.low = np.asarray(c.low if c.low is not None else self.low, dtype=np.float32)
        self.high = np.asarray(c.high if c.high is not None else self.high, dtype=np.float32)
        if self.low.shape != self.high.shape or np.any(self.low > self.high):
            raise ValueError(f"action limits must be low <= high of one shape, got {self.low} and {self.high}")
        if c.safe_action is not None:
            safe = np.asarray(c.safe_action, dtype=np.float32)
            if safe.shape != self.low.shape or not np.all(np.isfinite(safe)):
                raise ValueError(f"safe action must be {self.low.size} finite value(s), got {list(c.safe_action)}")
            if np.any(safe < self.low) or np.any(safe > self.high):
                raise ValueError(f"safe action {safe.tolist()} lies outside the limits {self.low.tolist()}..{self.high.tolist()}")
        else:
            safe = default_safe_action(self.low, self.high)
        self.safe = safe
        self._last_sent = safe.copy()  # the loop starts from the safe action (what a robot holds at rest)
        self.budget_s = c.budget_s if c.budget_s is not None else self.period_s
        self.stop_ticks = max(1, int(round(c.stop_after_s / self.period_s)))

    # ----- observation checks --------------------------------------------------------------
    def observation_fault(self, obs: np.ndarray | None) -> str | None:
        """``stale`` (no observation, or the same one for ``stale_after_s``), ``nonfinite``,
        or None. Call once per tick, before inference."""
        if not self.config.enabled:
            return None
        if obs is None:
            self._unchanged_s += self.period_s
            return "stale"
        if self._last_obs is not None and obs.shape == self._last_obs.shape and np.array_equal(obs, self._last_obs):
            self._unchanged_s += self.period_s
        else:
            self._unchanged_s = 0.0
            self._last_obs = obs.copy()
        if not np.all(np.isfinite(obs)):
            return "nonfinite"
        if self._unchanged_s >= self.config.stale_after_s - 1e-12:
            return "stale"
        return None

    # ----- the decision ---------------------------------------------------------------------
    def decide(self, raw: np.ndarray | None, fault: str | None = None, compute_s: float = 0.0,
               miss_streak: int = 0, fallback_for: str | None = None) -> Decision:
        """The action to send. ``raw`` is the policy's output (None when it failed with
        ``fault`` = ``exception``, or was not run because of an observation fault).
        ``fallback_for``: ``raw`` came from the fallback policy because the main one failed
        that way (``exception`` or ``nonfinite``); counted as that kind, not as a fault streak."""
        if not self.config.enabled:
            if raw is None:  # nothing to send but the last action (or the safe one)
                action = self._last_sent if self._last_sent is not None else self.safe
            else:
                action = np.asarray(raw, dtype=np.float32)
            self._last_sent = action
            return Decision(action)
        kinds: list[str] = []
        if fault is None and raw is not None and not np.all(np.isfinite(raw)):
            fault = "nonfinite"
        if fault is None and (compute_s > self.budget_s or miss_streak >= self.config.miss_streak):
            fault = "overrun"
        if fault in ("stale", "overrun"):
            action = self.safe.copy()
        elif fault in ("nonfinite", "exception"):
            action = (self._last_good if self._last_good is not None else self.safe).copy()
        elif fault is not None:
            raise ValueError(f"unknown fault kind {fault!r}; expected one of {FAULT_KINDS}")
        else:
            action = np.asarray(raw, dtype=np.float32).copy()
        if fallback_for is not None and fault is None:
            kinds.append(fallback_for)
        if fault:
            kinds.append(fault)
            self.fault_ticks += 1
        else:
            self.fault_ticks = 0
        clipped = np.clip(action, self.low, self.high)
        if not np.array_equal(clipped, action):
            kinds.append("clamp")
            action = clipped
        if self.config.max_rate is not None:
            step = self.config.max_rate * self.period_s
            limited = np.clip(action, self._last_sent - step, self._last_sent + step)
            if not np.array_equal(limited, action):
                kinds.append("rate_limit")
                action = limited.astype(np.float32)
        if fault is None and fallback_for is None:
            self._last_good = action.copy()
        self._last_sent = action
        self.counts.update(kinds)
        return Decision(action, tuple(kinds))

    @property
    def should_stop(self) -> bool:
        return self.config.enabled and self.fault_ticks >= self.stop_ticks

    def report(self) -> dict:
        return {kind: int(self.counts.get(kind, 0)) for kind in KINDS}

"""Faults to inject, for tests, the benchmarks and ``edgepilot control --inject``: wrappers
around a policy (``obs -> action``) or a gymnasium environment. The loop and the safety layer
see them exactly as they would see the real thing."""
from __future__ import annotations

import time

import numpy as np

INJECTIONS = ("nan", "slow", "freeze", "exception")


class PolicyFault:
    """Wraps a policy; from tick ``start`` for ``length`` ticks inference goes wrong:
    ``nan`` returns NaN, ``slow`` sleeps ``delay_s`` first, ``exception`` raises."""

    def __init__(self, policy, kind: str, start: int, length: int, delay_s: float = 0.0):
        if kind not in ("nan", "slow", "exception"):
            raise ValueError(f"policy fault must be nan, slow or exception, got {kind!r}")
        self.policy, self.kind, self.start, self.length, self.delay_s = policy, kind, start, length, delay_s
        self.calls = 0
        for name in ("model", "spec", "warning", "action_limits"):
            if hasattr(policy, name):
                setattr(self, name, getattr(policy, name))

    def __call__(self, obs):
        i = self.calls
        self.calls += 1
        if self.start <= i < self.start + self.length:
            if self.kind == "nan":
                return np.full_like(np.asarray(self.policy(obs), np.float32), np.nan)
            if self.kind == "exception":
                raise RuntimeError(f"injected inference failure at tick {i}")
            time.sleep(self.delay_s)
        return self.policy(obs)


def sensor_wrappers():
    """The gymnasium observation wrappers (imported lazily: gymnasium is optional)."""
    import gymnasium as gym

    class FrozenSensor(gym.ObservationWrapper):
        """From step ``start`` for ``length`` steps the observation stays what it was."""

        def __init__(self, env, start: int, length: int):
            super().__init__(env)
            self.start, self.length, self.steps, self.held = start, length, 0, None

        def reset(self, **kwargs):
            self.steps, self.held = 0, None
            return super().reset(**kwargs)

        def observation(self, obs):
            self.steps += 1
            if self.start <= self.steps < self.start + self.length:
                if self.held is None:
                    self.held = obs
                return self.held
            self.held = None
            return obs

    class NoisySensor(gym.ObservationWrapper):
        """Gaussian noise of ``std`` (per feature) on every observation, and with probability
        ``dropout`` a dropout: the previous observation repeated (stale) or NaN (``nan_share``)."""

        def __init__(self, env, std, dropout: float = 0.0, nan_share: float = 0.5, seed: int = 0):
            super().__init__(env)
            self.std, self.dropout, self.nan_share = np.asarray(std, np.float64), dropout, nan_share
            self.rng = np.random.default_rng(seed)
            self.last = None

        def observation(self, obs):
            noisy = obs + self.rng.normal(0.0, 1.0, size=obs.shape) * self.std
            if self.last is not None and self.rng.random() < self.dropout:
                if self.rng.random() < self.nan_share:
                    return np.full_like(obs, np.nan)
                return self.last
            self.last = noisy
            return noisy

    class Pushes(gym.Wrapper):
        """An external force on body ``body`` every ``every_s`` seconds for ``length_s``
        (MuJoCo ``xfrc_applied``), of ``force`` newtons along x with a random sign."""

        def __init__(self, env, force: float, every_s: float, length_s: float, body: int = 1, seed: int = 0):
            super().__init__(env)
            self.force, self.every_s, self.length_s, self.body = force, every_s, length_s, body
            self.rng = np.random.default_rng(seed)
            self.t, self.sign = 0.0, 1.0

        def reset(self, **kwargs):
            self.t = 0.0
            return super().reset(**kwargs)

        def step(self, action):
            raw = self.env.unwrapped
            phase = self.t % self.every_s
            if phase < raw.dt:
                self.sign = self.rng.choice([-1.0, 1.0])
            raw.data.xfrc_applied[self.body, 0] = self.sign * self.force if self.t > 0 and phase < self.length_s else 0.0
            self.t += raw.dt
            return self.env.step(action)

    return FrozenSensor, NoisySensor, Pushes

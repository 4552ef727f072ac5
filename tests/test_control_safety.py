"""Every safety path by injection, through ``apps.control.run`` on a real simulator, plus the
layer's own rules. A non-finite value never reaches the environment."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from apps.control import SafetyConfig, run, sim_env
from apps.control.safety import SafetyLayer, default_safe_action


class Recorder(gym.Wrapper):
    """Remembers every action the environment received."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, action):
        self.actions.append(np.array(action, dtype=np.float64))
        return self.env.step(action)


def env(rate_hz=None):
    return Recorder(sim_env("InvertedPendulum-v5", rate_hz))


def constant(value):
    return lambda obs: np.array([value], np.float32)


def test_clamp_to_the_action_limits():
    e = env()
    s = run(constant(10.0), e, ticks=5, seed=0)
    assert s["interventions"]["clamp"] == 5
    assert all(a[0] == 3.0 for a in e.actions)  # InvertedPendulum's limit is 3


def test_rate_limit_in_units_per_second():
    e = env()  # 25 Hz: 0.04 s per tick; 10 units/s allows 0.4 per tick
    s = run(constant(2.0), e, ticks=4, seed=0, max_rate=10.0)
    assert s["interventions"]["rate_limit"] == 4
    assert [round(a[0], 6) for a in e.actions] == [0.4, 0.8, 1.2, 1.6]


def test_nonfinite_action_holds_the_last_good_action():
    calls = {"n": 0}

    def policy(obs):
        calls["n"] += 1
        return np.array([np.nan if calls["n"] in (3, 4) else 0.5], np.float32)

    e = env()
    s = run(policy, e, ticks=6, seed=0)
    assert s["interventions"]["nonfinite"] == 2
    assert [a[0] for a in e.actions] == [0.5] * 6
    assert all(np.all(np.isfinite(a)) for a in e.actions)


def test_nonfinite_observation_holds_and_skips_inference():
    class NaNSensor(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.n = 0

        def observation(self, obs):
            self.n += 1
            return np.full_like(obs, np.nan) if self.n == 3 else obs

    seen = []

    def policy(obs):
        seen.append(obs)
        return np.array([0.25], np.float32)

    e = Recorder(NaNSensor(sim_env("InvertedPendulum-v5")))
    s = run(policy, e, ticks=5, seed=0)
    assert s["interventions"]["nonfinite"] == 1
    assert all(np.all(np.isfinite(o)) for o in seen) and len(seen) == 4
    assert [a[0] for a in e.actions] == [0.25] * 5


def test_exception_holds_the_last_good_action_and_is_reported():
    calls = {"n": 0}

    def policy(obs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("delegate lost")
        return np.array([0.5], np.float32)

    e = env()
    s = run(policy, e, ticks=4, seed=0)
    assert s["interventions"]["exception"] == 1
    assert "delegate lost" in s["first_error"]
    assert [a[0] for a in e.actions] == [0.5] * 4


def test_fallback_policy_takes_over_when_the_main_one_fails():
    def broken(obs):
        raise RuntimeError("int8 model failed")

    e = env()
    s = run(broken, e, ticks=3, seed=0, fallback=constant(0.75))
    assert s["interventions"]["exception"] == 3 and s["stop_reason"] == "ticks"
    assert [a[0] for a in e.actions] == [0.75] * 3


def test_exception_before_any_good_action_sends_the_safe_action():
    def broken(obs):
        raise ValueError("bad")

    e = env()
    s = run(broken, e, ticks=2, seed=0, safe_action=[0.1])
    assert [a[0] for a in e.actions] == [pytest.approx(0.1)] * 2
    assert s["interventions"]["exception"] == 2


def test_frozen_sensor_is_stale_after_the_timeout_and_gets_the_safe_action():
    class Frozen(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.n, self.held = 0, None

        def observation(self, obs):
            self.n += 1
            if self.n == 3:
                self.held = obs
            return self.held if self.held is not None else obs

    e = Recorder(Frozen(sim_env("InvertedPendulum-v5", 500)))  # 2 ms per tick; stale after 10 ms = 5 ticks
    s = run(constant(0.5), e, ticks=12, seed=0, stale_after_s=0.01, stop_after_s=1.0)
    # the observation stops changing at tick 2; ticks 3..6 are within 10 ms, ticks 7..11 are stale
    assert s["interventions"]["stale"] == 5
    assert [a[0] for a in e.actions] == [0.5] * 7 + [0.0] * 5


def test_slow_inference_over_budget_gets_the_safe_action_then_stops():
    import time

    def slow(obs):
        time.sleep(0.003)
        return np.array([0.5], np.float32)

    e = env()  # unpaced: the budget is explicit here
    s = run(slow, e, ticks=50, seed=0, budget_s=0.001, stop_after_s=0.2)  # 0.2 s = 5 ticks of 0.04 s
    assert s["stop_reason"] == "fault"
    assert s["interventions"]["overrun"] == 5 and s["ticks"] == 5
    assert [a[0] for a in e.actions] == [0.0] * 5


def test_safety_off_lets_the_raw_action_through_but_never_a_nan():
    e = env()
    s = run(constant(10.0), e, ticks=2, seed=0, safety=False)
    assert s["interventions"] == {k: 0 for k in s["interventions"]}
    assert [a[0] for a in e.actions] == [3.0, 3.0]  # the robot adapter still clips to its limits
    e = env()
    s = run(constant(np.nan), e, ticks=3, seed=0, safety=False)
    assert s["stop_reason"] == "fault" and e.actions == [] and "non-finite" in s["first_error"]


def test_interventions_count_once_per_tick_per_kind():
    layer = SafetyLayer(SafetyConfig(max_rate=1.0), np.array([-1.0], np.float32), np.array([1.0], np.float32), 0.1)
    d = layer.decide(np.array([5.0]))  # clamped to 1, then limited to 0.1 from the safe action 0
    assert d.kinds == ("clamp", "rate_limit") and d.action[0] == pytest.approx(0.1)
    d = layer.decide(np.array([0.15]))
    assert d.kinds == () and d.action[0] == pytest.approx(0.15)
    assert layer.report()["clamp"] == 1 and layer.report()["rate_limit"] == 1


@pytest.mark.parametrize("low, high, expected", [
    ([-1.0, -2.0], [1.0, 2.0], [0.0, 0.0]),  # zero inside the limits
    ([0.5, -1.0], [1.5, 1.0], [1.0, 0.0]),  # zero outside: the middle
])
def test_default_safe_action(low, high, expected):
    assert default_safe_action(np.array(low), np.array(high)).tolist() == expected


def test_bad_safety_options_are_refused_by_name():
    with pytest.raises(ValueError, match="stale_after_s"):
        SafetyConfig(stale_after_s=0)
    with pytest.raises(ValueError, match="outside the limits"):
        SafetyLayer(SafetyConfig(safe_action=(5.0,)), np.array([-1.0]), np.array([1.0]), 0.01)
    with pytest.raises(TypeError, match="unknown safety option"):
        run(constant(0.0), env(), ticks=1, max_rat=3)

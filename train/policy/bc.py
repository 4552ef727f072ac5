"""Behaviour cloning with DAgger rounds into a small Keras 3 MLP.

Round 0 rolls the expert out with exploration noise on its actions (so the data covers states a
little off the expert's own path, as in DART) and fits the student. Each later round lets the
student drive, asks the expert what it would have done in every state the student visited,
adds those pairs to the data and fits again (DAgger: Ross et al. 2011). The student sees

- observations standardized per feature, ``(obs - mean) / std``, with mean and std of the
  round-0 data (stored in the model's metadata; the runtime applies them before the int8
  input, which is scaled per tensor);
- actions normalized to [-1, 1] by the action limits (``y = (a - center) / half_range``).

Rollouts of the student use a numpy copy of the network (:func:`numpy_forward`): calling Keras
once per step would make each round minutes instead of seconds."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BCConfig:
    """Training options; defaults per environment come from :func:`default_config`."""

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    expert_episodes: int = 10
    action_noise: float = 0.1  # round 0: Gaussian noise on the expert's actions, in normalized units
    dagger_rounds: int = 3
    dagger_episodes: int = 5
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 2e-3
    max_steps: int | None = None  # cap on steps per episode (None: the env's limit)
    seed: int = 0


DEFAULTS = {
    "InvertedPendulum-v5": BCConfig(expert_episodes=6, dagger_episodes=3, epochs=20, max_steps=500),
    "InvertedDoublePendulum-v5": BCConfig(hidden=(64, 64), expert_episodes=8, dagger_rounds=4, dagger_episodes=4,
                                          epochs=30, max_steps=500),
    "Pendulum-v1": BCConfig(hidden=(128, 128), expert_episodes=60, dagger_rounds=6, dagger_episodes=30, epochs=40),
    "Reacher-v5": BCConfig(hidden=(128, 128), expert_episodes=300, dagger_rounds=4, dagger_episodes=150, epochs=40),
}


def default_config(env_id: str, **overrides) -> BCConfig:
    from dataclasses import replace

    return replace(DEFAULTS.get(env_id, BCConfig()), **overrides)


@dataclass
class Dataset:
    obs: list = field(default_factory=list)
    act: list = field(default_factory=list)

    def add(self, obs: np.ndarray, act: np.ndarray) -> None:
        self.obs.append(np.asarray(obs, np.float64))
        self.act.append(np.asarray(act, np.float64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.obs), np.concatenate(self.act)

    def __len__(self) -> int:
        return sum(len(o) for o in self.obs)


@dataclass(frozen=True)
class Normalization:
    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_center: np.ndarray
    action_half_range: np.ndarray

    def obs_in(self, obs: np.ndarray) -> np.ndarray:
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)

    def action_in(self, action: np.ndarray) -> np.ndarray:
        return ((action - self.action_center) / self.action_half_range).astype(np.float32)

    def action_out(self, y: np.ndarray) -> np.ndarray:
        return self.action_center + self.action_half_range * y


def normalization(obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> Normalization:
    """Per-feature mean and std of ``obs`` (std floored at 1e-3 of the largest, so a feature
    that never moved in the data cannot blow up), and the action limits' center / half range."""
    mean, std = obs.mean(axis=0), obs.std(axis=0)
    std = np.maximum(std, max(1e-3 * float(std.max()), 1e-6))
    return Normalization(mean, std, (low + high) / 2, (high - low) / 2)


def build_mlp(obs_size: int, action_size: int, config: BCConfig, keras=None):
    """The student: ``hidden`` Dense layers named ``hidden<i>`` and a linear ``action`` layer.
    ``keras`` is the Keras module to build with (Keras 3 by default; the QAT child passes
    tf_keras and loads the trained weights by these layer names)."""
    if keras is None:
        import keras

    layers = [keras.Input((obs_size,), name="observation")]
    for i, width in enumerate(config.hidden):
        layers.append(keras.layers.Dense(width, activation=config.activation, name=f"hidden{i}"))
    layers.append(keras.layers.Dense(action_size, name="action"))
    model = keras.Sequential(layers, name="policy")
    model.compile(keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model


def numpy_forward(model, activation: str):
    """``x -> y`` with the Keras model's current weights, in numpy (fast single-sample calls)."""
    weights = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in model.layers if hasattr(layer, "kernel")]
    act = np.tanh if activation == "tanh" else (lambda v: np.maximum(v, 0.0))

    def forward(x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float32)
        for W, b in weights[:-1]:
            h = act(h @ W + b)
        W, b = weights[-1]
        return h @ W + b

    return forward


def rollout(env, act, expert, seed: int, max_steps: int | None, noise: float = 0.0,
            half_range: np.ndarray | None = None, rng: np.random.Generator | None = None):
    """One episode driven by ``act`` (obs -> action); returns the visited observations, the
    expert's labels for them, and the episode's return."""
    obs, _ = env.reset(seed=seed)
    visited, labels, total, steps = [], [], 0.0, 0
    low, high = env.action_space.low, env.action_space.high
    while True:
        label = expert(obs)
        visited.append(np.asarray(obs, np.float64))
        labels.append(np.asarray(label, np.float64))
        action = np.asarray(act(obs), np.float64)
        if noise and rng is not None:
            action = action + rng.normal(0.0, noise, size=action.shape) * half_range
        obs, reward, terminated, truncated, _ = env.step(np.clip(action, low, high).astype(np.float32))
        total += float(reward)
        steps += 1
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            return np.array(visited), np.array(labels), total


def train_bc(env, expert, config: BCConfig, progress=None):
    """Behaviour cloning + DAgger. Returns ``(keras_model, normalization, data, history)``
    where ``history`` lists per round: samples, the student's mean return on its rollouts."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    say = progress or (lambda message: None)
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    low = np.asarray(env.action_space.low, np.float64)
    high = np.asarray(env.action_space.high, np.float64)
    half = (high - low) / 2
    data = Dataset()
    seed = config.seed * 100_000
    returns = []
    for _ in range(config.expert_episodes):
        o, a, r = rollout(env, expert, expert, seed, config.max_steps, config.action_noise, half, rng)
        data.add(o, a)
        returns.append(r)
        seed += 1
    obs, act = data.arrays()
    norm = normalization(obs, low, high)
    say(f"round 0: {len(data)} expert samples (noisy expert return {np.mean(returns):.2f})")
    model = build_mlp(obs.shape[1], act.shape[1], config)
    history = [{"round": 0, "samples": len(data), "driver": "expert+noise", "return_mean": float(np.mean(returns))}]
    for round_index in range(config.dagger_rounds + 1):
        obs, act = data.arrays()
        model.fit(norm.obs_in(obs), norm.action_in(act), epochs=config.epochs, batch_size=config.batch_size,
                  shuffle=True, verbose=0)
        if round_index == config.dagger_rounds:
            break
        forward = numpy_forward(model, config.activation)

        def student(o):
            return norm.action_out(forward(norm.obs_in(np.asarray(o, np.float64)[None]))[0])

        returns = []
        for _ in range(config.dagger_episodes):
            o, a, r = rollout(env, student, expert, seed, config.max_steps)
            data.add(o, a)
            returns.append(r)
            seed += 1
        history.append({"round": round_index + 1, "samples": len(data), "driver": "student",
                        "return_mean": float(np.mean(returns))})
        say(f"DAgger round {round_index + 1}: student return {np.mean(returns):.2f}, {len(data)} samples")
    return model, norm, data, history

"""A control policy: an ``edge_runtime`` model plus what its metadata says about using it.

A policy trained by ``edgepilot train policy`` carries (in the model file and its sidecar):

- ``task = "policy"``;
- ``preprocess.mean`` / ``preprocess.std``: one value per observation feature. The runtime
  standardizes ``(obs - mean) / std`` *before* the model's input, so an int8 input tensor,
  which is scaled as a whole, sees features of one range (a joint velocity no longer leaves a
  target position a handful of levels);
- ``extra["policy"]``: a JSON object (:class:`PolicySpec`) with the environment, the control
  rate it was trained at, the observation and action sizes, limits and units, and the action
  normalization: the model outputs ``y`` and the action is ``center + half_range * y``.

A model without this metadata (made elsewhere) is accepted when its input and output sizes
match the robot, with a warning that no normalization is known (observations go in raw and
actions come out as they are)."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

POLICY_TASK = "policy"


@dataclass(frozen=True)
class PolicySpec:
    """How a policy's numbers map to the robot's (stored as ``extra["policy"]``)."""

    env_id: str
    rate_hz: float  # the control rate the policy was trained at
    obs_size: int
    action_size: int
    obs_low: tuple[float, ...]
    obs_high: tuple[float, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    obs_units: tuple[str, ...] = ()
    action_units: tuple[str, ...] = ()

    def __post_init__(self):
        if len(self.action_low) != self.action_size or len(self.action_high) != self.action_size:
            raise ValueError(f"policy metadata: action limits must have {self.action_size} values each, "
                             f"got {list(self.action_low)} and {list(self.action_high)}")
        if any(not (math.isfinite(lo) and math.isfinite(hi) and lo < hi)
               for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"policy metadata: action limits must be finite with low < high, "
                             f"got {list(self.action_low)} and {list(self.action_high)}")

    @property
    def action_center(self) -> np.ndarray:
        return (np.asarray(self.action_low) + np.asarray(self.action_high)) / 2

    @property
    def action_half_range(self) -> np.ndarray:
        return (np.asarray(self.action_high) - np.asarray(self.action_low)) / 2

    def to_json(self) -> str:
        data = asdict(self)
        # JSON has no infinity: open observation bounds are written as null
        for key in ("obs_low", "obs_high"):
            data[key] = [v if math.isfinite(v) else None for v in data[key]]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PolicySpec":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"policy metadata must be a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"policy metadata: unknown fields {unknown}")
        for key, inf in (("obs_low", -math.inf), ("obs_high", math.inf)):
            data[key] = tuple(inf if v is None else float(v) for v in data.get(key, ()))
        for key in ("action_low", "action_high"):
            data[key] = tuple(float(v) for v in data[key])
        for key in ("obs_units", "action_units"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


class PolicyError(ValueError):
    """A model that cannot drive this robot; raised before the robot moves."""


class Policy:
    """``policy(obs) -> action``: standardize, run the model through edge_runtime, map the
    output back to action units. Raises on inference errors (the loop catches them)."""

    def __init__(self, model, obs_size: int, action_size: int):
        import edge_runtime

        self.model = model if isinstance(model, edge_runtime.Model) else edge_runtime.load(model, device="cpu")
        where = self.model.path
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise PolicyError(f"{where}: a policy must be a single-input single-output network; this model has "
                              f"{len(self.model.inputs)} input(s) and {len(self.model.outputs)} output(s)")
        spec_in, spec_out = self.model.inputs[0], self.model.outputs[0]
        in_size, out_size = _features(spec_in.shape), _features(spec_out.shape)
        if in_size != obs_size:
            raise PolicyError(f"{where}: input '{spec_in.name}' takes {in_size} observation value(s) "
                              f"(shape {list(spec_in.shape)}) but the robot observes {obs_size}")
        if out_size != action_size:
            raise PolicyError(f"{where}: output '{spec_out.name}' gives {out_size} action value(s) "
                              f"(shape {list(spec_out.shape)}) but the robot takes {action_size}")
        self.obs_size, self.action_size = obs_size, action_size
        self._shape = (1, obs_size)
        info = self.model.info
        self.spec: PolicySpec | None = None
        self.warning: str | None = None
        if info is not None and info.task == POLICY_TASK and "policy" in info.extra:
            self.spec = PolicySpec.from_json(info.extra["policy"])
            if (self.spec.obs_size, self.spec.action_size) != (obs_size, action_size):
                raise PolicyError(f"{where}: metadata says {self.spec.obs_size} observation(s) -> "
                                  f"{self.spec.action_size} action(s) for {self.spec.env_id}, "
                                  f"the robot has {obs_size} -> {action_size}")
            mean, std = np.asarray(info.preprocess.mean, np.float32), np.asarray(info.preprocess.std, np.float32)
            if mean.size not in (1, obs_size) or std.size not in (1, obs_size):
                raise PolicyError(f"{where}: metadata preprocess mean/std have {mean.size}/{std.size} values, "
                                  f"expected {obs_size} (one per observation feature)")
            self.mean, self.inv_std = mean, (1.0 / std).astype(np.float32)
            self.center = self.spec.action_center.astype(np.float32)
            self.half_range = self.spec.action_half_range.astype(np.float32)
        else:
            self.warning = (f"{where}: no policy metadata (not made by 'edgepilot train policy'): no observation "
                            "standardization or action scaling is known; observations go in raw and the output "
                            "is used as the action")
            warnings.warn(self.warning, stacklevel=2)
            self.mean = np.zeros(obs_size, np.float32)
            self.inv_std = np.ones(obs_size, np.float32)
            self.center = np.zeros(action_size, np.float32)
            self.half_range = np.ones(action_size, np.float32)
        self._in_shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec_in.shape)

    @property
    def action_limits(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.spec is None:
            return None
        return np.asarray(self.spec.action_low, np.float32), np.asarray(self.spec.action_high, np.float32)

    def model_input(self, obs: np.ndarray) -> np.ndarray:
        """The observation in the model's input form (standardized, float32, batch of one)."""
        x = (np.asarray(obs, dtype=np.float32).reshape(-1) - self.mean) * self.inv_std
        return x.reshape(self._in_shape)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        y = self.model.run(self.model_input(obs))[0].reshape(-1)
        return self.center + self.half_range * y.astype(np.float32)


def _features(shape) -> int:
    """Values per sample: the product of the dimensions after the batch (open ones count 1)."""
    dims = [d for d in tuple(shape)[1:] if isinstance(d, int)]
    size = 1
    for d in dims:
        size *= max(d, 1)
    return size

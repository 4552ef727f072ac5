"""Models that cannot drive the robot give a clear error before the robot moves; a model made
elsewhere (no policy metadata) runs with a warning; policy metadata is applied exactly."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx
from onnx import TensorProto, helper

from apps.control import Policy, PolicyError, PolicySpec, run, sim_env
from edge_runtime.metadata import METADATA_KEY, ModelMetadata, Preprocess


def linear_onnx(path, n_in: int, n_out: int, weight: np.ndarray | None = None, inputs: int = 1, outputs: int = 1,
                metadata: ModelMetadata | None = None):
    """``y = x @ W`` as an ONNX model (no TensorFlow needed); optionally extra inputs/outputs."""
    W = np.zeros((n_in, n_out), np.float32) if weight is None else weight.astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x0", "W"], ["y0"])]
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1, n_in]) for i in range(inputs)]
    outs = [helper.make_tensor_value_info("y0", TensorProto.FLOAT, [1, n_out])]
    for j in range(1, outputs):
        nodes.append(helper.make_node("Identity", ["y0"], [f"y{j}"]))
        outs.append(helper.make_tensor_value_info(f"y{j}", TensorProto.FLOAT, [1, n_out]))
    graph = helper.make_graph(nodes, "policy", ins, outs, [helper.make_tensor("W", TensorProto.FLOAT, W.shape, W.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        model.metadata_props.add(key=METADATA_KEY, value=metadata.to_json())
    onnx.save(model, str(path))
    return str(path)


class Untouched(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


@pytest.mark.parametrize("n_in, n_out, inputs, outputs, message", [
    (5, 1, 1, 1, "takes 5 observation value.*robot observes 4"),  # wrong observation size
    (4, 2, 1, 1, "gives 2 action value.*robot takes 1"),  # wrong action size
    (4, 1, 2, 1, "single-input single-output"),  # two inputs
    (4, 1, 1, 2, "single-input single-output"),  # two outputs
])
def test_bad_models_fail_before_the_robot_moves(tmp_path, n_in, n_out, inputs, outputs, message):
    path = linear_onnx(tmp_path / "bad.onnx", n_in, n_out, inputs=inputs, outputs=outputs)
    env = Untouched(sim_env("InvertedPendulum-v5"))
    with pytest.raises(PolicyError, match=message):
        run(path, env, ticks=5)
    assert env.steps == 0


def test_metadata_for_another_robot_is_refused(tmp_path):
    spec = PolicySpec("Reacher-v5", 50.0, 4, 1, (-np.inf,) * 4, (np.inf,) * 4, (-1.0,), (1.0,))
    spec_bad = json.loads(spec.to_json())
    spec_bad["obs_size"] = 10
    meta = ModelMetadata(task="policy", extra={"policy": json.dumps(spec_bad)})
    path = linear_onnx(tmp_path / "other.onnx", 4, 1, metadata=meta)
    env = Untouched(sim_env("InvertedPendulum-v5"))
    with pytest.raises(PolicyError, match="metadata says 10 observation"):
        run(path, env, ticks=1)
    assert env.steps == 0


def test_a_model_made_elsewhere_runs_with_a_warning(tmp_path):
    path = linear_onnx(tmp_path / "plain.onnx", 4, 1)
    with pytest.warns(UserWarning, match="no policy metadata"):
        summary = run(path, sim_env("InvertedPendulum-v5"), ticks=3, seed=0)
    assert summary["ticks"] == 3
    assert "no observation standardization" in summary["warning"]


def test_standardization_and_action_scaling_from_the_metadata(tmp_path):
    # y = x0 (the standardized first feature); action = center + half_range * y
    W = np.zeros((4, 1), np.float32)
    W[0, 0] = 1.0
    spec = PolicySpec("InvertedPendulum-v5", 25.0, 4, 1, (-np.inf,) * 4, (np.inf,) * 4, (-2.0,), (4.0,))
    meta = ModelMetadata(task="policy", preprocess=Preprocess(kind="array", mean=(0.5, 0, 0, 0), std=(2.0, 1, 1, 1)),
                         extra={"policy": spec.to_json()})
    policy = Policy(linear_onnx(tmp_path / "p.onnx", 4, 1, W, metadata=meta), 4, 1)
    obs = np.array([4.5, 9.0, 9.0, 9.0])
    assert policy(obs)[0] == pytest.approx(1.0 + 3.0 * (4.5 - 0.5) / 2.0)
    assert policy.action_limits[0].tolist() == [-2.0] and policy.action_limits[1].tolist() == [4.0]


def test_policy_spec_round_trips_through_json():
    spec = PolicySpec("Pendulum-v1", 20.0, 3, 1, (-1.0, -1.0, -8.0), (1.0, 1.0, 8.0), (-2.0,), (2.0,),
                      ("1", "1", "rad/s"), ("N m",))
    assert PolicySpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown fields"):
        PolicySpec.from_json(json.dumps({**json.loads(spec.to_json()), "gain": 3}))

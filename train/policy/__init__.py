"""Policies for robot control: expert controllers, behaviour cloning with DAgger, evaluation.

``train_policy(env_id, out_dir)`` writes a training folder (saved_model/, model.keras,
calib.npz, training.json) that ``edgepilot convert`` turns into float and int8 models;
``evaluate_policy(model_path, env_id, episodes, seed)`` measures a model's closed-loop return."""
from train.policy.evaluate import evaluate_policy
from train.policy.workflow import train_policy

__all__ = ["evaluate_policy", "train_policy"]

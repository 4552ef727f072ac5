"""Fixed-rate robot control with quantized policies: ``edgepilot control``.

    >>> from apps.control import run, sim_env
    >>> summary = run("policy_int8.tflite", sim_env("InvertedPendulum-v5", 500), rate_hz=500, duration_s=10)
    >>> summary["return"], summary["missed_pct"], summary["interventions"]

Modules: :mod:`~apps.control.loop` (absolute deadlines, miss accounting, SCHED_FIFO on
request), :mod:`~apps.control.safety` (clamp, rate limit, non-finite hold, exception, stale,
overrun), :mod:`~apps.control.policy` (model + metadata -> action), :mod:`~apps.control.robot`
(``Robot`` base, gymnasium and serial adapters), :mod:`~apps.control.protocol` (the serial
frames), :mod:`~apps.control.sim` (rate-matched simulators), :mod:`~apps.control.runner`
(``run``). Nothing here imports TensorFlow."""
from apps.control.loop import MonotonicClock, Schedule
from apps.control.policy import Policy, PolicyError, PolicySpec
from apps.control.robot import ArraySpec, GymRobot, Outcome, Robot, SerialRobot
from apps.control.runner import run
from apps.control.safety import SafetyConfig
from apps.control.sim import sim_env

__all__ = ["ArraySpec", "GymRobot", "MonotonicClock", "Outcome", "Policy", "PolicyError", "PolicySpec", "Robot",
           "SafetyConfig", "Schedule", "SerialRobot", "run", "sim_env"]

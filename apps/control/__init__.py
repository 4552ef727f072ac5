"""Fixed-rate robot control with quantized policies: ``edgepilot control`` (docs/control.md).

    >>> from apps.control import run, sim_env
    >>> summary = run("policy_int8.tflite", sim_env("InvertedPendulum-v5", 500), rate_hz=500, duration_s=10)
    >>> summary["return"], summary["missed_pct"], summary["interventions"]

Modules: :mod:`~apps.control.loop` (absolute deadlines, miss accounting, SCHED_FIFO on
request), :mod:`~apps.control.safety` (clamp, rate limit, non-finite hold, exception, stale,
overrun), :mod:`~apps.control.policy` (model + metadata -> action), :mod:`~apps.control.robot`
(``Robot`` base, gymnasium and serial adapters), :mod:`~apps.control.protocol` (the serial
frames), :mod:`~apps.control.sim` (rate-matched simulators), :mod:`~apps.control.runner`
(``run``), :mod:`~apps.control.faults` (fault injection), :mod:`~apps.control.record`
(``--log`` / ``--plot``). Nothing here imports TensorFlow. Names are imported on first use,
so ``import apps.control.cli`` stays light."""
from __future__ import annotations

from apps.common.lazy import lazy_exports

_EXPORTS = {
    "MonotonicClock": "apps.control.loop", "Schedule": "apps.control.loop",
    "Policy": "apps.control.policy", "PolicyError": "apps.control.policy", "PolicySpec": "apps.control.policy",
    "ArraySpec": "apps.control.robot", "GymRobot": "apps.control.robot", "Outcome": "apps.control.robot",
    "Robot": "apps.control.robot", "SerialRobot": "apps.control.robot",
    "run": "apps.control.runner", "SafetyConfig": "apps.control.safety", "sim_env": "apps.control.sim",
    "TickLog": "apps.control.record",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

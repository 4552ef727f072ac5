"""Expert controllers for the simulated tasks: the teachers behaviour cloning copies.

Each expert maps an observation (exactly what the environment returns, nothing hidden) to an
action inside the action space, so DAgger can ask it to label any state the student visits.
Each is built for one environment instance, and so for its control period: the gains of the
LQR experts come from linearizing that environment's own step (``frame_skip`` MuJoCo steps of
its timestep), so the same code serves the native 25 Hz and a rate-matched 500 Hz simulator.

| expert | env | how | return it reaches (20 seeds, native rate) |
|---|---|---|---|
| :class:`LQRExpert` | InvertedPendulum-v5 | discrete LQR on the MuJoCo step linearized by central differences | 1000 (the maximum) |
| :class:`LQRExpert` | InvertedDoublePendulum-v5 | same, angles read back from sin/cos | ~9360 (the reward's ceiling) |
| :class:`SwingUpExpert` | Pendulum-v1 | energy pumping, then discrete LQR near upright | ~-140 (RL zoo v1: SAC -157, TD3 -152) |
| :class:`ReacherExpert` | Reacher-v5 | inverse kinematics + joint PD (a Jacobian-transpose PD reached only ~-5.3) | ~-3.5 |

The figures are measured by ``tests/test_policy_experts.py`` (a few seeds) and
``bench/control.py`` (20 seeds); docs/benchmarks.md holds the latest run.

Why central differences of ``mj_step``: mujoco 4.0's ``mjd_transitionFD`` refuses the RK4
integrator these environments use."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXPERT_ENVS = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Pendulum-v1", "Reacher-v5")


def linearize_mujoco(env, ctrl: np.ndarray | None = None, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """``A, B`` of one environment step around the model's reference pose at rest.

    State ``x = (qpos, qvel)``, input ``u = ctrl``; one step is ``frame_skip`` calls of
    ``mj_step`` at the model's timestep, exactly what ``env.step`` does. Central differences
    with step ``eps`` on a private ``MjData`` (the environment's own data is left alone)."""
    import mujoco

    raw = env.unwrapped
    model, frame_skip = raw.model, int(raw.frame_skip)
    nq, nv, nu = model.nq, model.nv, model.nu
    data = mujoco.MjData(model)
    q0, v0 = model.qpos0.copy(), np.zeros(nv)
    u0 = np.zeros(nu) if ctrl is None else np.asarray(ctrl, dtype=np.float64)
    if nq != nv:
        raise ValueError(f"linearize_mujoco: free or ball joints (nq={nq} != nv={nv}) are not supported")

    def step(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
        for _ in range(frame_skip):
            mujoco.mj_step(model, data)
        return np.concatenate([data.qpos, data.qvel])

    x0 = np.concatenate([q0, v0])
    n = nq + nv
    A, B = np.zeros((n, n)), np.zeros((n, nu))
    for i in range(n):
        dx = np.zeros(n)
        dx[i] = eps
        A[:, i] = (step(x0 + dx, u0) - step(x0 - dx, u0)) / (2 * eps)
    for j in range(nu):
        du = np.zeros(nu)
        du[j] = eps
        B[:, j] = (step(x0, u0 + du) - step(x0, u0 - du)) / (2 * eps)
    return A, B


def dlqr(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    """The discrete LQR gain ``K`` (``u = -K x``) from the discrete algebraic Riccati equation."""
    from scipy.linalg import solve_discrete_are

    P = solve_discrete_are(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


@dataclass(frozen=True)
class LQRExpert:
    """``u = -K (x - x_ref)`` clipped to the action limits, for the cart-pole tasks.

    ``state_of`` turns an observation into ``(qpos, qvel)``: the single pendulum observes its
    state directly; the double pendulum observes sin and cos of its hinge angles (angles come
    back through ``atan2``) and clipped velocities (unclipped near upright, where LQR acts)."""

    env_id: str
    K: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def state_of(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if self.env_id.startswith("InvertedPendulum"):
            return obs[:4]
        x, s1, s2, c1, c2 = obs[:5]
        return np.array([x, math.atan2(s1, c1), math.atan2(s2, c2), *obs[5:8]])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        u = -self.K @ self.state_of(obs)
        return np.clip(u, self.low, self.high).astype(np.float32)


def lqr_expert(env) -> LQRExpert:
    """LQR for InvertedPendulum-v5 / InvertedDoublePendulum-v5 at ``env``'s own control period.

    Weights: angles cost most (the episode ends at 0.2 rad for the single pendulum, at a tip
    height of 1 m for the double), the cart position a little (the double pendulum's reward
    charges 0.01 x^2), velocities a little for damping; the input cost keeps the gain inside the
    actuator's range for the starting noise the environments use (+-0.01 rad, +-0.01 m)."""
    env_id = env.spec.id
    A, B = linearize_mujoco(env)
    if env_id.startswith("InvertedPendulum"):
        Q, R = np.diag([1.0, 10.0, 0.1, 0.1]), np.diag([0.1])
    elif env_id.startswith("InvertedDoublePendulum"):
        Q, R = np.diag([1.0, 50.0, 50.0, 0.1, 1.0, 1.0]), np.diag([1.0])
    else:
        raise ValueError(f"lqr_expert: no LQR weights for {env_id!r}; expected InvertedPendulum or InvertedDoublePendulum")
    K = dlqr(A, B, Q, R)
    space = env.action_space
    return LQRExpert(env_id, K, np.asarray(space.low, np.float64), np.asarray(space.high, np.float64))


@dataclass(frozen=True)
class SwingUpExpert:
    """Pendulum-v1: pump energy until the pendulum comes up, then hold it with LQR.

    The dynamics are ``thdd = a sin(th) + b u`` with ``a = 3g/2l``, ``b = 3/(ml^2)``; the energy
    ``E = thd^2/2 + a cos(th)`` is ``a`` at rest upright. Far from upright ``u = k (a - E) thd``
    (clipped to +-max torque) drives ``E`` to ``a``; within ``switch_rad`` of upright a discrete
    LQR on the environment's semi-implicit Euler step takes over."""

    a: float
    b: float
    K: np.ndarray
    max_torque: float
    pump_gain: float = 1.0
    switch_rad: float = 0.6

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        c, s, thd = (float(v) for v in np.asarray(obs)[:3])
        th = math.atan2(s, c)
        if abs(th) < self.switch_rad:
            u = float(-(self.K @ np.array([th, thd]))[0])
        else:
            energy = 0.5 * thd * thd + self.a * c
            u = self.pump_gain * (self.a - energy) * (thd if thd != 0 else 1.0)
        return np.array([np.clip(u, -self.max_torque, self.max_torque)], dtype=np.float32)


def swing_up_expert(env) -> SwingUpExpert:
    raw = env.unwrapped
    g, m, l, dt = float(raw.g), float(raw.m), float(raw.l), float(raw.dt)
    a, b = 3 * g / (2 * l), 3 / (m * l * l)
    # Pendulum-v1's step: thd' = thd + (a sin th + b u) dt ; th' = th + thd' dt
    A = np.array([[1 + a * dt * dt, dt], [a * dt, 1.0]])
    B = np.array([[b * dt * dt], [b * dt]])
    K = dlqr(A, B, np.diag([1.0, 0.1]), np.diag([0.001]))  # the reward's own weights
    return SwingUpExpert(a, b, K, float(raw.max_torque))


@dataclass(frozen=True)
class ReacherExpert:
    """Reacher-v5: analytic inverse kinematics of the two-link arm for the target, then joint PD
    (``a = kp * (q_target - q) - kd * qd``, clipped to +-1).

    Everything comes from the observation: joint angles from cos/sin, the fingertip from forward
    kinematics, the target as fingertip minus the observed error. Of the two elbow solutions the
    one nearer the current pose is taken. The gains are small on purpose: the reward charges
    ``|a|^2`` per step, and with gear 200 and armature 1 a torque of 0.3 already turns a joint
    fast. A task-space PD through the Jacobian transpose (``tau = J^T (kp e) - kq qd``) was
    tried first and reached only about -5.3 (it is weak when the arm is folded or the target is
    behind it); this reaches about -3.6, the level of published RL results."""

    kp: float = 0.3
    kd: float = 0.05
    l1: float = 0.1  # reacher.xml: body1 sits 0.1 m along link 0
    l2: float = 0.11  # the fingertip sits 0.11 m along link 1
    low: float = -1.0
    high: float = 1.0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        o = np.asarray(obs, dtype=np.float64)
        q0, q1 = math.atan2(o[2], o[0]), math.atan2(o[3], o[1])
        qd = o[6:8]
        tip_x = self.l1 * math.cos(q0) + self.l2 * math.cos(q0 + q1)
        tip_y = self.l1 * math.sin(q0) + self.l2 * math.sin(q0 + q1)
        tx, ty = tip_x - o[8], tip_y - o[9]
        cos_elbow = (tx * tx + ty * ty - self.l1 ** 2 - self.l2 ** 2) / (2 * self.l1 * self.l2)
        elbow = math.acos(min(1.0, max(-1.0, cos_elbow)))
        best = None
        for b in (elbow, -elbow):
            a = math.atan2(ty, tx) - math.atan2(self.l2 * math.sin(b), self.l1 + self.l2 * math.cos(b))
            error = np.array([_wrap(a - q0), _wrap(b - q1)])
            if best is None or np.abs(error).sum() < np.abs(best).sum():
                best = error
        return np.clip(self.kp * best - self.kd * qd, self.low, self.high).astype(np.float32)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def make_expert(env):
    """The expert for ``env`` (a gymnasium env made with ``gym.make`` or ``sim_env``)."""
    env_id = env.spec.id
    if env_id.startswith(("InvertedPendulum", "InvertedDoublePendulum")):
        return lqr_expert(env)
    if env_id.startswith("Pendulum"):
        return swing_up_expert(env)
    if env_id.startswith("Reacher"):
        return ReacherExpert()
    raise ValueError(f"no expert for {env_id!r}; experts exist for {', '.join(EXPERT_ENVS)}")


def rollout_return(env, policy, seed: int, max_steps: int | None = None) -> float:
    """The return of one episode of ``policy`` (obs -> action) from ``env.reset(seed=seed)``."""
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += float(reward)
        steps += 1
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            return total

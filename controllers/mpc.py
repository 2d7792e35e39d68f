"""Joint-space MPC: smooths an action chunk into 500 Hz joint commands under limits.

Each of the 14 action dimensions of ``kinema.aloha`` is a double integrator driven by its
acceleration, so the problem separates per joint (REFERENCE.md, Controllers). Units: rad, rad/s,
rad/s²; for grippers read "opening" (0..1) for rad. From position p, velocity v and a_{−1}, the
acceleration commanded at the previous tick, the plan holds accelerations a_0 … a_{N−1} over
N = ``horizon_steps`` steps of h = ``horizon_dt_s`` each:

    p_k = p + k·h·v + h² Σ_{j<k} (k − j − ½) a_j          position at t + k·h
    v_k = v + h Σ_{j<k} a_j                                velocity at t + k·h

    minimise   w_track Σ_{k=1..N} (p_k − r_k)² + w_jerk Σ_{k=0..N−1} ((a_k − a_{k−1}) / h)²
               + w_effort Σ_k a_k²
    subject to lower ≤ p_k ≤ upper,  |v_k| ≤ v_max  (k = 1..N),   |a_k| ≤ a_max,
               a_lo ≤ a_0 ≤ a_hi                                  (the next state can stop)

with r_k the reference at t + k·h, clipped into the position limits. The command for the next
tick (τ = ``tick_dt_s``) is the plan at τ: position p + τ v + τ²/2 a_0, velocity v + τ a_0,
acceleration a_0; it is also the state the next tick starts from.

Why a_lo, a_hi: limits held only every h let a plan graze a limit between two steps, and the
next tick, whose steps fall 2 ms later, may find no plan at all. So the next state must be
*recoverable*: braking at a_max from it stops inside the limits, p_τ + max(v_τ, 0)² / (2 a_max)
≤ upper and its mirror image for lower (``recoverable_bounds`` solves this for a_0 in closed
form). Braking at a_max from a recoverable state keeps it recoverable and meets every constraint
above, so the problem stays feasible tick after tick.

Solving: ``build_joint_problem`` states the problem in cvxpy with Parameters (DPP), the cost as
quadratic forms of the variable plus linear terms (constants of the parameters alone are
dropped; they do not move the minimiser), so cvxpy adds no helper variables. ``extract_qp``
canonicalises it once into min ½ aᵀ H a + fᵀ a s.t. G a ≤ u, H and G constant, f and u affine in
the parameters θ (read off at θ = 0 and unit vectors, exact as DPP makes the map affine). Per
tick, θ of the 14 joints is one matrix, f and u two matrix products, and 14 DAQP workspaces (a
dual active-set solver, exact on small dense QPs), warm-started from their last active set, solve
the per-joint QPs of N variables. On the 2-core development machine (benchmarks/controllers.py,
N = 20, 2000 ticks): ``step`` median 0.18 ms, p99 0.28 ms, of which the 14 solves take 0.12 ms
(p99 0.23); one stacked DAQP problem of 14·N variables took 0.45 ms (p99 1.1), so joints are
solved apart; cvxpy's own ``solve()`` of all joints (OSQP, eps 1e-6, polished) took 9.5 ms.

Fallback: if a joint's solve is not optimal, or the command is not finite or breaks a limit by
more than ``limit_tolerance``, all joints brake (together, so that the arms' paths keep their
shape) toward rest at their largest acceleration, clipped into the position and velocity limits.
The result says ``status="fallback"`` and why, and ``fallback_count`` counts such ticks (none in
the closed loops of the tests and the benchmark).

Example:
    >>> import numpy as np
    >>> from kinema.aloha import HOME_POSE
    >>> mpc = JointMpc(MpcConfig())
    >>> chunk = np.tile(HOME_POSE, (50, 1))  # 50 actions, 20 ms apart, from t = 0
    >>> reference = sample_chunk(chunk, 0.0, 0.02, now_s=0.0, config=mpc.config)
    >>> result = mpc.step(MpcState.at_rest(HOME_POSE), reference)
    >>> result.status, result.command.position.shape
    ('optimal', (14,))
"""

from dataclasses import dataclass
from typing import Literal, NamedTuple

import cvxpy as cp
import daqp
import numpy as np

from kinema.aloha import (
    ACTION_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    DOF_PER_ARM,
    HOME_POSE,
    MAX_VELOCITY,
)
from kinema.types import JointCommand

PARAMETER_NAMES = (
    "position",  # p
    "velocity",  # v
    "acceleration",  # a_{−1}
    "reference",  # r_1 … r_N
    "first_min",  # a_lo
    "first_max",  # a_hi
    "lower",
    "upper",
    "max_velocity",
    "max_acceleration",
)
"""The parameters θ of ``build_joint_problem``, in the order of their entries in θ."""

_DAQP_FAILURES = {-1: "infeasible", -2: "cycling", -3: "unbounded", -4: "iteration limit"}


class MpcError(ValueError):
    """A state, reference, chunk or configuration the MPC cannot use."""


def _per_joint(arm: float, gripper: float) -> tuple[float, ...]:
    return ((arm,) * (DOF_PER_ARM - 1) + (gripper,)) * 2


@dataclass(frozen=True)
class MpcConfig:
    """Horizon, limits and weights of ``JointMpc``; per-joint tuples in ``kinema.aloha`` order.

    Attributes:
        horizon_steps: N, number of planned acceleration steps.
        horizon_dt_s: h, length of a planned step in seconds (the 50 Hz chunk step).
        tick_dt_s: τ, controller period in seconds (500 Hz).
        lower_rad, upper_rad: (14,) position limits (gripper: opening 0..1).
        max_velocity_rad_s: (14,) largest |velocity| (arms: the servos' π rad/s).
        max_acceleration_rad_s2: (14,) largest |acceleration|.
        tracking_weight: w_track, per rad² of position error at each planned step.
        jerk_weight: w_jerk, per (rad/s³)² of jerk at each planned step.
        effort_weight: w_effort, per (rad/s²)² of acceleration at each planned step.
        iteration_limit: most DAQP active-set iterations per joint and tick.
        limit_tolerance: largest limit violation (rad, rad/s, rad/s²) accepted from the solver;
            accepted commands are then clipped into the limits.
    """

    horizon_steps: int = 20
    horizon_dt_s: float = 0.02
    tick_dt_s: float = 0.002
    lower_rad: tuple[float, ...] = tuple(ACTION_LOW.tolist())
    upper_rad: tuple[float, ...] = tuple(ACTION_HIGH.tolist())
    max_velocity_rad_s: tuple[float, ...] = tuple(MAX_VELOCITY.tolist())
    max_acceleration_rad_s2: tuple[float, ...] = _per_joint(20.0, 100.0)
    tracking_weight: float = 1.0
    jerk_weight: float = 1e-9
    effort_weight: float = 1e-10
    iteration_limit: int = 1000
    limit_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("lower_rad", "upper_rad", "max_velocity_rad_s", "max_acceleration_rad_s2"):
            if len(getattr(self, name)) != ACTION_DIM:
                got = len(getattr(self, name))
                raise MpcError(f"MpcConfig.{name} must have {ACTION_DIM} entries. Got {got}.")
        stop_s = np.divide(self.max_velocity_rad_s, self.max_acceleration_rad_s2)
        horizon_s = self.horizon_steps * self.horizon_dt_s
        if not (
            np.all(np.greater(self.upper_rad, self.lower_rad))
            and np.all(stop_s > 0)
            and stop_s.max() <= horizon_s
            and 0 < self.tick_dt_s <= self.horizon_dt_s
        ):
            raise MpcError(
                "MpcConfig needs upper_rad > lower_rad, positive limits, 0 < tick_dt_s <= "
                "horizon_dt_s and a horizon no shorter than a stop from full speed "
                f"({stop_s.max():.3g} s). Got horizon {horizon_s:.3g} s, tick {self.tick_dt_s} s."
            )


class MpcState(NamedTuple):
    """Commanded state of the 14 joints: position (rad), velocity (rad/s), acceleration (rad/s²)."""

    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    @classmethod
    def at_rest(cls, position: np.ndarray) -> "MpcState":
        """The state at ``position`` (14,) with zero velocity and acceleration."""
        position = np.array(position, dtype=np.float64)
        return cls(position, np.zeros_like(position), np.zeros_like(position))


class MpcResult(NamedTuple):
    """One tick: the command to send, the state it commands, and how it was obtained."""

    command: JointCommand
    state: MpcState
    status: Literal["optimal", "fallback"]
    reason: str


class JointProblem(NamedTuple):
    """One joint's MPC as a DPP cvxpy problem: accelerations (N,) and ``PARAMETER_NAMES``."""

    problem: cp.Problem
    acceleration: cp.Variable
    parameters: tuple[cp.Parameter, ...]


class CanonicalQp(NamedTuple):
    """``JointProblem`` as the QP: minimise ½ aᵀ H a + fᵀ a subject to rows @ a ≤ u.

    For θ̃ = [θ, 1] (one row per joint): f = θ̃ @ cost_map.T and u = θ̃ @ bound_map.T.
    Rows have unit norm.
    """

    hessian: np.ndarray
    cost_map: np.ndarray
    rows: np.ndarray
    bound_map: np.ndarray


def build_joint_problem(config: MpcConfig) -> JointProblem:
    """The per-joint MPC of the module docstring, its parameters named as in ``PARAMETER_NAMES``."""
    n, h = config.horizon_steps, config.horizon_dt_s
    lag = np.subtract.outer(np.arange(n), np.arange(n))  # k − j, row k for step k + 1
    to_position = np.where(lag >= 0, h * h * (lag + 0.5), 0.0)
    to_velocity = np.where(lag >= 0, h, 0.0)
    difference = (np.eye(n) - np.eye(n, k=-1)) / h  # (a_k − a_{k−1}) / h without a_{−1}

    a = cp.Variable(n, name="acceleration")
    parameters = [
        cp.Parameter(n if name == "reference" else (), name=name) for name in PARAMETER_NAMES
    ]
    p, v, a_prev, reference, first_min, first_max, lower, upper, v_max, a_max = parameters
    coasting = p + v * h * np.arange(1, n + 1)  # positions with a = 0
    tracking = (
        cp.quad_form(a, to_position.T @ to_position) + 2 * (coasting - reference) @ to_position @ a
    )
    jerk = cp.quad_form(a, difference.T @ difference) - 2 * a_prev * a[0] / h**2
    cost = (
        config.tracking_weight * tracking
        + config.jerk_weight * jerk
        + config.effort_weight * cp.sum_squares(a)
    )
    position = coasting + to_position @ a
    velocity = v + to_velocity @ a
    constraints = [lower <= position, position <= upper, -v_max <= velocity, velocity <= v_max]
    constraints += [-a_max <= a, a <= a_max, first_min <= a[0], a[0] <= first_max]
    return JointProblem(cp.Problem(cp.Minimize(cost), constraints), a, tuple(parameters))


def assign_parameters(joint: JointProblem, theta: np.ndarray) -> None:
    """Set the parameters of ``joint`` from one θ vector (layout of ``PARAMETER_NAMES``)."""
    start = 0
    for parameter in joint.parameters:
        parameter.value = theta[start : start + parameter.size].reshape(parameter.shape)
        start += parameter.size


def extract_qp(joint: JointProblem) -> CanonicalQp:
    """Canonicalise ``joint`` once and return its QP with data affine in the parameters."""
    data, _, _ = joint.problem.get_problem_data(cp.CLARABEL)
    program = data[cp.settings.PARAM_PROB]
    n = joint.acceleration.size
    size = sum(parameter.size for parameter in joint.parameters)
    if program.x.size != n or program.cone_dims.nonneg != program.constr_size:
        raise MpcError("the MPC must canonicalise to inequalities in the accelerations alone.")

    def canonical(theta: np.ndarray) -> tuple[np.ndarray, ...]:
        assign_parameters(joint, theta)
        hessian, f, _, a_matrix, b = program.apply_parameters(quad_obj=True)
        return hessian.toarray(), f, -a_matrix.toarray(), b  # cvxpy: A a + b ≥ 0

    hessian, f0, rows, b0 = canonical(np.zeros(size))
    cost_columns, bound_columns = [], []
    for theta in np.eye(size):
        hessian_i, f, rows_i, b = canonical(theta)
        if not (np.array_equal(hessian_i, hessian) and np.array_equal(rows_i, rows)):
            raise MpcError("the MPC's Hessian and constraint rows must not depend on θ.")
        cost_columns.append(f - f0)
        bound_columns.append(b - b0)
    scale = np.linalg.norm(rows, axis=1, keepdims=True)
    return CanonicalQp(
        hessian=hessian,
        cost_map=np.column_stack([*cost_columns, f0]),
        rows=rows / scale,
        bound_map=np.column_stack([*bound_columns, b0]) / scale,
    )


def recoverable_bounds(
    position: np.ndarray, velocity: np.ndarray, config: MpcConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Interval [a_lo, a_hi] of next-tick accelerations that leave every joint able to stop.

    With w = v + τ a the next velocity, the next position is p + τ (v + w) / 2; braking at a_max
    from there stops short of ``upper`` iff p + τ (v + w) / 2 + max(w, 0)² / (2 a_max) ≤ upper,
    which gives the largest w in closed form (and a_lo by mirroring). Arrays are (14,).
    """
    tau, a_max = config.tick_dt_s, np.array(config.max_acceleration_rad_s2)

    def largest(room: np.ndarray) -> np.ndarray:  # largest w given room = upper − p − τ v / 2
        safe = np.maximum(room, 0.0)
        return np.where(
            room >= 0, a_max * (np.sqrt(tau**2 / 4 + 2 * safe / a_max) - tau / 2), 2 * room / tau
        )

    w_max = largest(np.array(config.upper_rad) - position - tau * velocity / 2)
    w_min = -largest(position - np.array(config.lower_rad) + tau * velocity / 2)
    return (w_min - velocity) / tau, (w_max - velocity) / tau


def sample_chunk(
    chunk: np.ndarray, chunk_start_s: float, chunk_dt_s: float, now_s: float, config: MpcConfig
) -> np.ndarray:
    """The MPC reference (N, 14): ``chunk`` at now_s + k·h (k = 1..N), linearly interpolated.

    ``chunk`` (H, 14) holds positions at chunk_start_s + i·chunk_dt_s; times after the last
    action hold it, times before the first hold the first.
    """
    chunk = _checked("chunk", chunk, (None, ACTION_DIM))
    if len(chunk) == 1:
        return np.repeat(chunk, config.horizon_steps, axis=0)
    times = now_s + config.horizon_dt_s * np.arange(1, config.horizon_steps + 1)
    index = np.clip((times - chunk_start_s) / chunk_dt_s, 0.0, len(chunk) - 1)
    below = np.minimum(index.astype(int), len(chunk) - 2)
    fraction = (index - below)[:, None]
    return (1 - fraction) * chunk[below] + fraction * chunk[below + 1]


def _checked(name: str, value: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    """``value`` as float64 of ``shape`` (None: any length ≥ 1), all finite, or ``MpcError``."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != len(shape) or any(
        array.shape[i] != (size or max(array.shape[i], 1)) for i, size in enumerate(shape)
    ):
        expected = ", ".join("H" if size is None else str(size) for size in shape)
        expected = f"({expected},)" if len(shape) == 1 else f"({expected})"
        raise MpcError(f"{name} must have shape {expected}. Got {array.shape}.")
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        raise MpcError(f"{name} must be finite. Got non-finite values at {bad.tolist()}.")
    return array


class JointMpc:
    """The 14-joint MPC: built once; ``step`` is then a few matrix products and 14 DAQP solves.

    Attributes:
        config: the ``MpcConfig`` it was built with.
        joint_problem: the per-joint cvxpy problem the QP data come from.
        qp: its canonical QP (``CanonicalQp``).
        fallback_count: how many ticks fell back to braking since construction.
    """

    def __init__(self, config: MpcConfig) -> None:
        self.config = config
        self.joint_problem = build_joint_problem(config)
        self.qp = extract_qp(self.joint_problem)
        self.fallback_count = 0
        self._lower, self._upper = np.array(config.lower_rad), np.array(config.upper_rad)
        self._max_velocity = np.array(config.max_velocity_rad_s)
        self._max_acceleration = np.array(config.max_acceleration_rad_s2)
        self._limits = np.column_stack(
            [self._lower, self._upper, self._max_velocity, self._max_acceleration]
        )
        theta = self.parameters(
            MpcState.at_rest(HOME_POSE), np.tile(HOME_POSE, (config.horizon_steps, 1))
        )
        f, bounds = self._qp_data(theta)
        self._solvers = [daqp.Model() for _ in range(ACTION_DIM)]
        for j, solver in enumerate(self._solvers):
            solver.settings = {"iter_limit": config.iteration_limit}
            solver.setup(
                self.qp.hessian, f[j], self.qp.rows, bounds[j], np.full(bounds.shape[1], -np.inf)
            )
        self._cold_start = np.zeros(bounds.shape[1], dtype=np.int32)
        self._restart = np.zeros(ACTION_DIM, dtype=bool)

    def parameters(self, state: MpcState, reference: np.ndarray) -> np.ndarray:
        """θ of every joint, (14, N + 9) in the layout of ``PARAMETER_NAMES``.

        The reference is clipped into the position limits (a target beyond a limit means the
        limit), a_lo and a_hi (``recoverable_bounds``) into the acceleration limits.
        """
        first_min, first_max = recoverable_bounds(state.position, state.velocity, self.config)
        a_max = self._max_acceleration
        return np.column_stack(
            [
                state.position,
                state.velocity,
                state.acceleration,
                np.clip(reference, self._lower, self._upper).T,
                np.clip(first_min, -a_max, a_max),
                np.clip(first_max, -a_max, a_max),
                self._limits,
            ]
        )

    def step(self, state: MpcState, reference: np.ndarray) -> MpcResult:
        """The command for the next tick from ``state`` (commanded last) toward ``reference``.

        ``reference`` (N, 14) holds the wanted positions at t + k·h, k = 1..N (``sample_chunk``).
        """
        state = MpcState(
            *(
                _checked(f"state.{name}", value, (ACTION_DIM,))
                for name, value in zip(MpcState._fields, state, strict=True)
            )
        )
        reference = _checked("reference", reference, (self.config.horizon_steps, ACTION_DIM))
        first, failures = self._solve(self.parameters(state, reference))
        tau = self.config.tick_dt_s
        position = state.position + tau * state.velocity + tau**2 / 2 * first
        velocity = state.velocity + tau * first
        failures = failures or self._violations(position, velocity, first)
        if failures:
            return self._brake(state, "; ".join(failures))
        position = np.clip(position, self._lower, self._upper)
        velocity = np.clip(velocity, -self._max_velocity, self._max_velocity)
        first = np.clip(first, -self._max_acceleration, self._max_acceleration)
        return MpcResult(
            JointCommand(position, velocity), MpcState(position, velocity, first), "optimal", ""
        )

    def _qp_data(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cost vectors and row bounds of every joint's QP, one row per joint."""
        theta = np.column_stack([theta, np.ones(ACTION_DIM)])
        return theta @ self.qp.cost_map.T, theta @ self.qp.bound_map.T

    def _solve(self, theta: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """a_0 of every joint from its warm-started DAQP workspace, and the failures."""
        f, bounds = self._qp_data(theta)
        first = np.empty(ACTION_DIM)
        failures = []
        for j, solver in enumerate(self._solvers):
            if self._restart[j]:  # drop an active set left by a failed or rejected solve
                solver.update(f=f[j], bupper=bounds[j], sense=self._cold_start)
            else:
                solver.update(f=f[j], bupper=bounds[j])
            x, _, exitflag, _ = solver.solve()
            self._restart[j] = exitflag != 1
            if exitflag != 1:
                failures.append(f"joint {j}: DAQP {_DAQP_FAILURES.get(exitflag, exitflag)}")
            first[j] = x[0]
        return first, failures

    def _violations(
        self, position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray
    ) -> list[str]:
        if not np.all(np.isfinite(acceleration)):
            return ["non-finite solution"]
        excess = {
            "position": np.maximum(self._lower - position, position - self._upper),
            "velocity": np.abs(velocity) - self._max_velocity,
            "acceleration": np.abs(acceleration) - self._max_acceleration,
        }
        return [
            f"joint {np.argmax(e)}: {name} limit exceeded by {np.max(e):.3g}"
            for name, e in excess.items()
            if np.max(e) > self.config.limit_tolerance
        ]

    def _brake(self, state: MpcState, reason: str) -> MpcResult:
        """Decelerate every joint toward rest at its largest acceleration, clipped into limits."""
        tau = self.config.tick_dt_s
        a_max, v_max = self._max_acceleration, self._max_velocity
        acceleration = np.clip(-state.velocity / tau, -a_max, a_max)
        velocity = np.clip(state.velocity + tau * acceleration, -v_max, v_max)
        position = state.position + tau * state.velocity + tau**2 / 2 * acceleration
        position = np.clip(position, self._lower, self._upper)
        self.fallback_count += 1
        self._restart[:] = True
        return MpcResult(
            JointCommand(position, velocity),
            MpcState(position, velocity, acceleration),
            "fallback",
            reason,
        )

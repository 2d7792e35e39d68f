"""Task-priority whole-body controller (WBC): joint velocities for both arms from ranked tasks.

Each control period dt the WBC picks the joint velocity v of the 14-vector (rad/s; gripper
opening per second) that serves its tasks, ranked in priority levels, subject to all limits:

    level k:  minimise  Σ_{tasks t in level k} ‖A_t v − b_t‖² + λ‖v − v_{k−1}‖²
              subject to  limits (position, velocity, collision rows), and
                          A_j v = A_j v_j  for every higher level j < k.

**Strict hierarchy by nullspace projection.** After level k is solved with v_k, the velocities
still free are v = v_k + Z_k z, where the columns of Z_k span the nullspace of every higher
level's stacked task matrix (computed by rank-revealing QR; directions whose pivot is below
``nullspace_tolerance`` times the largest count as free). Level k + 1 then solves a QP in z
only, so it cannot change what any higher level achieved, by construction. The limits stay hard
constraints at every level; a level whose goal conflicts with a limit gets the best it can
within the limits, and lower levels still respect that result. Each level is one small dense QP
solved exactly by DAQP (``solver="daqp"``) or by any cvxpy solver (``solver="CLARABEL"``, …).

**Weighted mode** (``mode="weighted"``) puts every task into one QP, as mink does: tasks trade
off by their costs and nothing is guaranteed.

**Safe failure.** If the first level's QP has no solution (a state that violates a limit so far
that no velocity satisfies it), the result is v = 0 (hold) with status "fallback"; a failing
lower level keeps the higher levels' velocity. The next configuration q + v dt is clipped to the
position limits, so the WBC never commands a joint outside its range.

Example:
    >>> from kinema.sim.model import build_model
    >>> from kinema.aloha import HOME_POSE
    >>> from kinema.controllers.kinematics import Kinematics
    >>> from kinema.controllers.tasks import FrameTask, PostureTask
    >>> from kinema.controllers.limits import PositionLimit, VelocityLimit
    >>> kin = Kinematics(build_model(""))
    >>> kin.configure(HOME_POSE)
    >>> reach = FrameTask("right/tcp")
    >>> reach.set_target(kin.frame_pose("right/tcp"))
    >>> wbc = WholeBodyController(kin, [[reach], [PostureTask(HOME_POSE)]],
    ...                           [PositionLimit(), VelocityLimit()])
    >>> wbc.step(HOME_POSE).status
    'optimal'
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from scipy.linalg.lapack import dgeqp3, dorgqr

from kinema.aloha import ACTION_DIM
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits.base import Constraint, Limit
from kinema.controllers.limits.joint_position import PositionLimit
from kinema.controllers.qp import QuadraticProgram, solve_cvxpy, solve_daqp
from kinema.controllers.tasks.base import Task

_NEGLIGIBLE = 1e-12  # entries of a projected task matrix below this count as zero
_IDENTITY = np.eye(ACTION_DIM)
_NO_BOUND_BELOW = np.full(ACTION_DIM, -np.inf)
_NO_BOUND_ABOVE = np.full(ACTION_DIM, np.inf)


class WbcError(ValueError):
    """A controller built with an empty or malformed task hierarchy."""


@dataclass(frozen=True)
class WbcConfig:
    """Settings of the whole-body controller.

    Attributes:
        dt_s: control period in seconds (0.002 s: 500 Hz).
        mode: "hierarchical" (strict priorities) or "weighted" (one QP over all tasks).
        damping: λ, Levenberg–Marquardt regularisation of each level, in (error units·s)²
            per (rad/s)²; keeps the QP strictly convex near singular poses.
        nullspace_tolerance: relative singular value below which a direction counts as free.
        solver: "daqp", or the name of a cvxpy solver ("CLARABEL", "OSQP", …).
    """

    dt_s: float = 0.002
    mode: Literal["hierarchical", "weighted"] = "hierarchical"
    damping: float = 1e-6
    nullspace_tolerance: float = 1e-6
    solver: str = "daqp"


class WbcResult(NamedTuple):
    """One control period: the velocity, the next configuration q + v dt, and how it went."""

    velocity: np.ndarray  # (14,) rad/s, gripper opening per second
    configuration: np.ndarray  # (14,) rad and opening
    status: Literal["optimal", "fallback"]
    reason: str


class WholeBodyController:
    """Ranked tasks and hard limits → joint velocities and next configuration (see module)."""

    def __init__(
        self,
        kinematics: Kinematics,
        levels: Sequence[Sequence[Task]],
        limits: Sequence[Limit],
        config: WbcConfig = WbcConfig(),
    ):
        if not levels or any(not level for level in levels):
            raise WbcError(
                "WholeBodyController: levels must be a non-empty list of non-empty lists"
            )
        self.kinematics = kinematics
        self.config = config
        self.levels = [list(level) for level in levels]
        if config.mode == "weighted":
            self.levels = [[task for level in self.levels for task in level]]
        self.limits = list(limits)
        self._position_limits = [limit for limit in self.limits if isinstance(limit, PositionLimit)]
        self.fallback_count = 0

    def _solve(self, qp: QuadraticProgram) -> np.ndarray | None:
        if self.config.solver == "daqp":
            return solve_daqp(qp)
        return solve_cvxpy(qp, self.config.solver)

    def _constraints(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Box bounds (lower, upper) on v and general rows (G, lower, upper) of all limits."""
        box_lower, box_upper = _NO_BOUND_BELOW, _NO_BOUND_ABOVE
        rows: list[Constraint] = []
        for limit in self.limits:
            constraint = limit.compute_constraint(self.kinematics, self.config.dt_s)
            if constraint.G is None:
                box_lower = np.maximum(box_lower, constraint.lower)
                box_upper = np.minimum(box_upper, constraint.upper)
            else:
                rows.append(constraint)
        if len(rows) == 1:
            return box_lower, box_upper, *rows[0]
        if rows:
            G = np.vstack([c.G for c in rows])
            lower = np.concatenate([c.lower for c in rows])
            upper = np.concatenate([c.upper for c in rows])
        else:
            G, lower, upper = np.zeros((0, ACTION_DIM)), np.zeros(0), np.zeros(0)
        return box_lower, box_upper, G, lower, upper

    def solve_velocity(self, configuration: np.ndarray) -> WbcResult:
        """Configure the kinematics at ``configuration`` and solve every level in turn."""
        self.kinematics.configure(configuration)
        dt = self.config.dt_s
        box_lower, box_upper, G, lower, upper = self._constraints()
        velocity = np.zeros(ACTION_DIM)
        basis = _IDENTITY  # Z: velocities still free, v = velocity + Z z
        free_columns: frozenset[int] | None = None  # when Z is a selection of identity columns
        status, reason = "optimal", ""
        last = len(self.levels) - 1
        for index, level in enumerate(self.levels):
            if free_columns is not None and all(
                task.columns is not None and free_columns.isdisjoint(task.columns) for task in level
            ):
                continue  # no task of this level acts on the directions still free
            objectives = [task.compute_objective(self.kinematics, dt) for task in level]
            A = np.vstack([o.A for o in objectives])
            b = np.concatenate([o.b for o in objectives])
            if index == 0:  # nothing fixed yet: Z = I, v = 0
                projected, residual = A, -b
            else:
                projected, residual = A @ basis, A @ velocity - b
                if np.abs(projected).max(initial=0.0) <= _NEGLIGIBLE:
                    continue  # the higher levels left this level no freedom: its optimum is z = 0
            step = self._solve(
                self._level_qp(
                    projected,
                    residual,
                    velocity,
                    basis,
                    box_lower,
                    box_upper,
                    G,
                    lower,
                    upper,
                )
            )
            if step is None:
                self.fallback_count += 1
                status = "fallback"
                reason = f"priority level {index} has no solution within the limits"
                break
            velocity = step if index == 0 else velocity + basis @ step
            if index == last:
                break
            basis, free_columns = self._nullspace(projected, basis)
            if basis.shape[1] == 0:
                break
        configuration_next = self.kinematics.configuration + velocity * dt
        for limit in self._position_limits:
            configuration_next = np.clip(configuration_next, limit.lower, limit.upper)
        return WbcResult(velocity, configuration_next, status, reason)

    step = solve_velocity

    def _level_qp(
        self,
        projected: np.ndarray,
        residual: np.ndarray,
        velocity: np.ndarray,
        basis: np.ndarray,
        box_lower: np.ndarray,
        box_upper: np.ndarray,
        G: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> QuadraticProgram:
        """QP in z for v = velocity + basis z (see the module docstring), given the level's
        projected matrix A·basis and residual A·velocity − b."""
        size = basis.shape[1]
        H = projected.T @ projected
        H[np.diag_indices(size)] += self.config.damping
        f = projected.T @ residual
        if basis is _IDENTITY:  # first level: bounds stay simple
            return QuadraticProgram(H, f, G, lower, upper, box_lower, box_upper)
        rows = np.vstack([basis, G @ basis])
        offset = np.concatenate([velocity, G @ velocity])
        row_lower = np.concatenate([box_lower, lower]) - offset
        row_upper = np.concatenate([box_upper, upper]) - offset
        # Projected rows can be tiny; scale each to unit norm so the solver's tolerances mean the
        # same for all, and drop rows the higher levels already fixed (no z can change them).
        norms = np.linalg.norm(rows, axis=1)
        keep = norms > 1e-9
        scale = 1.0 / norms[keep]
        return QuadraticProgram(
            H,
            f,
            rows[keep] * scale[:, None],
            row_lower[keep] * scale,
            row_upper[keep] * scale,
            np.full(size, -np.inf),
            np.full(size, np.inf),
        )

    def _nullspace(
        self, projected: np.ndarray, basis: np.ndarray
    ) -> tuple[np.ndarray, frozenset[int] | None]:
        """Columns of ``basis`` times a basis of the nullspace of ``projected``, and, when that
        is a selection of identity columns, which ones (else None).

        Columns of ``projected`` that are all zero (a task level that leaves the grippers alone)
        are free directions as they are. For the rest, rank-revealing QR of the transpose
        (LAPACK's dgeqp3), Aᵀ P = Q R: the first rank(A) columns of Q span the row space of A,
        the remaining ones its nullspace (4× cheaper than an SVD here).
        """
        used = projected.any(axis=0)
        if not used.any():
            return basis, None
        factors, _, reflectors, _, _ = dgeqp3(projected[:, used].T)
        diagonal = np.abs(np.diag(factors))
        threshold = self.config.nullspace_tolerance * max(diagonal.max(initial=0.0), 1.0)
        rank = int(np.sum(diagonal > threshold))
        free = basis[:, ~used]
        size = factors.shape[0]
        if rank == size:  # the used directions are all taken
            selection = frozenset(np.flatnonzero(~used).tolist()) if basis is _IDENTITY else None
            return free, selection
        reflector_count = min(size, factors.shape[1])
        square = np.zeros((size, size))
        square[:, :reflector_count] = factors[:, :reflector_count]
        q, _, _ = dorgqr(square, reflectors[:reflector_count])  # Q from its Householder reflectors
        return np.hstack([free, basis[:, used] @ q[:, rank:]]), None

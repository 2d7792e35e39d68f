"""A small dense quadratic program and the two ways to solve it: DAQP directly, or via cvxpy.

    minimise   ½ xᵀ H x + fᵀ x
    subject to lower_x ≤ x ≤ upper_x        (simple bounds; ±inf where absent)
               lower ≤ A x ≤ upper          (general rows; ±inf where absent)

``solve_daqp`` calls the DAQP active-set solver (exact on strictly convex problems, tens of
microseconds for the WBC's 14 variables). ``solve_cvxpy`` models the same problem in cvxpy and
hands it to any cvxpy solver (CLARABEL, OSQP, …): slower, but a second opinion and an escape
hatch. Both return ``None`` when the solver reports anything but an optimum.

Example:
    >>> import numpy as np
    >>> qp = QuadraticProgram(np.eye(2), np.array([-1.0, 0.0]), np.zeros((0, 2)),
    ...                       np.zeros(0), np.zeros(0), -np.full(2, 0.5), np.full(2, 0.5))
    >>> solve_daqp(qp)
    array([0.5, 0. ])
"""

import functools
from typing import NamedTuple

import cvxpy as cp
import daqp
import numpy as np

_DAQP_INFINITY = 1e30
_DAQP_OPTIMAL = (1, 2)  # optimal, soft-optimal


class QuadraticProgram(NamedTuple):
    """The data of the QP in the module docstring; n variables, m general rows."""

    H: np.ndarray  # (n, n), symmetric positive definite
    f: np.ndarray  # (n,)
    A: np.ndarray  # (m, n)
    lower: np.ndarray  # (m,)
    upper: np.ndarray  # (m,)
    lower_x: np.ndarray  # (n,)
    upper_x: np.ndarray  # (n,)


@functools.cache
def _inequalities(count: int) -> np.ndarray:
    """DAQP's constraint-kind flags for ``count`` plain inequalities (shared: DAQP may use it as
    scratch, but leaves plain inequalities flagged 0 when it returns)."""
    return np.zeros(count, dtype=np.int32)


def solve_daqp(qp: QuadraticProgram) -> np.ndarray | None:
    """Solve with DAQP; the optimal x, or None if DAQP reports no optimum."""
    upper = np.concatenate([qp.upper_x, qp.upper]).clip(max=_DAQP_INFINITY)
    lower = np.concatenate([qp.lower_x, qp.lower]).clip(min=-_DAQP_INFINITY)
    x, _, exitflag, _ = daqp.solve(
        qp.H, qp.f, np.ascontiguousarray(qp.A), upper, lower, _inequalities(len(upper))
    )
    if exitflag not in _DAQP_OPTIMAL or not np.all(np.isfinite(x)):
        return None
    return x


def solve_cvxpy(qp: QuadraticProgram, solver: str = "CLARABEL") -> np.ndarray | None:
    """Solve the same problem through cvxpy with ``solver``; the optimal x, or None."""
    x = cp.Variable(len(qp.f))
    constraints = []
    for matrix, lower, upper in ((qp.A, qp.lower, qp.upper), (None, qp.lower_x, qp.upper_x)):
        expression = x if matrix is None else matrix @ x
        finite_upper, finite_lower = np.isfinite(upper), np.isfinite(lower)
        if finite_upper.any():
            constraints.append(expression[finite_upper] <= upper[finite_upper])
        if finite_lower.any():
            constraints.append(expression[finite_lower] >= lower[finite_lower])
    hessian = cp.psd_wrap(0.5 * (qp.H + qp.H.T))
    problem = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, hessian) + qp.f @ x), constraints)
    try:
        problem.solve(solver=solver)
    except cp.SolverError:
        return None
    if problem.status != cp.OPTIMAL or x.value is None:
        return None
    return np.asarray(x.value)

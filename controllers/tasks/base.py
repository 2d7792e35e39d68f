"""The base of every WBC task: an error e(q) and its Jacobian J = ∂e/∂q over the 14-vector.

A task asks the controller for the joint velocity v (rad/s; gripper opening per second) that
removes a fraction ``gain`` of its error in one control period dt:

    J v ≈ −gain · e / dt,

weighted by the per-row ``cost``. The controller minimises ‖diag(cost) (J v + gain·e/dt)‖²
within each priority level (see ``kinema.controllers.wbc``).

Example:
    >>> from kinema.controllers.tasks import PostureTask
    >>> from kinema.aloha import HOME_POSE
    >>> task = PostureTask(HOME_POSE, cost=1.0)
    >>> task.cost.shape
    (12,)
"""

import abc
from typing import NamedTuple

import numpy as np

from kinema.controllers.kinematics import Kinematics, Pose


class TaskError(ValueError):
    """A task built or used with arguments of the wrong shape or range."""


class Objective(NamedTuple):
    """Least-squares rows of one task: minimise ‖A v − b‖² (rows already weighted by cost)."""

    A: np.ndarray
    b: np.ndarray


def as_cost(name: str, cost: float | np.ndarray, size: int) -> np.ndarray:
    """Broadcast a scalar or (size,) cost to a non-negative (size,) vector, or raise."""
    array = np.asarray(cost, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(size, float(array))
    if array.shape != (size,):
        raise TaskError(f"{name}: cost must be a scalar or shape ({size},). Got {array.shape}.")
    if np.any(array < 0) or not np.all(np.isfinite(array)):
        raise TaskError(f"{name}: cost must be finite and non-negative. Got {array}.")
    return array


def pose_cost(
    name: str, position_cost: float | np.ndarray, orientation_cost: float | np.ndarray
) -> np.ndarray:
    """The (6,) cost of a pose error: three position rows (per m), three orientation (per rad)."""
    return np.concatenate(
        [
            as_cost(f"{name} position_cost", position_cost, 3),
            as_cost(f"{name} orientation_cost", orientation_cost, 3),
        ]
    )


def validate_pose(name: str, pose: Pose) -> Pose:
    """Return ``pose`` if its position is a finite (3,) vector and its rotation a rotation
    matrix (RᵀR = I, det R = 1, to 1e-6); raise ``TaskError`` naming ``name`` otherwise."""
    position = np.asarray(pose.position, dtype=np.float64)
    rotation = np.asarray(pose.rotation, dtype=np.float64)
    if position.shape != (3,) or not np.all(np.isfinite(position)):
        raise TaskError(f"{name}: target position must be a finite (3,) vector. Got {position}.")
    if rotation.shape != (3, 3) or not _is_rotation(rotation):
        raise TaskError(f"{name}: target rotation must be a 3 × 3 rotation matrix. Got {rotation}.")
    return Pose(position, rotation)


def _is_rotation(matrix: np.ndarray, tolerance: float = 1e-6) -> bool:
    """RᵀR = I and det R = +1 (right-handed), within ``tolerance``; NaN fails."""
    orthogonality = np.abs(matrix.T @ matrix - np.eye(3)).max()
    x, y, z = matrix.T
    handedness = x[0] * (y[1] * z[2] - y[2] * z[1]) - x[1] * (y[0] * z[2] - y[2] * z[0])
    handedness += x[2] * (y[0] * z[1] - y[1] * z[0])
    return bool(orthogonality < tolerance and abs(handedness - 1.0) < tolerance)


class Task(abc.ABC):
    """An error to drive to zero, with its Jacobian, a per-row cost and a gain in (0, 1].

    ``columns``: the entries of the 14-vector the Jacobian can be non-zero in, or None when any
    may be; the controller skips a task that cannot act on the directions left to it.
    """

    columns: frozenset[int] | None = None

    def __init__(self, cost: np.ndarray, gain: float = 1.0):
        if not 0.0 < gain <= 1.0:
            raise TaskError(f"{type(self).__name__}: gain must be in (0, 1]. Got {gain}.")
        self.cost = cost
        self.gain = gain

    @abc.abstractmethod
    def compute_error(self, kinematics: Kinematics) -> np.ndarray:
        """The error e at the configured configuration, shape (k,)."""

    @abc.abstractmethod
    def compute_jacobian(self, kinematics: Kinematics) -> np.ndarray:
        """The Jacobian ∂e/∂q, shape (k, 14)."""

    def compute_objective(self, kinematics: Kinematics, dt_s: float) -> Objective:
        """Weighted rows: A = diag(cost) J, b = −diag(cost) · gain · e / dt."""
        error = self.compute_error(kinematics)
        jacobian = self.compute_jacobian(kinematics)
        scale = self.cost * (-self.gain / dt_s)
        return Objective(self.cost[:, None] * jacobian, scale * error)

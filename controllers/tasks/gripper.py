"""Gripper task: bring both gripper openings to their targets (0 = closed … 1 = open).

Error (2,): e = [g_left − g*_left, g_right − g*_right], unitless openings. The Jacobian selects
the two gripper columns of the 14-vector. Gripper columns appear in no other task, so this task
decides them alone at whatever priority it is given.

Example:
    >>> task = GripperTask(openings=(1.0, 0.0))  # left open, right closed
"""

import numpy as np

from kinema.aloha import ACTION_DIM, GRIPPER_INDICES
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.tasks.base import Task, TaskError, as_cost


class GripperTask(Task):
    """Drive the two gripper openings to targets in [0, 1] (see module docstring)."""

    columns = frozenset(GRIPPER_INDICES.tolist())

    def __init__(
        self,
        openings: tuple[float, float] = (1.0, 1.0),
        cost: float | np.ndarray = 1.0,
        gain: float = 1.0,
    ):
        super().__init__(as_cost("GripperTask cost", cost, 2), gain)
        self._selection = np.zeros((2, ACTION_DIM))
        self._selection[[0, 1], GRIPPER_INDICES] = 1.0
        self.set_target(openings)

    def set_target(self, openings: tuple[float, float] | np.ndarray) -> None:
        """Set the (left, right) target openings, each in [0, 1]."""
        array = np.asarray(openings, dtype=np.float64)
        if array.shape != (2,) or not np.all((array >= 0.0) & (array <= 1.0)):
            raise TaskError(
                f"GripperTask: openings must be two values in [0, 1] (left, right). Got {array}."
            )
        self.target = array

    def compute_error(self, kinematics: Kinematics) -> np.ndarray:
        return kinematics.configuration[GRIPPER_INDICES] - self.target

    def compute_jacobian(self, kinematics: Kinematics) -> np.ndarray:
        return self._selection

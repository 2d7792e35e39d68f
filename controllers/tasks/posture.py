"""Posture task: pull the arm joints toward a reference configuration (joint-space regulariser).

Error (12,): e = q_joints − q*_joints in radians over the six joints of both arms (grippers are
the ``GripperTask``'s). The Jacobian is the constant selection matrix of those columns. At a low
priority it picks, among the velocities that serve the higher levels, the one that keeps the arms
near a comfortable pose; in joint action space at top priority it makes joint targets pass
through (limits still enforced).

Example:
    >>> from kinema.aloha import HOME_POSE
    >>> task = PostureTask(HOME_POSE, cost=0.1)
    >>> task.set_target(HOME_POSE)
"""

import numpy as np

from kinema.aloha import ACTION_DIM, JOINT_INDICES
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.tasks.base import Task, TaskError, as_cost
from kinema.sim.simulation import validate_action


class PostureTask(Task):
    """Keep the twelve arm joints near ``target`` (see module docstring)."""

    columns = frozenset(JOINT_INDICES.tolist())

    def __init__(self, target: np.ndarray, cost: float | np.ndarray = 1.0, gain: float = 1.0):
        super().__init__(as_cost("PostureTask cost", cost, len(JOINT_INDICES)), gain)
        self._selection = np.zeros((len(JOINT_INDICES), ACTION_DIM))
        self._selection[np.arange(len(JOINT_INDICES)), JOINT_INDICES] = 1.0
        self.set_target(target)

    def set_target(self, target: np.ndarray) -> None:
        """Set the reference 14-vector (its gripper entries are ignored)."""
        try:
            self.target = validate_action(target)
        except ValueError as error:
            raise TaskError(f"PostureTask target: {error}") from error

    def compute_error(self, kinematics: Kinematics) -> np.ndarray:
        return (kinematics.configuration - self.target)[JOINT_INDICES]

    def compute_jacobian(self, kinematics: Kinematics) -> np.ndarray:
        return self._selection

"""Frame task: bring a site's pose (position and orientation) to a target pose in the world.

Error (6,), world frame: e = [p − p*, log(R R*ᵀ)], metres then radians, where p, R is the frame's
pose and p*, R* the target. For a small rotation error, d/dt log(R R*ᵀ) ≈ ω (the frame's world
angular velocity), so the Jacobian is the frame Jacobian J = [J_v; J_ω] of the model. Costs are
per unit of error: ``position_cost`` per metre and ``orientation_cost`` per radian, so 1 mm and
1 mrad weigh the same when orientation_cost = position_cost.

Example:
    >>> from kinema.controllers.kinematics import Pose
    >>> import numpy as np
    >>> task = FrameTask("right/tcp", position_cost=1.0, orientation_cost=0.5)
    >>> task.set_target(Pose(np.array([0.1, 0.0, 0.2]), np.eye(3)))
"""

import numpy as np

from kinema.controllers.kinematics import Kinematics, Pose, rotation_log
from kinema.controllers.tasks.base import Task, TaskError, pose_cost, validate_pose


class FrameTask(Task):
    """Track a target world pose with the named site (see module docstring)."""

    def __init__(
        self,
        site: str,
        position_cost: float | np.ndarray = 1.0,
        orientation_cost: float | np.ndarray = 1.0,
        gain: float = 1.0,
    ):
        super().__init__(pose_cost("FrameTask", position_cost, orientation_cost), gain)
        self.site = site
        self.target: Pose | None = None

    def set_target(self, target: Pose) -> None:
        """Set the target world pose."""
        self.target = validate_pose(f"FrameTask({self.site!r})", target)

    def _target(self) -> Pose:
        if self.target is None:
            raise TaskError(f"FrameTask({self.site!r}): no target set; call set_target first.")
        return self.target

    def compute_error(self, kinematics: Kinematics) -> np.ndarray:
        target = self._target()
        pose = kinematics.frame_pose(self.site)
        return np.concatenate(
            [pose.position - target.position, rotation_log(pose.rotation @ target.rotation.T)]
        )

    def compute_jacobian(self, kinematics: Kinematics) -> np.ndarray:
        return kinematics.frame_jacobian(self.site)

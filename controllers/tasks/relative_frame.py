"""Relative frame task: hold the pose of one site as seen from another (two grippers together).

With frames a (the base, e.g. the left gripper) and b (e.g. the right gripper) at world poses
(p_a, R_a), (p_b, R_b), the relative pose is d = R_aᵀ (p_b − p_a) and R_ab = R_aᵀ R_b. The error
(6,), in frame a, against a target (d*, R*_ab) is

    e = [d − d*, log(R_ab R*_abᵀ)]      (metres, radians).

Its Jacobian follows from ṗ = J_v v and ω = J_ω v of both frames:

    ḋ   = R_aᵀ (J_v,b − J_v,a + [p_b − p_a]× J_ω,a) v
    ė_ω ≈ R_aᵀ (J_ω,b − J_ω,a) v                      (exact at zero rotation error).

Moving both arms together changes nothing in this error, so it constrains only how the grippers
move relative to each other: what a hand-over or an insertion needs.

Example:
    >>> from kinema.controllers.kinematics import Pose
    >>> import numpy as np
    >>> task = RelativeFrameTask("left/tcp", "right/tcp")
    >>> task.set_target(Pose(np.array([0.1, 0.0, 0.0]), np.eye(3)))
"""

import numpy as np

from kinema.controllers.kinematics import Kinematics, Pose, rotation_log, skew
from kinema.controllers.tasks.base import Task, TaskError, pose_cost, validate_pose


class RelativeFrameTask(Task):
    """Track the pose of ``site`` relative to ``base_site`` (see module docstring)."""

    def __init__(
        self,
        base_site: str,
        site: str,
        position_cost: float | np.ndarray = 1.0,
        orientation_cost: float | np.ndarray = 1.0,
        gain: float = 1.0,
    ):
        super().__init__(pose_cost("RelativeFrameTask", position_cost, orientation_cost), gain)
        self.base_site = base_site
        self.site = site
        self.target: Pose | None = None

    def set_target(self, target: Pose) -> None:
        """Set the target pose of ``site`` expressed in ``base_site``'s frame."""
        self.target = validate_pose(f"RelativeFrameTask({self.site!r})", target)

    def compute_error(self, kinematics: Kinematics) -> np.ndarray:
        if self.target is None:
            raise TaskError(
                f"RelativeFrameTask({self.base_site!r}, {self.site!r}): no target set; "
                "call set_target first."
            )
        relative = kinematics.frame_pose(self.site).relative_to(
            kinematics.frame_pose(self.base_site)
        )
        return np.concatenate(
            [
                relative.position - self.target.position,
                rotation_log(relative.rotation @ self.target.rotation.T),
            ]
        )

    def compute_jacobian(self, kinematics: Kinematics) -> np.ndarray:
        base = kinematics.frame_pose(self.base_site)
        frame = kinematics.frame_pose(self.site)
        base_jacobian = kinematics.frame_jacobian(self.base_site)
        frame_jacobian = kinematics.frame_jacobian(self.site)
        linear = (
            frame_jacobian[:3]
            - base_jacobian[:3]
            + skew(frame.position - base.position) @ base_jacobian[3:]
        )
        angular = frame_jacobian[3:] - base_jacobian[3:]
        return np.vstack([base.rotation.T @ linear, base.rotation.T @ angular])

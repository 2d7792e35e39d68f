"""The two action spaces of DESIGN.md and their conversion to controller targets.

**Joint** (14 values, ``kinema.aloha``): per arm six joint angles (rad) and the gripper opening.
**End-effector** (20 values): per arm, left first, the tool-centre-point position (3, metres, in
the world frame), its orientation as the 6-D rotation representation (6: the first two columns
of the rotation matrix, Zhou et al. 2019), and the gripper opening (1, 0..1).

The 6-D representation is continuous, unlike quaternions or Euler angles, which makes it easy
for a network to predict. Back to a rotation by Gram–Schmidt: with a, b the two columns,
x = a/‖a‖, y = (b − (x·b) x)/‖b − (x·b) x‖, z = x × y.

Example:
    >>> import numpy as np
    >>> from kinema.controllers.kinematics import Pose
    >>> home = Pose(np.array([0.1, 0.0, 0.2]), np.eye(3))
    >>> action = end_effector_action(home, home, (1.0, 0.0))
    >>> action.shape, end_effector_targets(action)[2]
    ((20,), (1.0, 0.0))
"""

import numpy as np

from kinema.aloha import ARMS, GRIPPER_INDICES
from kinema.controllers.kinematics import Kinematics, Pose, tcp_site

END_EFFECTOR_ACTION_DIM = 20
_PER_ARM = 10  # position 3, rotation 6, gripper 1
END_EFFECTOR_POSITION_INDICES = np.concatenate([np.arange(3) + arm * _PER_ARM for arm in (0, 1)])
"""Where the gripper positions (x, y, z of the left arm, then of the right) sit in an action."""
END_EFFECTOR_NAMES = [
    f"{arm}_{part}"
    for arm in ARMS
    for part in ("x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper")
]


class ActionSpaceError(ValueError):
    """An end-effector action of the wrong shape, with non-finite or degenerate values."""


def rotation_to_6d(rotation: np.ndarray) -> np.ndarray:
    """The 6-D representation: the first two columns of ``rotation``, stacked (x then y)."""
    return np.concatenate([rotation[:, 0], rotation[:, 1]])


def rotation_from_6d(vector: np.ndarray) -> np.ndarray:
    """The rotation matrix of a 6-D representation, by Gram–Schmidt (module docstring)."""
    first, second = np.asarray(vector[:3], float), np.asarray(vector[3:6], float)
    first_norm = np.linalg.norm(first)
    second = second - (first @ second) / max(first_norm**2, 1e-300) * first
    second_norm = np.linalg.norm(second)
    if first_norm < 1e-9 or second_norm < 1e-9:
        raise ActionSpaceError(
            f"6-D rotation {np.asarray(vector).tolist()} has a zero or parallel column pair"
        )
    x = first / first_norm
    y = second / second_norm
    return np.column_stack([x, y, np.cross(x, y)])


def end_effector_action(left: Pose, right: Pose, openings: tuple[float, float]) -> np.ndarray:
    """The 20-value end-effector action of two gripper poses and their openings."""
    return np.concatenate(
        [
            np.concatenate([pose.position, rotation_to_6d(pose.rotation), [opening]])
            for pose, opening in ((left, openings[0]), (right, openings[1]))
        ]
    )


def end_effector_targets(action: np.ndarray) -> tuple[Pose, Pose, tuple[float, float]]:
    """Gripper poses (left, right) and openings from a 20-value end-effector action.

    Raises:
        ActionSpaceError: on a wrong shape, non-finite values or a degenerate rotation.
    """
    values = np.asarray(action, dtype=np.float64)
    if values.shape != (END_EFFECTOR_ACTION_DIM,) or not np.all(np.isfinite(values)):
        raise ActionSpaceError(
            f"an end-effector action is {END_EFFECTOR_ACTION_DIM} finite values (per arm: "
            f"position 3, 6-D rotation 6, gripper 1). Got shape {values.shape}: {values}."
        )
    arms = [values[i * _PER_ARM : (i + 1) * _PER_ARM] for i in range(2)]
    poses = [Pose(arm[:3].copy(), rotation_from_6d(arm[3:9])) for arm in arms]
    openings = (float(np.clip(arms[0][9], 0.0, 1.0)), float(np.clip(arms[1][9], 0.0, 1.0)))
    return poses[0], poses[1], openings


def end_effector_action_of(kinematics: Kinematics, joint_action: np.ndarray) -> np.ndarray:
    """The 20-value end-effector action of a 14-value joint action: the gripper poses that
    configuration puts the tool-centre points at (forward kinematics), and the openings."""
    kinematics.configure(joint_action)
    left, right = (kinematics.frame_pose(tcp_site(arm)) for arm in ARMS)
    openings = tuple(float(joint_action[index]) for index in GRIPPER_INDICES)
    return end_effector_action(left, right, openings)

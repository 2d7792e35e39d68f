"""ALOHA conventions shared by every layer: joint order, joint limits and the gripper scale.

The 14-value state and action vectors follow ALOHA (and LeRobot's ALOHA datasets): the left arm
first, then the right; per arm the six joint angles of a ViperX 300 6DOF in radians, then the
gripper opening normalised to 0 = closed … 1 = open.

    index  0..5   left  waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate  [rad]
    index  6      left  gripper opening                                                   [0..1]
    index  7..12  right waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate  [rad]
    index  13     right gripper opening                                                   [0..1]

Joint limits are the ViperX 300 6DOF specification (radians). Positive shoulder and elbow
rotations lean the arm forward and down (axes +y of each joint frame, x pointing forward).

Example:
    >>> from kinema.aloha import ACTION_LOW, arm_slice
    >>> ACTION_LOW.shape, arm_slice("right")
    ((14,), slice(7, 14, None))
"""

from typing import Final, Literal

import numpy as np

Arm = Literal["left", "right"]
ARMS: Final[tuple[Arm, Arm]] = ("left", "right")

ARM_JOINTS: Final[tuple[str, ...]] = (
    "waist",
    "shoulder",
    "elbow",
    "forearm_roll",
    "wrist_angle",
    "wrist_rotate",
)

# (lower, upper) in radians, ViperX 300 6DOF.
JOINT_LIMITS_RAD: Final[dict[str, tuple[float, float]]] = {
    "waist": (-3.14158, 3.14158),
    "shoulder": (-1.85005, 1.25664),
    "elbow": (-1.76278, 1.6057),
    "forearm_roll": (-3.14158, 3.14158),
    "wrist_angle": (-1.8675, 2.23402),
    "wrist_rotate": (-3.14158, 3.14158),
}

DOF_PER_ARM: Final[int] = len(ARM_JOINTS) + 1  # six joints and the gripper
ACTION_DIM: Final[int] = 2 * DOF_PER_ARM

# The arm pose every episode starts from (per arm): folded, gripper open, as in ACT's simulation.
HOME_ARM_POSE: Final[tuple[float, ...]] = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 1.0)


def _bounds() -> tuple[np.ndarray, np.ndarray]:
    per_arm_low = [JOINT_LIMITS_RAD[j][0] for j in ARM_JOINTS] + [0.0]
    per_arm_high = [JOINT_LIMITS_RAD[j][1] for j in ARM_JOINTS] + [1.0]
    low = np.array(per_arm_low * 2, dtype=np.float32)
    high = np.array(per_arm_high * 2, dtype=np.float32)
    return low, high


ACTION_LOW, ACTION_HIGH = _bounds()
HOME_POSE: Final[np.ndarray] = np.array(HOME_ARM_POSE * 2, dtype=np.float64)


def arm_slice(arm: Arm) -> slice:
    """Slice of the 14-vector that belongs to ``arm`` (seven entries, gripper last)."""
    start = ARMS.index(arm) * DOF_PER_ARM
    return slice(start, start + DOF_PER_ARM)


JOINT_INDICES: Final[np.ndarray] = np.array(
    [i for arm in ARMS for i in range(arm_slice(arm).start, arm_slice(arm).stop - 1)]
)
"""Indices of the twelve arm-joint angles (rad) in the 14-vector."""

GRIPPER_INDICES: Final[np.ndarray] = np.array([arm_slice(arm).stop - 1 for arm in ARMS])
"""Indices of the two gripper openings (left, right) in the 14-vector."""

STATE_NAMES: Final[list[str]] = [
    f"{arm}_{joint}" for arm in ARMS for joint in (*ARM_JOINTS, "gripper")
]
"""Names of the 14 state and action entries, ``left_waist`` … ``right_gripper``."""


def _max_velocity() -> np.ndarray:
    velocity = np.full(ACTION_DIM, np.pi)  # the ViperX servos: Velocity_Limit 131 × 0.229 rpm
    velocity[GRIPPER_INDICES] = 5.0  # a full gripper stroke in 0.2 s
    velocity.flags.writeable = False
    return velocity


MAX_VELOCITY: Final[np.ndarray] = _max_velocity()
"""(14,) largest speed of each entry: π rad/s per arm joint, 5 openings per second per gripper."""

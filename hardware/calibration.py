"""Calibration of an ALOHA-style arm: servo ticks ↔ the stack's radians and gripper openings.

Dynamixel X-series servos report positions in ticks, 4096 per turn. For joint j with zero
position ``zero_ticks`` (the reading when the joint is at the simulation's zero angle) and
``direction`` ±1 (whether the servo counts the way the simulation's joint axis turns):

    angle_rad = direction · (ticks - zero_ticks) · 2π / 4096

The gripper is an opening in [0, 1] (0 closed, as in ``kinema.aloha``), linear between the
readings at the closed and at the open stop:

    opening = (ticks - closed_ticks) / (open_ticks - closed_ticks), clipped to [0, 1]

So a policy trained in simulation commands the same angles and openings on the real arm. The
calibration of both arms of a robot is one JSON file.

Example:
    >>> arm = ArmCalibration.centred()
    >>> arm.to_joint_values({name: 2048 for name in ARM_JOINTS} | {"gripper": 2048}).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TICKS_PER_TURN = 4096
CENTRE_TICKS = 2048
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
GRIPPER = "gripper"


@dataclass(frozen=True)
class JointCalibration:
    """One revolute joint: the reading at the zero angle and the counting direction (±1)."""

    zero_ticks: int = CENTRE_TICKS
    direction: int = 1

    def __post_init__(self) -> None:
        if self.direction not in (-1, 1):
            raise ValueError(f"JointCalibration.direction must be 1 or -1, got {self.direction}")


@dataclass(frozen=True)
class GripperCalibration:
    """The gripper's readings at its closed and open stops (they must differ)."""

    closed_ticks: int = CENTRE_TICKS - 512
    open_ticks: int = CENTRE_TICKS + 512

    def __post_init__(self) -> None:
        if self.closed_ticks == self.open_ticks:
            raise ValueError("GripperCalibration: closed_ticks and open_ticks must differ")


@dataclass(frozen=True)
class ArmCalibration:
    """The six joints (``ARM_JOINTS`` order) and the gripper of one arm."""

    joints: tuple[JointCalibration, ...]
    gripper: GripperCalibration

    def __post_init__(self) -> None:
        if len(self.joints) != len(ARM_JOINTS):
            raise ValueError(
                f"ArmCalibration needs {len(ARM_JOINTS)} joints, got {len(self.joints)}"
            )

    @classmethod
    def centred(cls) -> "ArmCalibration":
        """Every joint zero at the servo's centre, counting forward; a default for emulators."""
        return cls(tuple(JointCalibration() for _ in ARM_JOINTS), GripperCalibration())

    def to_joint_values(self, ticks: dict[str, int]) -> np.ndarray:
        """(7,) joint angles in rad and the gripper opening from servo readings by name."""
        angles = [
            joint.direction * (ticks[name] - joint.zero_ticks) * 2 * math.pi / TICKS_PER_TURN
            for name, joint in zip(ARM_JOINTS, self.joints, strict=True)
        ]
        span = self.gripper.open_ticks - self.gripper.closed_ticks
        opening = min(max((ticks[GRIPPER] - self.gripper.closed_ticks) / span, 0.0), 1.0)
        return np.array([*angles, opening])

    def to_ticks(self, values: np.ndarray) -> dict[str, int]:
        """Servo positions (ticks, rounded) for (7,) joint angles in rad and a gripper opening."""
        ticks = {
            name: round(joint.zero_ticks + joint.direction * angle * TICKS_PER_TURN / (2 * math.pi))
            for name, joint, angle in zip(ARM_JOINTS, self.joints, values[:6], strict=True)
        }
        span = self.gripper.open_ticks - self.gripper.closed_ticks
        ticks[GRIPPER] = round(self.gripper.closed_ticks + float(values[6]) * span)
        return ticks


@dataclass(frozen=True)
class RobotCalibration:
    """Both arms of a bimanual robot (left first, as in ``kinema.aloha``)."""

    left: ArmCalibration
    right: ArmCalibration

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "RobotCalibration":
        """Read a calibration written by ``save``; a clear error on a malformed file."""
        try:
            data = json.loads(Path(path).read_text())
            arms = [
                ArmCalibration(
                    tuple(JointCalibration(**joint) for joint in data[side]["joints"]),
                    GripperCalibration(**data[side]["gripper"]),
                )
                for side in ("left", "right")
            ]
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a robot calibration ({error})") from error
        return cls(*arms)

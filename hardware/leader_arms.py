"""ALOHA's leader arms (WidowX class, torque off), read over the Dynamixel bus.

Each leader arm is one Dynamixel bus (its own U2D2 serial port) with nine servos, as on ALOHA:
waist 1, shoulder 2 (shadow 3), elbow 4 (shadow 5), forearm roll 6, wrist angle 7, wrist rotate
8, gripper 9. Reading uses lerobot's ``DynamixelMotorsBus`` (Protocol 2.0 sync read of
Present_Position from the primary servos; a shadow turns with its primary). The leaders'
torque stays off so a person moves them by hand. ``read()`` gives the 14 joint values of the
stack (rad, gripper openings 0..1) through the robot's calibration.

Example:
    with LeaderArms(("/dev/ttyDXL_leader_left", "/dev/ttyDXL_leader_right"), calibration) as arms:
        joint_values = arms.read()      # (14,)
"""

from types import TracebackType
from typing import Self

import numpy as np
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus

from kinema.hardware.calibration import ARM_JOINTS, GRIPPER, RobotCalibration

LEADER_MOTORS: dict[str, tuple[int, str]] = {
    "waist": (1, "xm430-w350"),
    "shoulder": (2, "xm430-w350"),
    "shoulder_shadow": (3, "xm430-w350"),
    "elbow": (4, "xm430-w350"),
    "elbow_shadow": (5, "xm430-w350"),
    "forearm_roll": (6, "xm430-w350"),
    "wrist_angle": (7, "xm430-w350"),
    "wrist_rotate": (8, "xl430-w250"),
    "gripper": (9, "xl430-w250"),
}
"""Name → (servo ID, model) of a WidowX-class leader arm."""

_READ = [*ARM_JOINTS, GRIPPER]  # the primaries, in the stack's order
_READ_RETRIES = 2
_CONNECT_ATTEMPTS = 3


class LeaderArmError(RuntimeError):
    """A leader arm that cannot be reached or read; the message names the arm and its port."""


class LeaderArms:
    """The two leader arms (left, right) of a bimanual ALOHA-style robot (module docstring)."""

    def __init__(
        self,
        ports: tuple[str, str],
        calibration: RobotCalibration,
        motors: dict[str, tuple[int, str]] = LEADER_MOTORS,
    ):
        self.ports = ports
        self.calibration = calibration
        self.buses = [
            DynamixelMotorsBus(
                port,
                {
                    name: Motor(servo_id, model, MotorNormMode.DEGREES)
                    for name, (servo_id, model) in motors.items()
                },
            )
            for port in ports
        ]

    def connect(self) -> None:
        """Open both buses (lerobot checks every servo answers with its model), torque off;
        a bus that fails its check is tried ``_CONNECT_ATTEMPTS`` times (a status packet lost
        on a busy USB link is not a missing servo)."""
        for side, bus in zip(("left", "right"), self.buses, strict=True):
            for attempt in range(1, _CONNECT_ATTEMPTS + 1):
                try:
                    bus.connect()
                    bus.disable_torque()
                    break
                except (ConnectionError, RuntimeError, OSError) as error:
                    if bus.is_connected:
                        bus.disconnect(disable_torque=False)
                    if attempt == _CONNECT_ATTEMPTS:
                        self.disconnect()
                        raise LeaderArmError(f"{side} leader arm on {bus.port}: {error}") from error

    def read(self) -> np.ndarray:
        """(14,) joint values of both leaders: per arm six angles (rad) and the opening."""
        values = []
        for side, bus, arm in zip(
            ("left", "right"),
            self.buses,
            (self.calibration.left, self.calibration.right),
            strict=True,
        ):
            try:
                ticks = bus.sync_read(
                    "Present_Position", _READ, normalize=False, num_retry=_READ_RETRIES
                )
            except (ConnectionError, RuntimeError) as error:
                raise LeaderArmError(f"{side} leader arm on {bus.port}: {error}") from error
            values.append(arm.to_joint_values({name: int(ticks[name]) for name in _READ}))
        return np.concatenate(values)

    def disconnect(self) -> None:
        """Close the buses that are open (torque stays off)."""
        for bus in self.buses:
            if bus.is_connected:
                bus.disconnect(disable_torque=False)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.disconnect()

"""Interactive calibration of both arms of an ALOHA-style robot (followers or leaders).

A person moves the arms by hand (torque off on every servo) through four poses, and the
servos' Present_Position readings (ticks, 4096 per turn) become a ``RobotCalibration``:

1. the simulation's zero pose, every joint at angle 0 → ``zero_ticks`` r₀ of each joint;
2. every joint a little in its positive direction (the simulation's axes, right-handed:
   ``kinema.aloha``) → ``direction`` = sign(wrap(r₁ − r₀)), where
   wrap(Δ) = ((Δ + 2048) mod 4096) − 2048 ticks is the shorter way round, so a joint whose
   reading passes 4095 → 0 still gets its sign. A joint that moved less than
   ``MIN_MOVE_TICKS`` (3.5°) is asked for again, at most ``ATTEMPTS`` times;
3. both grippers fully closed → ``closed_ticks``;
4. both grippers fully open → ``open_ticks``; the two must be ``MIN_GRIPPER_TICKS`` apart.

With these, ``ArmCalibration`` maps ticks to the stack's units exactly as the simulation
defines them: angle = direction · (ticks − zero_ticks) · 2π / 4096 rad, and the gripper opening
0 (closed) … 1 (open) linear between its stops.

The mapping lives in our JSON only (``RobotCalibration.save``), and ``AlohaRobot`` and
``LeaderArms`` apply it. The servos' own Homing_Offset and Drive_Mode (EEPROM), which ALOHA's
scripts write, are left alone: calibrating writes nothing but Torque_Enable = 0, so a wrong
calibration is redone by running this again and never leaves a servo misconfigured.

Example:
    calibration = calibrate_arms(("/dev/ttyDXL_follower_left", "/dev/ttyDXL_follower_right"),
                                 "follower")
    calibration.save(Path("calibration.json"))
"""

from collections.abc import Callable, Mapping
from typing import Any, Literal

from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus

from kinema.aloha import ARMS
from kinema.hardware.aloha_robot import FOLLOWER_MOTORS, PRIMARIES
from kinema.hardware.calibration import (
    ARM_JOINTS,
    GRIPPER,
    TICKS_PER_TURN,
    ArmCalibration,
    GripperCalibration,
    JointCalibration,
    RobotCalibration,
)
from kinema.hardware.leader_arms import LEADER_MOTORS

ArmKind = Literal["follower", "leader"]

MOTORS: Mapping[ArmKind, Mapping[str, tuple[int, str]]] = {
    "follower": FOLLOWER_MOTORS,
    "leader": LEADER_MOTORS,
}
"""The servos (name → ID, lerobot model) of each kind of arm."""

MIN_MOVE_TICKS = 40
"""The least a joint must move in step 2 (ticks, ≈ 3.5°) for its direction to count."""

MIN_GRIPPER_TICKS = 50
"""The least distance between a gripper's closed and open readings (ticks)."""

ATTEMPTS = 3
"""How many times step 2 is asked for a joint before giving up."""

_READ_RETRIES = 2
_CONNECT_ATTEMPTS = 3
_BUS_ERRORS = (OSError, RuntimeError)  # lerobot's ConnectionError, RuntimeError; pyserial's

ZERO_POSE_PROMPT = (
    "Put both {arms} arms in the zero pose, every joint at the simulation's angle 0: base "
    "facing straight ahead, upper arm straight up, forearm level pointing forward, wrist in "
    "line with the forearm, forearm roll and wrist rotate untwisted (gripper jaws opening to "
    "the sides). Press Enter."
)
POSITIVE_PROMPT = (
    "Move every joint of both {arms} arms about 10° in its positive direction: waist turns "
    "the arm to its left, shoulder leans the upper arm forward, elbow lowers the forearm, "
    "wrist angle tips the gripper down, forearm roll and wrist rotate turn clockwise seen from "
    "behind the arm. Press Enter."
)
RETRY_PROMPT = (
    "{joints} moved less than {ticks} ticks from the zero pose; move them about 10° in their "
    "positive direction (as above) and press Enter."
)
CLOSE_PROMPT = "Close both {arms} grippers fully. Press Enter."
OPEN_PROMPT = "Open both {arms} grippers fully. Press Enter."


class CalibrationError(RuntimeError):
    """A calibration that cannot be completed; the message says which arm, port or joint."""


def press_enter(prompt: str) -> None:
    """Print ``prompt`` and wait until the person presses Enter (what they type is ignored)."""
    input(f"\n{prompt} ")


def calibrate_arms(
    ports: tuple[str, str],
    arms: ArmKind,
    ask: Callable[[str], None] = press_enter,
    motors: Mapping[str, tuple[int, str]] | None = None,
) -> RobotCalibration:
    """Calibrate the (left, right) arms on ``ports`` with a person's help (module docstring).

    Args:
        ports: serial ports of the left and the right arm's Dynamixel bus.
        arms: which arms: ``follower`` (ViperX class) or ``leader`` (WidowX class).
        ask: shows the person a prompt and returns once they have done what it asks.
        motors: name → (servo ID, lerobot model) of each arm; default ``MOTORS[arms]``.

    Raises:
        CalibrationError: a bus that cannot be opened or read (naming the arm and port), a joint
            whose direction stays unknown, or a gripper whose stops are too close.
    """
    servos = MOTORS[arms] if motors is None else motors
    missing = [name for name in PRIMARIES if name not in servos]
    if len(ports) != 2 or missing:
        raise ValueError(
            f"calibrate_arms: ports must be (left, right) and motors must hold {list(PRIMARIES)}; "
            f"got ports {ports}, motors missing {missing}"
        )
    buses = tuple(
        DynamixelMotorsBus(
            port,
            {
                name: Motor(servo_id, model, MotorNormMode.DEGREES)
                for name, (servo_id, model) in servos.items()
            },
        )
        for port in ports
    )
    try:
        for side, bus in zip(ARMS, buses, strict=True):
            _open(f"{side} {arms} arm", bus)
        return _calibrate(buses, arms, ask)
    finally:
        for bus in buses:
            if bus.is_connected:
                bus.disconnect(disable_torque=False)


def summarize(calibration: RobotCalibration) -> dict[str, Any]:
    """Per arm: the zero readings (ticks, ``ARM_JOINTS`` order), the joints counting against
    the simulation's axes, and the gripper's [closed, open] readings (ticks)."""
    return {
        side: {
            "zero_ticks": [joint.zero_ticks for joint in arm.joints],
            "reversed": [
                name
                for name, joint in zip(ARM_JOINTS, arm.joints, strict=True)
                if joint.direction < 0
            ],
            "gripper_ticks": [arm.gripper.closed_ticks, arm.gripper.open_ticks],
        }
        for side, arm in zip(ARMS, (calibration.left, calibration.right), strict=True)
    }


def _open(arm: str, bus: DynamixelMotorsBus) -> None:
    """Open ``bus`` (lerobot checks every servo answers with its model) and turn the torque off
    on every servo, trying ``_CONNECT_ATTEMPTS`` times."""
    for attempt in range(1, _CONNECT_ATTEMPTS + 1):
        try:
            bus.connect()
            bus.disable_torque(num_retry=_READ_RETRIES)
            return
        except _BUS_ERRORS as error:
            if bus.is_connected:
                bus.disconnect(disable_torque=False)
            if attempt == _CONNECT_ATTEMPTS:
                raise CalibrationError(f"{arm} on {bus.port}: {error}") from error


def _calibrate(
    buses: tuple[DynamixelMotorsBus, ...], arms: ArmKind, ask: Callable[[str], None]
) -> RobotCalibration:
    """The four steps of the module docstring on open buses."""
    ask(ZERO_POSE_PROMPT.format(arms=arms))
    zero = _read(buses, arms)
    directions = _directions(buses, arms, ask, zero)
    ask(CLOSE_PROMPT.format(arms=arms))
    closed = _read(buses, arms)
    ask(OPEN_PROMPT.format(arms=arms))
    opened = _read(buses, arms)
    calibrations = []
    for side, zeros, signs, shut, wide in zip(ARMS, zero, directions, closed, opened, strict=True):
        closed_ticks, open_ticks = shut[GRIPPER], wide[GRIPPER]
        if abs(open_ticks - closed_ticks) < MIN_GRIPPER_TICKS:
            raise CalibrationError(
                f"{side} {arms} gripper: closed {closed_ticks} and open {open_ticks} ticks are "
                f"{abs(open_ticks - closed_ticks)} apart, fewer than {MIN_GRIPPER_TICKS}; close "
                "and open it fully when asked"
            )
        joints = tuple(JointCalibration(zeros[name], signs[name]) for name in ARM_JOINTS)
        calibrations.append(ArmCalibration(joints, GripperCalibration(closed_ticks, open_ticks)))
    return RobotCalibration(*calibrations)


def _directions(
    buses: tuple[DynamixelMotorsBus, ...],
    arms: ArmKind,
    ask: Callable[[str], None],
    zero: list[dict[str, int]],
) -> list[dict[str, int]]:
    """Per arm, joint → ±1 from step 2, asking again for the joints that barely moved."""
    directions: list[dict[str, int]] = [{} for _ in ARMS]
    prompt = POSITIVE_PROMPT.format(arms=arms)
    for _ in range(ATTEMPTS):
        ask(prompt)
        for found, before, after in zip(directions, zero, _read(buses, arms), strict=True):
            for name in ARM_JOINTS:
                moved = _wrap(after[name] - before[name])
                if name not in found and abs(moved) >= MIN_MOVE_TICKS:
                    found[name] = 1 if moved > 0 else -1
        missing = [
            f"{side} {name}"
            for side, found in zip(ARMS, directions, strict=True)
            for name in ARM_JOINTS
            if name not in found
        ]
        if not missing:
            return directions
        prompt = RETRY_PROMPT.format(joints=", ".join(missing), ticks=MIN_MOVE_TICKS)
    raise CalibrationError(
        f"{', '.join(missing)} ({arms}): moved less than {MIN_MOVE_TICKS} ticks from the zero "
        f"pose in {ATTEMPTS} tries, so the direction is unknown; is the joint free to move?"
    )


def _read(buses: tuple[DynamixelMotorsBus, ...], arms: ArmKind) -> list[dict[str, int]]:
    """Present_Position (raw ticks) of the primaries of each arm, one sync read per bus."""
    readings = []
    for side, bus in zip(ARMS, buses, strict=True):
        try:
            ticks = bus.sync_read(
                "Present_Position", list(PRIMARIES), normalize=False, num_retry=_READ_RETRIES
            )
        except _BUS_ERRORS as error:
            raise CalibrationError(f"{side} {arms} arm on {bus.port}: {error}") from error
        readings.append({name: int(value) for name, value in ticks.items()})
    return readings


def _wrap(ticks: int) -> int:
    """``ticks`` as the shorter way round one turn, in [−2048, 2048)."""
    half = TICKS_PER_TURN // 2
    return (ticks + half) % TICKS_PER_TURN - half

"""Interactive calibration (``kinema.hardware.calibrate``) against emulated arms on ptys.

A scripted person answers each prompt by holding the emulated servos where a known "true"
calibration puts the pose the prompt asks for; the calibration must recover it tick for tick.
"""

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus

from kinema import cli
from kinema.aloha import ARMS, GRIPPER_INDICES, HOME_POSE, JOINT_INDICES, arm_slice
from kinema.hardware.aloha_robot import AlohaConfig, AlohaRobot, primary_of
from kinema.hardware.calibrate import MOTORS, ArmKind, CalibrationError, calibrate_arms
from kinema.hardware.calibration import (
    ARM_JOINTS,
    TICKS_PER_TURN,
    ArmCalibration,
    GripperCalibration,
    JointCalibration,
    RobotCalibration,
)
from kinema.hardware.dynamixel.control_table import BY_NAME, MODEL_NUMBERS
from kinema.hardware.dynamixel.emulator import DynamixelEmulator
from kinema.hardware.dynamixel.protocol import Instruction

ONE_TICK_RAD = 2 * np.pi / TICKS_PER_TURN
MOVE_RAD = 0.2  # step 2: ≈ 11°, 130 ticks

# Offsets and reversed joints as real arms have them; the left wrist rotate's zero is near the
# end of the turn (it reads 30 − 130 → 3996 when moved), the right gripper closes upwards.
TRUE = RobotCalibration(
    ArmCalibration(
        (
            JointCalibration(2000, 1),
            JointCalibration(2100, -1),
            JointCalibration(1990, -1),
            JointCalibration(2048, 1),
            JointCalibration(2070, 1),
            JointCalibration(30, -1),
        ),
        GripperCalibration(closed_ticks=1500, open_ticks=2600),
    ),
    ArmCalibration(
        (
            JointCalibration(2090, -1),
            JointCalibration(1960, 1),
            JointCalibration(2110, 1),
            JointCalibration(1024, -1),
            JointCalibration(2000, -1),
            JointCalibration(3000, 1),
        ),
        GripperCalibration(closed_ticks=2900, open_ticks=2010),
    ),
)


class Person:
    """Answers the prompts by holding the emulated arms in the pose each asks for.

    Args:
        emulators: the (left, right) buses.
        motors: the servos of each arm (shadows take their primary's ticks).
        stubborn: (arm, joint) → how many step-2 prompts the person answers by moving that
            joint 10 ticks only.
        opening: the gripper opening the person reaches when asked to open fully.
    """

    def __init__(
        self,
        emulators: list[DynamixelEmulator],
        motors: Mapping[str, tuple[int, str]],
        stubborn: Mapping[tuple[str, str], int] = MappingProxyType({}),
        opening: float = 1.0,
    ):
        self.emulators, self.motors = emulators, motors
        self.stubborn, self.opening = stubborn, opening
        self.prompts: list[str] = []
        self.moves = 0  # step-2 prompts answered
        self.torque_seen_on = False
        self.pose = np.zeros(14)

    def __call__(self, prompt: str) -> None:
        self.prompts.append(prompt)
        self.torque_seen_on |= any(
            emulator.torque_enabled(servo_id)
            for emulator in self.emulators
            for servo_id, _ in self.motors.values()
        )
        if "positive direction" in prompt:  # step 2 or its repetition
            self.moves += 1
            self.pose[JOINT_INDICES] = MOVE_RAD
        elif "zero pose" in prompt:
            self.pose[JOINT_INDICES] = 0.0
        elif "Close" in prompt:
            self.pose[GRIPPER_INDICES] = 0.0
        elif "Open" in prompt:
            self.pose[GRIPPER_INDICES] = self.opening
        self.hold()

    def hold(self) -> None:
        """Set every servo's Present_Position to ``pose`` through the true calibration, within
        one turn (0..4095) as in position mode."""
        for side, emulator, arm in zip(ARMS, self.emulators, (TRUE.left, TRUE.right), strict=True):
            pose = self.pose[arm_slice(side)]
            ticks = arm.to_ticks(pose)
            for joint, angle, calibration in zip(ARM_JOINTS, pose, arm.joints, strict=False):
                if angle == MOVE_RAD and self.moves <= self.stubborn.get((side, joint), 0):
                    ticks[joint] = calibration.zero_ticks + 10
            for name, (servo_id, _) in self.motors.items():
                emulator.set_present_position(servo_id, ticks[primary_of(name)] % TICKS_PER_TURN)


def servos_of(motors: Mapping[str, tuple[int, str]]) -> dict[int, int]:
    return {servo_id: MODEL_NUMBERS[model] for servo_id, model in motors.values()}


@pytest.fixture(params=["follower", "leader"])
def arms(request: pytest.FixtureRequest) -> Iterator[tuple[ArmKind, list[DynamixelEmulator]]]:
    """Both arms of a kind on emulated buses, every servo's torque on (as a robot left it)."""
    kind: ArmKind = request.param
    emulators = [DynamixelEmulator(servos_of(MOTORS[kind])).start() for _ in ARMS]
    for emulator in emulators:
        bus = DynamixelMotorsBus(
            emulator.port,
            {n: Motor(i, m, MotorNormMode.DEGREES) for n, (i, m) in MOTORS[kind].items()},
        )
        bus.connect()
        bus.enable_torque()
        bus.disconnect(disable_torque=False)
    yield kind, emulators
    for emulator in emulators:
        emulator.stop()


def ports(emulators: list[DynamixelEmulator]) -> tuple[str, str]:
    return emulators[0].port, emulators[1].port


def test_the_calibration_is_recovered_tick_for_tick_with_torque_off(arms):
    kind, emulators = arms
    person = Person(emulators, MOTORS[kind])
    written: set[int | None] = set()

    def note_writes(instruction: Instruction | int, ids: tuple[int, ...], address: int | None):
        if instruction in (Instruction.WRITE, Instruction.SYNC_WRITE):
            written.add(address)

    for emulator in emulators:
        emulator.on_instruction(note_writes)
    assert calibrate_arms(ports(emulators), kind, ask=person) == TRUE
    assert len(person.prompts) == 4 and not person.torque_seen_on
    assert written == {BY_NAME["Torque_Enable"].address}  # no EEPROM: Homing_Offset, Drive_Mode


def test_a_joint_that_barely_moved_is_asked_for_again(arms):
    kind, emulators = arms
    person = Person(emulators, MOTORS[kind], stubborn={("left", "shoulder"): 1})
    assert calibrate_arms(ports(emulators), kind, ask=person) == TRUE
    assert len(person.prompts) == 5
    assert person.prompts[2].startswith("left shoulder moved less than 40 ticks")


def test_a_joint_that_never_moves_is_named(arms):
    kind, emulators = arms
    person = Person(emulators, MOTORS[kind], stubborn={("right", "elbow"): 99})
    with pytest.raises(CalibrationError, match=r"^right elbow .*moved less than 40 ticks"):
        calibrate_arms(ports(emulators), kind, ask=person)
    for emulator in emulators:  # torque stays off
        assert not any(emulator.torque_enabled(i) for i, _ in MOTORS[kind].values())


def test_grippers_that_barely_open_are_refused(arms):
    kind, emulators = arms
    person = Person(emulators, MOTORS[kind], opening=0.03)  # 33 ticks on the left
    with pytest.raises(CalibrationError, match=f"left {kind} gripper: .* 33 apart, fewer than 50"):
        calibrate_arms(ports(emulators), kind, ask=person)


def test_an_arm_that_cannot_be_reached_is_named_with_its_port(tmp_path: Path):
    missing = str(tmp_path / "ttyDXL_left")
    with pytest.raises(CalibrationError, match=f"left leader arm on {missing}"):
        calibrate_arms((missing, missing), "leader", ask=lambda prompt: None)


def test_kinema_calibrate_writes_what_the_follower_arms_then_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    motors = MOTORS["follower"]
    with (
        DynamixelEmulator(servos_of(motors)) as left,
        DynamixelEmulator(servos_of(motors)) as right,
    ):
        person = Person([left, right], motors)
        monkeypatch.setattr("builtins.input", person)
        out = tmp_path / "calibration.json"
        argv = ["calibrate", "--ports", left.port, right.port, "--arms", "follower"]
        cli.main([*argv, "--out", str(out)])
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert summary["calibration"] == str(out.resolve())
        assert summary["right"] == {
            "zero_ticks": [2090, 1960, 2110, 1024, 2000, 3000],
            "reversed": ["waist", "forearm_roll", "wrist_angle"],
            "gripper_ticks": [2900, 2010],
        }
        assert RobotCalibration.load(out) == TRUE

        person.pose[:] = HOME_POSE
        person.hold()
        with AlohaRobot(AlohaConfig(ports=(left.port, right.port), calibration=out)) as robot:
            np.testing.assert_allclose(robot.read_position(), HOME_POSE, atol=ONE_TICK_RAD)

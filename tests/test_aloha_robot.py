"""ALOHA follower arms through lerobot's Dynamixel bus, against emulated arms moved by MuJoCo
(``EmulatedAloha``), and the cameras the robot reads."""

import re
import time

import cv2
import numpy as np
import pytest
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus

from kinema.aloha import HOME_POSE, JOINT_INDICES
from kinema.hardware.aloha_robot import FOLLOWER_MOTORS, PRIMARIES, AlohaConfig, AlohaRobot
from kinema.hardware.calibration import (
    TICKS_PER_TURN,
    ArmCalibration,
    GripperCalibration,
    JointCalibration,
    RobotCalibration,
)
from kinema.hardware.cameras import Camera, OpenCVCamera
from kinema.hardware.dynamixel.control_table import BY_NAME
from kinema.hardware.dynamixel.emulator import DynamixelEmulator
from kinema.hardware.dynamixel.protocol import Instruction
from kinema.hardware.emulated_aloha import EmulatedAloha
from kinema.hardware.robot import RobotError
from kinema.types import JointCommand

ONE_TICK_RAD = 2 * np.pi / TICKS_PER_TURN
SERVO_IDS = [servo_id for servo_id, _ in FOLLOWER_MOTORS.values()]
SHADOW_IDS = {3: 2, 5: 4}  # shadow → primary
GRIPPER_ID = FOLLOWER_MOTORS["gripper"][0]

# Offsets and reversed joints (the right gripper's open stop below its closed one), as real
# calibrations have them.
CALIBRATION = RobotCalibration(
    ArmCalibration(
        (
            JointCalibration(2000, 1),
            JointCalibration(2100, 1),
            JointCalibration(1990, -1),
            JointCalibration(2048, 1),
            JointCalibration(2070, -1),
            JointCalibration(2048, 1),
        ),
        GripperCalibration(closed_ticks=1500, open_ticks=2600),
    ),
    ArmCalibration(
        (
            JointCalibration(2110, -1),
            JointCalibration(1980, 1),
            JointCalibration(2050, 1),
            JointCalibration(2000, -1),
            JointCalibration(2048, 1),
            JointCalibration(2010, 1),
        ),
        GripperCalibration(closed_ticks=2650, open_ticks=1450),
    ),
)

# A reachable pose near home, every joint moved, grippers half-way.
TARGET = HOME_POSE + np.array([0.15, 0.1, -0.12, 0.2, 0.15, -0.2, 0] * 2)
TARGET[[6, 13]] = (0.3, 0.7)


@pytest.fixture
def world():
    with EmulatedAloha(task="TransferCube", seed=3, calibration=CALIBRATION) as world:
        yield world


@pytest.fixture
def robot(world):
    robot = AlohaRobot(AlohaConfig(ports=world.ports, calibration=world.calibration))
    robot.connect()
    yield robot
    robot.disconnect()


def register(emulator: DynamixelEmulator, servo_id: int, name: str) -> int:
    """The value of control-table register ``name`` of ``servo_id``."""
    entry = BY_NAME[name]
    return emulator.register(servo_id, entry.address, entry.size)


def drive(robot: AlohaRobot, target: np.ndarray, ticks: int) -> None:
    """``ticks`` control ticks of observe() then command(target), and a last observe(): the
    emulators serve packets in order, so the last command has then been applied."""
    for _ in range(ticks):
        robot.observe()
        robot.command(JointCommand(target))
    robot.observe()


# Connecting


def test_connect_sets_modes_turns_torque_on_and_holds_still(world, robot):
    for emulator in world.emulators:
        for servo_id in SERVO_IDS:
            mode = 5 if servo_id == GRIPPER_ID else 3  # current-based position / position
            assert register(emulator, servo_id, "Operating_Mode") == mode
            reversed_bit = register(emulator, servo_id, "Drive_Mode") & 1
            assert reversed_bit == (servo_id in SHADOW_IDS)
            assert emulator.torque_enabled(servo_id)
            goal, present = emulator.goal_position(servo_id), emulator.present_position(servo_id)
            assert abs(goal - present) <= 2  # goal = present, then one 20 ms hold step
    before = world.joint_state()
    for _ in range(25):
        robot.hold()
    robot.observe()  # the last hold has been served
    np.testing.assert_allclose(world.joint_state(), before, atol=0.01)


def test_observe_after_connect_is_the_simulated_state_within_a_tick(world, tmp_path):
    CALIBRATION.save(tmp_path / "calibration.json")
    config = AlohaConfig(ports=world.ports, calibration=tmp_path / "calibration.json")
    assert config.calibration == CALIBRATION
    with AlohaRobot(config) as robot:
        observation = robot.observe()
    np.testing.assert_allclose(observation.position, world.joint_state(), atol=ONE_TICK_RAD)
    assert observation.velocity is None and observation.images == {}
    # The calibration is in use: the left elbow counts backwards from 1990 ticks.
    elbow = FOLLOWER_MOTORS["elbow"][0]
    expected = round(1990 - world.joint_state()[2] * TICKS_PER_TURN / (2 * np.pi))
    assert abs(world.left.present_position(elbow) - expected) <= 1


def test_connect_names_an_arm_whose_servo_is_missing_and_releases_both(world):
    world.right.update_config(dead_servos={7})
    robot = AlohaRobot(AlohaConfig(ports=world.ports, calibration=world.calibration))
    expected = re.escape(f"right arm ({world.right.port})") + r"(.|\n)*Missing motor IDs:\n  - 7"
    with pytest.raises(RobotError, match=expected):
        robot.connect()
    assert not any(bus.is_connected for bus in robot.buses)


# Reading and writing


def test_commands_bring_both_arms_to_a_pose_in_lockstep(world, robot):
    start_s = world.sim_time_s
    drive(robot, TARGET, 50)  # 1 s at 50 Hz
    assert world.sim_time_s - start_s == pytest.approx(50 * 0.02)  # 10 steps of 2 ms each
    state = world.joint_state()
    assert np.abs(state - TARGET)[JOINT_INDICES].max() < 0.02
    np.testing.assert_allclose(state[[6, 13]], TARGET[[6, 13]], atol=0.05)
    np.testing.assert_allclose(robot.read_position(), state, atol=ONE_TICK_RAD)
    arms = (CALIBRATION.left, CALIBRATION.right)
    for emulator, arm, values in zip(world.emulators, arms, (TARGET[:7], TARGET[7:]), strict=True):
        ticks = arm.to_ticks(values)
        assert {n: emulator.goal_position(FOLLOWER_MOTORS[n][0]) for n in PRIMARIES} == ticks
        for shadow, primary in SHADOW_IDS.items():
            assert emulator.goal_position(shadow) == emulator.goal_position(primary)
            assert emulator.present_position(shadow) == emulator.present_position(primary)


def test_a_reset_world_is_read_at_home_with_a_new_episode(world, robot):
    drive(robot, TARGET, 10)
    placed = world.environment_state()
    world.reset(seed=4)
    np.testing.assert_allclose(robot.read_position(), HOME_POSE, atol=ONE_TICK_RAD)
    assert world.sim_time_s == 0.0
    assert not np.allclose(world.environment_state(), placed)  # the cube moved
    info = world.task_info()
    assert info["stage"] == 0 and not info["is_success"] and info["task"] == "TransferCube"


def test_five_percent_dropped_answers_are_survived(world, robot):
    for emulator in world.emulators:
        emulator.update_config(drop_probability=0.05)
    for k in range(300):
        target = TARGET + 0.1 * np.sin(2 * np.pi * k / 150)
        robot.observe()
        robot.command(JointCommand(target))
    assert all(emulator.stats.dropped > 30 for emulator in world.emulators)
    drive(robot, TARGET, 25)
    assert np.abs(world.joint_state() - TARGET)[JOINT_INDICES].max() < 0.02


def test_command_refuses_positions_that_are_not_finite_14_vectors(world, robot):
    goals = [world.left.goal_position(i) for i in SERVO_IDS]
    start_s = world.sim_time_s
    bad = TARGET.copy()
    bad[3] = np.nan
    with pytest.raises(RobotError, match=r"non-finite values at \[3\]"):
        robot.command(JointCommand(bad))
    with pytest.raises(RobotError, match=r"shape \(14,\).*Got \(7,\)"):
        robot.command(JointCommand(TARGET[:7]))
    assert [world.left.goal_position(i) for i in SERVO_IDS] == goals
    assert world.sim_time_s == start_s


# Faults and stopping


def test_a_dead_servo_is_a_safe_stop_that_names_it(world, robot):
    drive(robot, TARGET, 5)
    world.right.update_config(dead_servos={4})
    expected = f"right arm ({world.right.port}): servo 4 'elbow' stopped answering; safe stop"
    with pytest.raises(RobotError, match=re.escape(expected)):
        robot.observe()
    assert not any(world.left.torque_enabled(i) for i in SERVO_IDS)
    assert not any(world.right.torque_enabled(i) for i in SERVO_IDS if i != 4)
    with pytest.raises(RobotError, match="torque is off"):
        robot.command(JointCommand(TARGET))


def test_hold_and_disable_torque_show_in_the_servos(world, robot):
    far = HOME_POSE + 0.6
    far[[6, 13]] = 0.5
    drive(robot, far, 3)  # on the way, not there
    for _ in range(10):
        robot.hold()  # goal = present, tick after tick: the arms stop
    robot.observe()  # the last hold has been served
    stopped = world.joint_state()
    robot.hold()
    robot.observe()
    np.testing.assert_allclose(world.joint_state(), stopped, atol=0.005)
    far_ticks = CALIBRATION.left.to_ticks(far[:7])
    for name in PRIMARIES:
        servo_id = FOLLOWER_MOTORS[name][0]
        goal = world.left.goal_position(servo_id)
        assert abs(goal - world.left.present_position(servo_id)) <= 3
        assert abs(goal - far_ticks[name]) > 20  # the commanded target is gone

    robot.disable_torque()
    for emulator in world.emulators:
        assert not any(emulator.torque_enabled(i) for i in SERVO_IDS)
    with pytest.raises(RobotError, match="torque is off"):
        robot.command(JointCommand(far))
    robot.connect()
    assert all(world.right.torque_enabled(i) for i in SERVO_IDS)
    robot.command(JointCommand(far))


# Cameras and other sensors


def test_simulated_cameras_have_their_size_and_see_the_arms_move():
    with EmulatedAloha(cameras=["cam_high", "cam_left_wrist"], image_size=(48, 64)) as world:
        cameras = world.cameras()
        assert all(isinstance(camera, Camera) for camera in cameras.values())
        sensors = {"observation.environment_state": world.environment_state}
        config = AlohaConfig(ports=world.ports, calibration=world.calibration)
        with AlohaRobot(config, cameras, sensors) as robot:
            assert robot.description.cameras == ("cam_high", "cam_left_wrist")
            assert robot.description.image_size == (48, 64)
            before = robot.observe()
            for image in before.images.values():
                assert image.shape == (48, 64, 3) and image.dtype == np.uint8
            np.testing.assert_array_equal(
                before.extra["observation.environment_state"], world.environment_state()
            )
            still = robot.observe().images
            moved = HOME_POSE.copy()
            moved[[0, 1]] = (0.6, -0.4)  # left waist and shoulder
            drive(robot, moved, 25)
            after = robot.observe().images
    for name, image in before.images.items():
        np.testing.assert_array_equal(still[name], image)
        change = np.abs(after[name].astype(int) - image.astype(int)).mean()
        assert change > 1.0, name


class _UnpluggedCamera:
    name = "cam_low"
    size = (48, 64)

    def connect(self) -> None:
        pass

    def read(self) -> tuple[np.ndarray, float]:
        raise OSError("device unplugged")

    def disconnect(self) -> None:
        pass


def test_a_failing_camera_is_named(world):
    config = AlohaConfig(ports=world.ports, calibration=world.calibration)
    with (
        AlohaRobot(config, {"cam_low": _UnpluggedCamera()}) as robot,
        pytest.raises(RobotError, match="camera 'cam_low': device unplugged"),
    ):
        robot.observe()


@pytest.fixture
def video(tmp_path):
    """A 64×48 MJPG video of 25 frames at 50 fps: blue (BGR), green rising 8 per frame."""
    path = tmp_path / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (64, 48))
    assert writer.isOpened()
    for k in range(25):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 0], frame[..., 1] = 200, 8 * k
        writer.write(frame)
    writer.release()
    return path


def test_opencv_camera_returns_the_latest_rgb_frame_until_the_video_ends(video):
    camera = OpenCVCamera("cam_high", video, size=(48, 64), fps=50, timeout_s=0.3)
    camera.connect()
    try:
        first, first_s = camera.read()
        assert first.shape == (48, 64, 3) and first.dtype == np.uint8
        assert first[..., 2].mean() > 180 and first[..., 0].mean() < 20  # blue, as RGB
        time.sleep(0.2)  # ten frames at 50 fps
        later, later_s = camera.read()
        assert later_s - first_s > 0.1 and later[..., 1].mean() > first[..., 1].mean() + 40
        time.sleep(0.5)  # the video has ended
        with pytest.raises(RobotError, match=r"'cam_high'.*is gone"):
            camera.read()
    finally:
        camera.disconnect()


def test_opencv_camera_resizes_and_names_a_source_it_cannot_open(video, tmp_path):
    camera = OpenCVCamera("cam_low", video, size=(24, 32))
    camera.connect()
    assert camera.read()[0].shape == (24, 32, 3)
    camera.disconnect()
    missing = OpenCVCamera("cam_low", tmp_path / "missing.avi")
    with pytest.raises(RobotError, match=r"'cam_low'.*cannot be opened"):
        missing.connect()


# The emulator hook the lockstep rests on


def test_emulator_reports_each_instruction_after_handling_it():
    seen = []
    with DynamixelEmulator({1: 1020, 2: 1120}) as emulator:
        emulator.on_instruction(lambda *report: seen.append(report))
        motors = {
            "a": Motor(1, "xm430-w350", MotorNormMode.DEGREES),
            "b": Motor(2, "xm540-w270", MotorNormMode.DEGREES),
        }
        bus = DynamixelMotorsBus(emulator.port, motors)
        bus.connect()
        bus.sync_write("Goal_Position", {"a": 100, "b": 200}, normalize=False)
        bus.sync_read("Present_Position", normalize=False)
        bus.disconnect(disable_torque=False)
    goal, present = BY_NAME["Goal_Position"].address, BY_NAME["Present_Position"].address
    assert seen[:2] == [(Instruction.PING, (1,), None), (Instruction.PING, (2,), None)]
    assert seen[-2:] == [
        (Instruction.SYNC_WRITE, (1, 2), goal),
        (Instruction.SYNC_READ, (1, 2), present),
    ]

"""The simulated robot behind the Robot interface: observations, commands, torque, lifecycle."""

import numpy as np
import pytest

from kinema.aloha import HOME_POSE, STATE_NAMES
from kinema.hardware.robot import RobotError
from kinema.hardware.sim_robot import SimRobot, SimRobotConfig
from kinema.sim.simulation import ActionError
from kinema.types import JointCommand

SHOULDER = STATE_NAMES.index("left_shoulder")


@pytest.fixture
def robot():
    """A connected state-only TransferCube robot at 500 Hz, disconnected after."""
    with SimRobot() as robot:
        yield robot


def test_observation_holds_the_environment_observation():
    config = SimRobotConfig(cameras=("cam_high", "cam_left_wrist"), image_size=(48, 64))
    with SimRobot(config) as robot:
        observation = robot.observe()
        info = robot.task_info()

    np.testing.assert_allclose(observation.position, HOME_POSE, atol=1e-6)
    assert observation.velocity.shape == (14,)
    assert observation.timestamp_s == 0.0
    assert set(observation.images) == {"cam_high", "cam_left_wrist"}
    for image in observation.images.values():
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 0
    environment_state = observation.extra["observation.environment_state"]
    assert environment_state.ndim == 1 and environment_state.size >= 7  # the cube's pose
    assert set(observation.as_policy_input()) == {
        "observation.state",
        "observation.environment_state",
        "observation.images.cam_high",
        "observation.images.cam_left_wrist",
    }
    assert observation.as_policy_input()["observation.state"].dtype == np.float32
    assert info["stage"] == 0 and info["max_stage"] == 4 and not info["is_success"]
    assert info["instruction"] and len(info["subtasks"]) == len(info["subtasks_done"])
    assert robot.description.cameras == ("cam_high", "cam_left_wrist")
    assert robot.description.image_size == (48, 64)


def test_the_seed_places_the_objects(robot):
    first = robot.observe().extra["observation.environment_state"]
    robot.connect()
    np.testing.assert_array_equal(robot.observe().extra["observation.environment_state"], first)
    with SimRobot(SimRobotConfig(seed=1)) as other:
        assert not np.allclose(other.observe().extra["observation.environment_state"], first)


def test_a_commanded_pose_is_reached_within_a_second(robot):
    target = HOME_POSE.copy()
    target[[0, 1, 2]] += (0.3, 0.25, -0.3)  # left waist, shoulder, elbow
    target[[7, 11]] += (-0.3, 0.3)  # right waist, wrist angle
    target[[6, 13]] = (0.5, 0.2)  # the grippers
    for _ in range(500):
        robot.command(JointCommand(target))
    observation = robot.observe()
    assert observation.timestamp_s == pytest.approx(1.0)
    np.testing.assert_allclose(observation.position, target, atol=0.02)
    np.testing.assert_allclose(observation.velocity, 0.0, atol=0.05)


def test_each_command_lasts_one_command_period():
    with SimRobot(SimRobotConfig(command_hz=50.0)) as robot:
        robot.command(JointCommand(HOME_POSE))
        assert robot.observe().timestamp_s == pytest.approx(0.02)
        robot.hold()
        assert robot.observe().timestamp_s == pytest.approx(0.04)
    with pytest.raises(ValueError, match="SimRobotConfig: command_hz must divide"):
        SimRobotConfig(command_hz=300.0)


@pytest.mark.parametrize(
    "position", [HOME_POSE[:13], np.tile(HOME_POSE, (2, 1)), np.where(HOME_POSE > 1, np.nan, 0)]
)
def test_malformed_commands_raise_action_error(robot, position):
    with pytest.raises(ActionError):
        robot.command(JointCommand(position))
    assert robot.observe().timestamp_s == 0.0


def test_without_torque_the_arm_sags_and_commands_are_refused(robot):
    for _ in range(250):
        robot.command(JointCommand(HOME_POSE))
    held = robot.observe().position[SHOULDER]
    assert held == pytest.approx(HOME_POSE[SHOULDER], abs=0.01)

    robot.disable_torque()
    with pytest.raises(RobotError, match="torque is off"):
        robot.command(JointCommand(HOME_POSE))
    for _ in range(250):  # half a second passes with the servos limp
        robot.hold()
    assert abs(robot.observe().position[SHOULDER] - held) > 0.1

    robot.connect()  # torque back on, the scene reset
    for _ in range(250):
        robot.command(JointCommand(HOME_POSE))
    assert robot.observe().position[SHOULDER] == pytest.approx(held, abs=1e-3)


def test_leaving_the_context_disconnects():
    with SimRobot() as robot:
        robot.command(JointCommand(HOME_POSE))
    for call in (robot.observe, robot.hold, robot.task_info):
        with pytest.raises(RobotError, match="not connected"):
            call()
    with pytest.raises(RobotError, match="not connected"):
        robot.command(JointCommand(HOME_POSE))
    robot.disconnect()  # harmless twice
    with robot:  # and it connects again
        assert robot.observe().timestamp_s == 0.0

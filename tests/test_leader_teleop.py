"""Leader-arm teleoperation through lerobot's Dynamixel bus, against emulated leader arms."""

import re

import gymnasium as gym
import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from kinema.aloha import HOME_POSE, JOINT_INDICES
from kinema.datasets.leader import LeaderTeleop
from kinema.datasets.record import RecordConfig, record
from kinema.hardware.calibration import (
    TICKS_PER_TURN,
    ArmCalibration,
    GripperCalibration,
    JointCalibration,
    RobotCalibration,
)
from kinema.hardware.dynamixel.emulator import DynamixelEmulator
from kinema.hardware.leader_arms import LEADER_MOTORS, LeaderArmError, LeaderArms

MODEL_NUMBERS = {"xm430-w350": 1020, "xl430-w250": 1060}
ONE_TICK_RAD = 2 * np.pi / TICKS_PER_TURN

# Offsets and a reversed joint, as a real calibration has them.
LEFT = ArmCalibration(
    (
        JointCalibration(2000, 1),
        JointCalibration(2100, 1),
        JointCalibration(1990, -1),
        JointCalibration(2048, 1),
        JointCalibration(2070, -1),
        JointCalibration(2048, 1),
    ),
    GripperCalibration(closed_ticks=1500, open_ticks=2600),
)
CALIBRATION = RobotCalibration(LEFT, ArmCalibration.centred())


@pytest.fixture
def leader_ports():
    servos = {servo_id: MODEL_NUMBERS[model] for servo_id, model in LEADER_MOTORS.values()}
    emulators = [DynamixelEmulator(servos).start() for _ in range(2)]
    yield emulators
    for emulator in emulators:
        emulator.stop()


def hold_leaders_at(emulators: list[DynamixelEmulator], pose: np.ndarray) -> None:
    """Put the emulated leader arms where ``pose`` (14,) says, shadows with their primaries."""
    arms = (CALIBRATION.left, CALIBRATION.right)
    for emulator, arm, values in zip(emulators, arms, (pose[:7], pose[7:]), strict=True):
        ticks = arm.to_ticks(values)
        ticks["shoulder_shadow"], ticks["elbow_shadow"] = ticks["shoulder"], ticks["elbow"]
        for name, value in ticks.items():
            emulator.set_present_position(LEADER_MOTORS[name][0], value)


def test_leaders_are_read_through_lerobots_bus_in_the_stacks_units(leader_ports):
    pose = HOME_POSE + 0.2 * np.sin(np.arange(14))
    pose[[6, 13]] = (0.25, 0.9)
    hold_leaders_at(leader_ports, pose)
    with LeaderArms(tuple(e.port for e in leader_ports), CALIBRATION) as leaders:
        np.testing.assert_allclose(leaders.read(), pose, atol=ONE_TICK_RAD)
        for emulator in leader_ports:
            assert not any(emulator.torque_enabled(i) for i, _ in LEADER_MOTORS.values())


def test_a_silent_leader_servo_is_named_with_its_arm_and_port(leader_ports):
    hold_leaders_at(leader_ports, HOME_POSE)
    with LeaderArms(tuple(e.port for e in leader_ports), CALIBRATION) as leaders:
        leader_ports[1].update_config(dead_servos={4})
        with pytest.raises(
            LeaderArmError, match=re.escape(f"right leader arm on {leader_ports[1].port}")
        ):
            leaders.read()


def test_the_followers_follow_the_leaders(leader_ports):
    env = gym.make("kinema/TransferCube-v0").unwrapped
    hold_leaders_at(leader_ports, HOME_POSE)
    with LeaderArms(tuple(e.port for e in leader_ports), CALIBRATION) as leaders:
        source = LeaderTeleop(leaders)
        observation, _ = source.start(env, seed=0)
        for target in (HOME_POSE + 0.15, HOME_POSE - 0.1):
            target[[6, 13]] = (0.8, 0.3)
            hold_leaders_at(leader_ports, target)
            for _ in range(75):  # 1.5 s
                observation = env.step_ticks(source.next_frame(observation))[0]
            followed = observation["observation.state"]
            assert np.abs(followed - target)[JOINT_INDICES].max() < 0.02
    env.close()


def test_record_with_the_leader_arms_writes_their_demonstration(leader_ports, tmp_path):
    pose = HOME_POSE.copy()
    pose[[6, 13]] = (0.6, 0.6)
    hold_leaders_at(leader_ports, pose)
    CALIBRATION.save(tmp_path / "calibration.json")
    summary = record(
        RecordConfig(
            task="TransferCube",
            episodes=1,
            out=tmp_path / "dataset",
            teleop="leader",
            cameras=("cam_high",),
            image_size=(48, 64),
            keep_failures=True,  # nobody solves the task by holding still
            leader_ports=tuple(e.port for e in leader_ports),
            calibration=tmp_path / "calibration.json",
        )
    )
    assert summary["episodes_saved"] == 1 and summary["frames"] == 400
    dataset = LeRobotDataset("local/kinema", root=tmp_path / "dataset")
    last = dataset[dataset.num_frames - 1]
    np.testing.assert_allclose(last["action"].numpy(), pose, atol=1e-3)

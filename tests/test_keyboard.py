"""Keyboard teleoperation with synthetic key events moves the grippers the expected way."""

import queue

import gymnasium as gym
import numpy as np

from kinema.datasets.keyboard import KeyboardConfig, KeyboardTeleop, QueueKeys


def drive(keys_per_frame: list[list[str]], settle_frames: int = 40):
    """Run the teleop in TransferCube, pressing the given keys frame by frame."""
    env = gym.make("kinema/TransferCube-v0").unwrapped
    keys: queue.Queue = queue.Queue()
    teleop = KeyboardTeleop(QueueKeys(keys), KeyboardConfig(step_m=0.005))
    observation, _ = teleop.start(env, seed=0)
    start = {arm: env.sim.data.site(f"{arm}/tcp").xpos.copy() for arm in ("left", "right")}
    for pressed in keys_per_frame + [[]] * settle_frames:
        for key in pressed:
            keys.put(key)
        observation, *_ = env.step_ticks(teleop.next_frame(observation))
    end = {arm: env.sim.data.site(f"{arm}/tcp").xpos.copy() for arm in ("left", "right")}
    return teleop, env, start, end


def test_keys_move_the_selected_gripper_by_their_steps():
    # Right gripper: 10 presses up, 6 presses toward −y; then the left: 8 presses toward +x.
    frames = [["r"]] * 10 + [["d"]] * 6 + [["1"]] + [["w"]] * 8
    _, _, start, end = drive(frames)
    np.testing.assert_allclose(end["right"] - start["right"], [0.0, -0.03, 0.05], atol=3e-3)
    np.testing.assert_allclose(end["left"] - start["left"], [0.04, 0.0, 0.0], atol=3e-3)


def test_space_closes_the_selected_gripper_and_enter_or_backspace_end_the_episode():
    teleop, env, _, _ = drive([["space"]])
    assert env.sim.joint_state()[13] < 0.1  # the right gripper closed
    assert env.sim.joint_state()[6] > 0.9  # the left stayed open
    assert not teleop.finished
    teleop, _, _, _ = drive([["enter"]], settle_frames=1)
    assert teleop.finished and not teleop.discard_requested
    teleop, _, _, _ = drive([["backspace"]], settle_frames=1)
    assert teleop.finished and teleop.discard_requested

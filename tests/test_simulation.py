"""AlohaSim: the 14-vector convention, servo tracking, grippers and bad actions."""

import numpy as np
import pytest

from kinema.aloha import ACTION_DIM, HOME_POSE, arm_slice
from kinema.sim.model import build_model
from kinema.sim.simulation import ActionError, AlohaSim


@pytest.fixture
def sim() -> AlohaSim:
    sim = AlohaSim(build_model(""))
    sim.reset()
    return sim


def test_reset_puts_arms_at_home(sim):
    np.testing.assert_allclose(sim.joint_state(), HOME_POSE, atol=1e-9)
    np.testing.assert_allclose(sim.joint_velocity(), 0.0)


def test_home_pose_is_held_against_gravity(sim):
    for _ in range(50):  # one second
        sim.step(HOME_POSE)
    np.testing.assert_allclose(sim.joint_state(), HOME_POSE, atol=2e-3)


@pytest.mark.parametrize("joint", range(6))
def test_servo_tracks_a_step_without_oscillation(sim, joint):
    """A 0.3 rad step settles within 1 % in 0.3 s and overshoots by less than 5 %."""
    target = HOME_POSE.copy()
    target[joint] += 0.3
    response = []
    for _ in range(15):  # 0.3 s
        sim.step(target)
        response.append(sim.joint_state()[joint] - HOME_POSE[joint])
    assert abs(response[-1] - 0.3) < 0.003
    assert max(response) < 0.3 * 1.05


def test_servo_follows_a_50_hz_reference_closely(sim):
    """A 1 Hz, 0.3 rad sine on every joint is tracked within 0.06 rad (about 1.5 steps of lag)."""
    errors = []
    for k in range(100):
        reference = HOME_POSE.copy()
        reference[[0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]] += 0.3 * np.sin(2 * np.pi * k * 0.02)
        sim.step(reference)
        if k > 10:
            errors.append(np.abs(sim.joint_state() - reference)[[0, 1, 2, 3, 4, 5]].max())
    assert max(errors) < 0.06


@pytest.mark.parametrize("arm", ["left", "right"])
def test_gripper_opens_and_closes_on_command(sim, arm):
    gripper = arm_slice(arm).start + 6
    action = HOME_POSE.copy()
    action[gripper] = 0.0
    for _ in range(25):
        sim.step(action)
    assert sim.joint_state()[gripper] < 0.02
    action[gripper] = 0.7
    for _ in range(25):
        sim.step(action)
    assert sim.joint_state()[gripper] == pytest.approx(0.7, abs=0.02)


def test_targets_beyond_the_limits_are_clipped_by_the_servos(sim):
    action = HOME_POSE.copy()
    action[1] = 10.0  # far beyond the shoulder's 1.25664 rad
    for _ in range(100):
        sim.step(action)
    assert sim.joint_state()[1] <= 1.25664 + 1e-3


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(13), "shape"),
        (np.zeros((2, 14)), "shape"),
        (np.full(ACTION_DIM, np.nan), "non-finite"),
        (np.where(np.arange(ACTION_DIM) == 3, np.inf, 0.0), "indices \\[3\\]"),
    ],
)
def test_invalid_actions_raise_a_clear_error(sim, action, message):
    before = sim.data.qpos.copy()
    with pytest.raises(ActionError, match=message):
        sim.step(action)
    np.testing.assert_array_equal(sim.data.qpos, before)  # nothing was applied


def test_free_body_pose_requires_a_free_joint(sim):
    with pytest.raises(ValueError, match="free joint"):
        sim.set_free_body_pose("left/gripper_link", np.zeros(3))

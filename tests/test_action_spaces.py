"""End-effector actions: 6-D rotations and the 20-value layout, round trips and bad input."""

import numpy as np
import pytest

from kinema.aloha import GRIPPER_INDICES, HOME_POSE
from kinema.controllers.action_spaces import (
    END_EFFECTOR_NAMES,
    ActionSpaceError,
    end_effector_action,
    end_effector_action_of,
    end_effector_targets,
    rotation_from_6d,
    rotation_to_6d,
)
from kinema.controllers.kinematics import Kinematics, Pose, rotation_exp, tcp_site
from kinema.sim.model import build_model


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    return rotation_exp(rng.uniform(-np.pi, np.pi, size=3))


def test_6d_rotation_round_trip_and_gram_schmidt_of_noisy_columns():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotation = random_rotation(rng)
        np.testing.assert_allclose(rotation_from_6d(rotation_to_6d(rotation)), rotation, atol=1e-12)
        noisy = rotation_to_6d(rotation) * 3.0 + rng.normal(scale=0.01, size=6)
        recovered = rotation_from_6d(noisy)
        np.testing.assert_allclose(recovered.T @ recovered, np.eye(3), atol=1e-12)
        assert np.linalg.det(recovered) == pytest.approx(1.0)
        np.testing.assert_allclose(recovered, rotation, atol=0.02)


def test_end_effector_action_round_trip():
    rng = np.random.default_rng(1)
    left = Pose(np.array([-0.1, 0.05, 0.2]), random_rotation(rng))
    right = Pose(np.array([0.15, -0.02, 0.1]), random_rotation(rng))
    action = end_effector_action(left, right, (0.25, 1.0))
    got_left, got_right, openings = end_effector_targets(action)
    for got, want in ((got_left, left), (got_right, right)):
        np.testing.assert_allclose(got.position, want.position)
        np.testing.assert_allclose(got.rotation, want.rotation, atol=1e-12)
    assert openings == (0.25, 1.0)


@pytest.mark.parametrize(
    "action",
    [np.zeros(14), np.full(20, np.nan), np.zeros(20)],
    ids=["joint-sized", "nan", "degenerate-rotation"],
)
def test_bad_end_effector_actions_raise(action):
    with pytest.raises(ActionSpaceError):
        end_effector_targets(action)


def test_end_effector_action_of_a_configuration_is_its_forward_kinematics():
    kinematics = Kinematics(build_model(""))
    configuration = HOME_POSE + 0.1 * np.sin(np.arange(14))
    configuration[GRIPPER_INDICES] = (0.3, 0.8)
    action = end_effector_action_of(kinematics, configuration)
    left, right, openings = end_effector_targets(action)
    kinematics.configure(configuration)
    for pose, arm in ((left, "left"), (right, "right")):
        expected = kinematics.frame_pose(tcp_site(arm))
        np.testing.assert_allclose(pose.position, expected.position, atol=1e-12)
        np.testing.assert_allclose(pose.rotation, expected.rotation, atol=1e-12)
    assert openings == (0.3, 0.8)
    assert len(END_EFFECTOR_NAMES) == 20

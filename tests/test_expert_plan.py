"""End-effector plans: minimum-jerk segments, held arms, targets resolved when reached."""

import numpy as np
import pytest

from kinema.controllers.kinematics import Pose, rotation_log
from kinema.sim.experts.base import down_rotation, square_grasp_yaw, yaw_rotation
from kinema.sim.experts.plan import EndEffectorPlan, Keyframe, minimum_jerk

START = Pose(np.zeros(3), np.eye(3))


def test_minimum_jerk_starts_and_ends_at_rest():
    assert minimum_jerk(0.0) == 0.0 and minimum_jerk(1.0) == 1.0
    eps = 1e-6
    for tau in (0.0, 1.0):
        velocity = (minimum_jerk(tau + eps) - minimum_jerk(tau - eps)) / (2 * eps)
        assert abs(velocity) < 1e-5
    assert minimum_jerk(-1.0) == 0.0 and minimum_jerk(2.0) == 1.0


def test_plan_interpolates_position_rotation_and_opening_between_keyframes():
    end = Pose(np.array([0.2, 0.0, 0.1]), yaw_rotation(0.8))
    plan = EndEffectorPlan(START, START, (1.0, 1.0))
    plan.append(Keyframe(2.0, right=end, right_opening=0.0))
    middle = plan.sample(1.0)
    np.testing.assert_allclose(middle.right.position, [0.1, 0.0, 0.05])
    np.testing.assert_allclose(rotation_log(middle.right.rotation), [0.0, 0.0, 0.4], atol=1e-12)
    assert middle.openings == pytest.approx((1.0, 0.5))
    np.testing.assert_allclose(middle.left.position, START.position)  # the left arm holds
    final = plan.sample(2.5)
    np.testing.assert_allclose(final.right.position, end.position)
    assert plan.end_s == 2.0


def test_callable_targets_are_resolved_once_when_their_segment_starts():
    calls = []

    def target() -> Pose:
        calls.append(len(calls))
        return Pose(np.array([0.0, 0.0, 0.3]), np.eye(3))

    plan = EndEffectorPlan(START, START, (1.0, 1.0))
    plan.append(Keyframe(1.0))
    plan.append(Keyframe(1.0, left=target))
    plan.sample(0.5)
    assert calls == []
    plan.sample(1.2)
    plan.sample(1.9)
    assert calls == [0]
    np.testing.assert_allclose(plan.sample(2.0).left.position, [0.0, 0.0, 0.3])


def test_keyframes_need_a_positive_duration():
    with pytest.raises(ValueError, match="duration_s"):
        EndEffectorPlan(START, START, (1.0, 1.0)).append(Keyframe(0.0))


def test_grasp_orientations_point_down_and_follow_square_symmetry():
    for arm in ("left", "right"):
        rotation = down_rotation(arm, 0.3)
        np.testing.assert_allclose(rotation[:, 0], [0.0, 0.0, -1.0], atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert square_grasp_yaw(0.3) == pytest.approx(0.3)
    assert square_grasp_yaw(np.pi / 2 + 0.3) == pytest.approx(0.3)
    assert square_grasp_yaw(-0.9) == pytest.approx(-0.9 + np.pi / 2)

"""Kinematics: frame Jacobians against finite differences of frame poses, rotations, poses."""

import numpy as np
import pytest

from kinema.aloha import ACTION_DIM, ACTION_HIGH, ACTION_LOW, GRIPPER_INDICES, HOME_POSE
from kinema.controllers.kinematics import (
    Kinematics,
    KinematicsError,
    Pose,
    rotation_exp,
    rotation_log,
    skew,
    tcp_site,
)
from kinema.sim.model import build_model

EPS = 1e-6  # finite-difference step, rad
FD_TOLERANCE = 1e-6

SITES = ["left/tcp", "right/tcp"]
# Bodies on the arm chains (not the fingers, whose slide joints the 14-vector drives through the
# gripper opening) and one static body.
BODIES = [
    "left/gripper_link",
    "right/gripper_link",
    "left/upper_forearm_link",
    "right/wrist_link",
    "left/shoulder_link",
    "right/base_link",
]


@pytest.fixture(scope="module")
def kin() -> Kinematics:
    return Kinematics(build_model(""))


def random_configurations(seed: int, count: int) -> list[np.ndarray]:
    """Configurations drawn uniformly within 90 % of the joint ranges, grippers in [0, 1]."""
    rng = np.random.default_rng(seed)
    low, high = ACTION_LOW.astype(np.float64), ACTION_HIGH.astype(np.float64)
    middle, half = (low + high) / 2, (high - low) / 2
    return [middle + 0.9 * half * rng.uniform(-1.0, 1.0, ACTION_DIM) for _ in range(count)]


def random_rotation(rng: np.random.Generator, max_angle: float = np.pi) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return rotation_exp(axis * rng.uniform(0.0, max_angle))


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose(rng.normal(size=3), random_rotation(rng))


def finite_difference_jacobian(
    kin: Kinematics, q: np.ndarray, name: str, kind: str = "site"
) -> np.ndarray:
    """Central differences: positions directly, rotations by log(R(q + εeᵢ) R(q − εeᵢ)ᵀ)/2ε."""
    jacobian = np.zeros((6, ACTION_DIM))
    for i in range(ACTION_DIM):
        step = np.zeros(ACTION_DIM)
        step[i] = EPS
        kin.configure(q + step)
        plus = kin.frame_pose(name, kind)
        kin.configure(q - step)
        minus = kin.frame_pose(name, kind)
        jacobian[:3, i] = (plus.position - minus.position) / (2 * EPS)
        jacobian[3:, i] = rotation_log(plus.rotation @ minus.rotation.T) / (2 * EPS)
    kin.configure(q)
    return jacobian


# -- Jacobians ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [(s, "site") for s in SITES] + [(b, "body") for b in BODIES]
)
def test_frame_jacobian_matches_finite_differences(kin, name, kind):
    for q in random_configurations(seed=1, count=4):
        expected = finite_difference_jacobian(kin, q, name, kind)
        kin.configure(q)
        jacobian = kin.frame_jacobian(name, kind)
        assert jacobian.shape == (6, ACTION_DIM)
        np.testing.assert_allclose(jacobian, expected, atol=FD_TOLERANCE)


@pytest.mark.parametrize("arm", ["left", "right"])
def test_tcp_jacobian_touches_only_its_own_arm_and_not_the_grippers(kin, arm):
    kin.configure(random_configurations(seed=2, count=1)[0])
    jacobian = kin.frame_jacobian(tcp_site(arm))
    np.testing.assert_array_equal(jacobian[:, GRIPPER_INDICES], 0.0)
    other = slice(7, 14) if arm == "left" else slice(0, 7)
    own = slice(0, 6) if arm == "left" else slice(7, 13)
    np.testing.assert_array_equal(jacobian[:, other], 0.0)
    assert np.linalg.matrix_rank(jacobian[:, own]) == 6


def test_gripper_opening_does_not_move_the_tcp(kin):
    q = HOME_POSE.copy()
    kin.configure(q)
    before = [kin.frame_pose(site) for site in SITES]
    q[GRIPPER_INDICES] = [0.0, 0.3]
    kin.configure(q)
    for site, pose in zip(SITES, before, strict=True):
        np.testing.assert_allclose(kin.frame_pose(site).position, pose.position, atol=1e-12)
        np.testing.assert_allclose(kin.frame_pose(site).rotation, pose.rotation, atol=1e-12)


@pytest.mark.parametrize("body", ["left/gripper_link", "right/lower_forearm_link"])
def test_point_jacobian_matches_finite_differences(kin, body):
    rng = np.random.default_rng(3)
    body_id = kin.model.body(body).id
    for q in random_configurations(seed=4, count=3):
        offset = rng.normal(scale=0.05, size=3)  # point in the body frame, m

        def world_point(configuration, offset=offset):
            kin.configure(configuration)
            pose = kin.frame_pose(body, "body")
            return pose.position + pose.rotation @ offset

        expected = np.zeros((3, ACTION_DIM))
        for i in range(ACTION_DIM):
            step = np.zeros(ACTION_DIM)
            step[i] = EPS
            expected[:, i] = (world_point(q + step) - world_point(q - step)) / (2 * EPS)
        point = world_point(q)
        jacobian = kin.point_jacobian(point, body_id)
        assert jacobian.shape == (3, ACTION_DIM)
        np.testing.assert_allclose(jacobian, expected, atol=FD_TOLERANCE)


def test_point_jacobian_at_the_tcp_is_the_linear_part_of_the_frame_jacobian(kin):
    kin.configure(random_configurations(seed=5, count=1)[0])
    for arm in ("left", "right"):
        site = tcp_site(arm)
        body_id = kin.model.site_bodyid[kin.model.site(site).id]
        np.testing.assert_allclose(
            kin.point_jacobian(kin.frame_pose(site).position, body_id),
            kin.frame_jacobian(site)[:3],
            atol=1e-12,
        )


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("left/nope", "site"), ("left/tcp", "body"), ("left/gripper_link", "site"), ("", "body")],
)
def test_unknown_frames_raise(kin, name, kind):
    kin.configure(HOME_POSE)
    with pytest.raises(KinematicsError, match="Kinematics.*no " + kind):
        kin.frame_pose(name, kind)
    with pytest.raises(KinematicsError, match=repr(name)):
        kin.frame_jacobian(name, kind)


def test_bad_configuration_raises_kinematics_error(kin):
    """KinematicsError's contract: "a configuration of the wrong shape" raises it."""
    kin.configure(HOME_POSE)
    for configuration in (np.zeros(13), np.zeros((2, 7)), np.r_[HOME_POSE[:-1], np.nan]):
        with pytest.raises(KinematicsError):
            kin.configure(configuration)
        np.testing.assert_array_equal(kin.configuration, HOME_POSE)


def test_bad_configuration_raises_a_value_error_naming_the_shape(kin):
    with pytest.raises(ValueError, match=r"shape \(14,\).*Got shape \(13,\)"):
        kin.configure(np.zeros(13))


def test_configure_does_not_alias_the_callers_array(kin):
    """The stored configuration must stay the one the frames were computed at."""
    q = HOME_POSE.copy()
    kin.configure(q)
    q[0] += 0.5
    np.testing.assert_array_equal(kin.configuration, HOME_POSE)


# -- rotations and poses --------------------------------------------------------------------


def test_rotation_exp_is_a_proper_rotation():
    rng = np.random.default_rng(6)
    for _ in range(20):
        rotation = rotation_exp(rng.normal(scale=2.0, size=3))
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)


def test_rotation_log_inverts_rotation_exp_below_pi():
    rng = np.random.default_rng(7)
    for _ in range(50):
        axis = rng.normal(size=3)
        vector = axis / np.linalg.norm(axis) * rng.uniform(0.0, np.pi - 1e-3)
        np.testing.assert_allclose(rotation_log(rotation_exp(vector)), vector, atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-8, 1e-4])
def test_rotation_log_of_tiny_rotations(angle):
    vector = angle * np.array([0.6, -0.8, 0.0])
    np.testing.assert_allclose(rotation_log(rotation_exp(vector)), vector, atol=1e-14)


@pytest.mark.parametrize("angle", [np.pi - 1e-3, np.pi - 1e-6, np.pi - 1e-9, np.pi])
def test_rotation_log_near_pi(angle):
    """Near π the axis sign is ambiguous: the round trip returns the same rotation, |ω| ≈ angle."""
    rng = np.random.default_rng(8)
    for _ in range(10):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        rotation = rotation_exp(axis * angle)
        vector = rotation_log(rotation)
        assert np.linalg.norm(vector) == pytest.approx(angle, abs=1e-7)
        assert np.linalg.norm(vector) <= np.pi + 1e-12
        assert abs(abs(vector @ axis) - np.linalg.norm(vector)) < 1e-7  # parallel to ±axis
        np.testing.assert_allclose(rotation_exp(vector), rotation, atol=1e-9)


def test_rotation_log_of_a_half_turn_about_each_axis():
    for axis in np.eye(3):
        rotation = 2.0 * np.outer(axis, axis) - np.eye(3)  # exact 180° rotation
        vector = rotation_log(rotation)
        np.testing.assert_allclose(np.abs(vector), np.pi * axis, atol=1e-12)


def test_rotation_log_is_the_inverse_of_exp_for_random_rotations():
    rng = np.random.default_rng(9)
    for _ in range(20):
        rotation = random_rotation(rng)
        np.testing.assert_allclose(rotation_exp(rotation_log(rotation)), rotation, atol=1e-12)


def test_skew_is_the_cross_product():
    rng = np.random.default_rng(10)
    u, v = rng.normal(size=(2, 3))
    np.testing.assert_allclose(skew(v) @ u, np.cross(v, u), atol=1e-15)
    np.testing.assert_allclose(skew(v), -skew(v).T)


def assert_pose_close(actual: Pose, expected: Pose, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(actual.position, expected.position, atol=atol)
    np.testing.assert_allclose(actual.rotation, expected.rotation, atol=atol)


def test_pose_compose_relative_to_and_inverse_apply_are_consistent():
    rng = np.random.default_rng(11)
    for _ in range(10):
        a, b, c = random_pose(rng), random_pose(rng), random_pose(rng)
        relative = b.relative_to(a)
        assert_pose_close(a.compose(relative), b)  # a ∘ (a⁻¹ b) = b
        np.testing.assert_allclose(relative.position, a.inverse_apply(b.position), atol=1e-12)
        assert_pose_close(a.compose(b).relative_to(a), b)
        assert_pose_close(a.relative_to(a), Pose(np.zeros(3), np.eye(3)))
        assert_pose_close(a.compose(b).compose(c), a.compose(b.compose(c)))
        point = rng.normal(size=3)
        # inverse_apply undoes applying the pose to a point
        np.testing.assert_allclose(
            a.inverse_apply(a.rotation @ point + a.position), point, atol=1e-12
        )
        np.testing.assert_allclose(
            a.compose(Pose(point, np.eye(3))).position, a.rotation @ point + a.position
        )


def test_relative_pose_of_the_two_tcps(kin):
    kin.configure(random_configurations(seed=12, count=1)[0])
    left, right = kin.frame_pose("left/tcp"), kin.frame_pose("right/tcp")
    relative = right.relative_to(left)
    assert_pose_close(left.compose(relative), right)
    np.testing.assert_allclose(
        np.linalg.norm(relative.position), np.linalg.norm(right.position - left.position)
    )

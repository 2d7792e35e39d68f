"""WBC limits: joint position and velocity bounds, collision rows against finite differences."""

import mujoco
import numpy as np
import pytest

from kinema.aloha import (
    ACTION_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    GRIPPER_INDICES,
    HOME_POSE,
    MAX_VELOCITY,
)
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits import (
    CollisionAvoidanceLimit,
    Constraint,
    LimitError,
    PositionLimit,
    VelocityLimit,
    aloha_collision_geoms,
)
from kinema.sim.model import build_model

DT = 0.002
EPS = 1e-6


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_model("")


@pytest.fixture(scope="module")
def kin(model) -> Kinematics:
    return Kinematics(model)


@pytest.fixture(scope="module")
def arm_geoms(model) -> tuple[list[int], list[int]]:
    return aloha_collision_geoms(model, "left"), aloha_collision_geoms(model, "right")


# -- joint position limit ---------------------------------------------------------------------


def test_position_limit_bounds_close_a_fraction_of_the_margin(kin):
    limit = PositionLimit(gain=0.9)
    q = HOME_POSE.copy()
    q[GRIPPER_INDICES] = [0.25, 0.75]
    kin.configure(q)
    constraint = limit.compute_constraint(kin, DT)
    assert isinstance(constraint, Constraint)
    assert constraint.G is None
    low, high = ACTION_LOW.astype(np.float64), ACTION_HIGH.astype(np.float64)
    np.testing.assert_allclose(constraint.lower, 0.9 * (low - q) / DT)
    np.testing.assert_allclose(constraint.upper, 0.9 * (high - q) / DT)
    # The extreme velocities keep the next configuration inside the range.
    for velocity in (constraint.lower, constraint.upper):
        following = q + velocity * DT
        assert np.all(following >= low - 1e-12)
        assert np.all(following <= high + 1e-12)


def test_position_limit_holds_a_configuration_that_drifted_out(kin):
    """Out of range, v = 0 stays admissible and no bound pushes further out."""
    q = HOME_POSE.copy()
    q[1] = ACTION_HIGH[1] + 0.3  # shoulder beyond its upper limit
    q[9] = ACTION_LOW[9] - 0.2  # right elbow below its lower limit
    kin.configure(q)
    constraint = PositionLimit().compute_constraint(kin, DT)
    assert np.all(constraint.lower <= 0.0)
    assert np.all(constraint.upper >= 0.0)
    assert constraint.upper[1] == 0.0  # may only come back down
    assert constraint.lower[9] == 0.0  # may only come back up


def test_position_limit_custom_range(kin):
    lower = np.full(ACTION_DIM, -0.5)
    upper = np.full(ACTION_DIM, 0.5)
    kin.configure(np.zeros(ACTION_DIM))
    constraint = PositionLimit(lower, upper, gain=1.0).compute_constraint(kin, 0.01)
    np.testing.assert_allclose(constraint.lower, -50.0)
    np.testing.assert_allclose(constraint.upper, 50.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lower": np.zeros(13)},
        {"upper": np.zeros((2, 7))},
        {"lower": np.full(ACTION_DIM, 1.0), "upper": np.zeros(ACTION_DIM)},
        {"gain": 0.0},
        {"gain": 1.5},
        {"gain": np.nan},
    ],
    ids=["lower-shape", "upper-shape", "lower-above-upper", "gain-0", "gain-1.5", "gain-nan"],
)
def test_position_limit_rejects_bad_arguments(kwargs):
    with pytest.raises(LimitError, match=r"^PositionLimit: "):
        PositionLimit(**kwargs)


def test_position_limit_rejects_nan_bounds():
    """NaN bounds would reach the solver as NaN; they must be refused like any bad argument."""
    lower = ACTION_LOW.astype(np.float64)
    lower[3] = np.nan
    with pytest.raises(LimitError, match=r"^PositionLimit: "):
        PositionLimit(lower=lower)


# -- joint velocity limit ---------------------------------------------------------------------


def test_velocity_limit_default_bounds(kin):
    kin.configure(HOME_POSE)
    constraint = VelocityLimit().compute_constraint(kin, DT)
    assert constraint.G is None
    expected = np.full(ACTION_DIM, np.pi)
    expected[GRIPPER_INDICES] = 5.0
    np.testing.assert_allclose(constraint.upper, expected)
    np.testing.assert_allclose(constraint.lower, -expected)
    np.testing.assert_allclose(MAX_VELOCITY, expected)


def test_velocity_limit_custom_bounds_do_not_depend_on_state_or_period(kin):
    limit = VelocityLimit(np.linspace(0.5, 2.0, ACTION_DIM))
    for q, dt in ((HOME_POSE, DT), (np.zeros(ACTION_DIM), 0.02)):
        kin.configure(q)
        constraint = limit.compute_constraint(kin, dt)
        np.testing.assert_allclose(constraint.upper, np.linspace(0.5, 2.0, ACTION_DIM))
        np.testing.assert_allclose(constraint.lower, -np.linspace(0.5, 2.0, ACTION_DIM))


@pytest.mark.parametrize(
    "max_velocity",
    [
        np.ones(13),
        np.zeros(ACTION_DIM),
        -np.ones(ACTION_DIM),
        np.r_[np.ones(13), np.inf],
        np.r_[np.ones(13), np.nan],
    ],
    ids=["shape", "zero", "negative", "inf", "nan"],
)
def test_velocity_limit_rejects_bad_arguments(max_velocity):
    with pytest.raises(LimitError, match=r"^VelocityLimit: max_velocity must be"):
        VelocityLimit(max_velocity)


# -- collision avoidance ----------------------------------------------------------------------


def near_zero_pose(seed: int, count: int = 3) -> list[np.ndarray]:
    """The zero pose (grippers face to face, overlapping) with small random joint offsets."""
    rng = np.random.default_rng(seed)
    configurations = []
    for _ in range(count):
        q = rng.normal(scale=0.1, size=ACTION_DIM)
        q[GRIPPER_INDICES] = 0.5
        configurations.append(q)
    return configurations


def near_table() -> list[np.ndarray]:
    """Both grippers lowered onto the table: one above it, one through it (from a scan)."""
    result = []
    for shoulder, wrist in ((0.9, 0.9), (1.1, 0.9)):
        offset = [0.2, shoulder, 0, 0.3, wrist, 0, 0, -0.3, shoulder - 0.1, 0, 0, wrist, 0.2, 0]
        result.append(HOME_POSE + np.array(offset))
    return result


def pair_distances(limit: CollisionAvoidanceLimit, kin: Kinematics, q: np.ndarray) -> dict:
    kin.configure(q)
    return {(first, second): distance for first, second, distance, _ in limit.distances(kin)}


def check_rows_are_distance_gradients(
    limit: CollisionAvoidanceLimit,
    kin: Kinematics,
    configurations: list[np.ndarray],
    moving: np.ndarray,
    seed: int,
) -> tuple[int, int]:
    """For random v over the ``moving`` entries, (d(q + εv) − d(q − εv)) / 2ε = −(G v) per row.

    Returns how many separated and overlapping pairs were checked.
    """
    rng = np.random.default_rng(seed)
    separated = overlapping = 0
    for q in configurations:
        kin.configure(q)
        near = limit.distances(kin)
        constraint = limit.compute_constraint(kin, DT)
        assert constraint.G.shape == (len(near), ACTION_DIM)
        for _ in range(3):
            velocity = np.zeros(ACTION_DIM)
            velocity[moving] = rng.normal(size=len(moving))
            plus = pair_distances(limit, kin, q + EPS * velocity)
            minus = pair_distances(limit, kin, q - EPS * velocity)
            for row, (first, second, distance, _) in enumerate(near):
                if abs(distance) < 1e-4:  # touching: the distance is not smooth there
                    continue
                rate = (plus[first, second] - minus[first, second]) / (2 * EPS)
                predicted = -(constraint.G[row] @ velocity)
                assert predicted == pytest.approx(rate, abs=1e-6), (
                    f"pair {kin.model.geom(first).name or first}–"
                    f"{kin.model.geom(second).name or second} at d = {distance:+.4f} m"
                )
        separated += sum(d > 1e-4 for _, _, d, _ in near)
        overlapping += sum(d < -1e-4 for _, _, d, _ in near)
    return separated, overlapping


ARM_JOINT_ENTRIES = np.setdiff1d(np.arange(ACTION_DIM), GRIPPER_INDICES)


def test_collision_rows_are_the_gradient_of_arm_arm_distances(model, kin, arm_geoms):
    """Off the exact zero pose, whose parallel housing faces make d non-smooth in rotation."""
    limit = CollisionAvoidanceLimit(model, [arm_geoms], minimum_distance_m=0.02)
    separated, overlapping = check_rows_are_distance_gradients(
        limit, kin, near_zero_pose(seed=1, count=4), ARM_JOINT_ENTRIES, seed=2
    )
    assert separated >= 5 and overlapping >= 3  # both cases were exercised


def test_collision_rows_are_the_gradient_of_arm_table_distances(model, kin, arm_geoms):
    table = model.geom("table").id
    limit = CollisionAvoidanceLimit(
        model, [(arm_geoms[0] + arm_geoms[1], [table])], minimum_distance_m=0.003
    )
    separated, overlapping = check_rows_are_distance_gradients(
        limit, kin, near_table(), ARM_JOINT_ENTRIES, seed=3
    )
    assert separated >= 3 and overlapping >= 2


def test_collision_rows_include_the_finger_slides_of_the_pads(model, kin):
    """With the finger pads in the groups, opening a gripper moves them: the rows must say so.

    Each finger slides by g · FINGER_TRAVEL_M, so ∂d/∂g is nonzero for a pad near the other arm.
    (The pads are out of ``aloha_collision_geoms`` by default, but a caller may name them.)
    """
    bodies = ("gripper_link", "left_finger_link", "right_finger_link")
    groups = [aloha_collision_geoms(model, arm, bodies) for arm in ("left", "right")]
    limit = CollisionAvoidanceLimit(model, [tuple(groups)], minimum_distance_m=0.02)
    configurations = near_zero_pose(seed=4)
    for q in configurations:
        q[GRIPPER_INDICES] = [0.3, 0.6]
    check_rows_are_distance_gradients(limit, kin, configurations, GRIPPER_INDICES, seed=5)


def test_collision_row_bounds_are_velocity_dampers(model, kin, arm_geoms):
    limit = CollisionAvoidanceLimit(model, [arm_geoms], minimum_distance_m=0.02, gain=0.5)
    q = near_zero_pose(seed=6, count=1)[0]
    kin.configure(q)
    near = limit.distances(kin)
    constraint = limit.compute_constraint(kin, DT)
    assert len(near) > 0
    np.testing.assert_array_equal(constraint.lower, -np.inf)
    expected = np.array([0.5 * (d - 0.02) / DT for _, _, d, _ in near])
    np.testing.assert_allclose(constraint.upper, expected)
    # Every near arm–arm pair moves with some joint: no row is empty.
    assert np.all(np.linalg.norm(constraint.G, axis=1) > 0)


def all_pair_distances(model, kin, pairs) -> dict:
    fromto = np.zeros(6)
    return {
        (int(a), int(b)): mujoco.mj_geomDistance(model, kin.data, a, b, 10.0, fromto)
        for a, b in pairs
    }


@pytest.mark.parametrize("detection", [0.03, 0.1, 0.3])
def test_only_pairs_within_detection_add_rows(model, kin, arm_geoms, detection):
    limit = CollisionAvoidanceLimit(
        model, [arm_geoms], minimum_distance_m=0.01, detection_distance_m=detection
    )
    for q in [np.zeros(ACTION_DIM), HOME_POSE, *near_zero_pose(seed=7, count=2)]:
        kin.configure(q)
        exact = all_pair_distances(model, kin, limit.pairs)
        expected = {pair for pair, distance in exact.items() if distance < detection}
        near = limit.distances(kin)
        assert {(a, b) for a, b, _, _ in near} == expected  # the broad phase drops no pair
        for first, second, distance, _ in near:
            assert distance == pytest.approx(exact[first, second], abs=1e-9)
        constraint = limit.compute_constraint(kin, DT)
        assert constraint.G.shape == (len(expected), ACTION_DIM)
        assert constraint.lower.shape == constraint.upper.shape == (len(expected),)


def test_arms_at_home_add_no_rows(model, kin, arm_geoms):
    kin.configure(HOME_POSE)
    limit = CollisionAvoidanceLimit(model, [arm_geoms], minimum_distance_m=0.02)
    constraint = limit.compute_constraint(kin, DT)
    assert constraint.G.shape == (0, ACTION_DIM)
    assert min(all_pair_distances(model, kin, limit.pairs).values()) > 0.1


def test_aloha_collision_geoms_collide_and_belong_to_their_arm(model, arm_geoms):
    for arm, geoms in zip(("left", "right"), arm_geoms, strict=True):
        assert len(geoms) >= 5
        assert model.geom(f"{arm}/gripper_housing").id in geoms
        for geom in geoms:
            assert model.geom_contype[geom] != 0
            assert model.body(model.geom_bodyid[geom]).name.startswith(f"{arm}/")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minimum_distance_m": -0.01},
        {"minimum_distance_m": 0.1, "detection_distance_m": 0.1},
        {"minimum_distance_m": 0.2, "detection_distance_m": 0.1},
        {"minimum_distance_m": np.nan},
        {"gain": 0.0},
        {"gain": 1.5},
        {"gain": np.nan},
    ],
)
def test_collision_limit_rejects_bad_arguments(model, arm_geoms, kwargs):
    with pytest.raises(LimitError, match=r"^CollisionAvoidanceLimit: "):
        CollisionAvoidanceLimit(model, [arm_geoms], **kwargs)


@pytest.mark.parametrize("group_pairs", [[], [([], [1])], [([9], [9])]])
def test_collision_limit_rejects_groups_without_pairs(model, group_pairs):
    with pytest.raises(LimitError, match=r"^CollisionAvoidanceLimit: group_pairs name no pair"):
        CollisionAvoidanceLimit(model, group_pairs)

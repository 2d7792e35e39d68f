"""WholeBodyController: reaching, joint limits, strict priorities, collision avoidance, fallback."""

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
from kinema.controllers.kinematics import Kinematics, Pose, rotation_log
from kinema.controllers.limits import (
    CollisionAvoidanceLimit,
    PositionLimit,
    VelocityLimit,
    aloha_collision_geoms,
)
from kinema.controllers.tasks import FrameTask, GripperTask, PostureTask, RelativeFrameTask
from kinema.controllers.wbc import WbcConfig, WbcError, WholeBodyController
from kinema.sim.model import build_model

DT = 0.002
LOW, HIGH = ACTION_LOW.astype(np.float64), ACTION_HIGH.astype(np.float64)
# Grippers pointing straight down (columns: the gripper's x, y, z axes in world).
LEFT_DOWN = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).T
RIGHT_DOWN = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]]).T


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_model("")


@pytest.fixture
def kin(model) -> Kinematics:
    return Kinematics(model)


def arm_arm_limit(model, minimum_distance_m: float = 0.02, **kwargs) -> CollisionAvoidanceLimit:
    groups = (aloha_collision_geoms(model, "left"), aloha_collision_geoms(model, "right"))
    return CollisionAvoidanceLimit(model, [groups], minimum_distance_m, **kwargs)


def arm_table_limit(model, minimum_distance_m: float = 0.003, **kwargs) -> CollisionAvoidanceLimit:
    arms = aloha_collision_geoms(model, "left") + aloha_collision_geoms(model, "right")
    return CollisionAvoidanceLimit(
        model, [(arms, [model.geom("table").id])], minimum_distance_m, **kwargs
    )


def standard_limits(model, collisions: bool = True) -> list:
    limits = [PositionLimit(), VelocityLimit()]
    if collisions:
        limits += [arm_arm_limit(model), arm_table_limit(model)]
    return limits


def minimum_distance(limit: CollisionAvoidanceLimit, kin: Kinematics) -> float:
    """Smallest signed distance (m) over the limit's pairs; its detection range if none is near."""
    distances = [distance for _, _, distance, _ in limit.distances(kin)]
    return min(distances, default=limit.detection_distance_m)


def frame_task(site: str, target: Pose, **kwargs) -> FrameTask:
    task = FrameTask(site, **kwargs)
    task.set_target(target)
    return task


def pose_error(kin: Kinematics, site: str, target: Pose) -> tuple[float, float]:
    """(position error in m, orientation error in rad) of ``site`` against ``target``."""
    pose = kin.frame_pose(site)
    return (
        float(np.linalg.norm(pose.position - target.position)),
        float(np.linalg.norm(rotation_log(pose.rotation @ target.rotation.T))),
    )


def reachable_targets(model, seed: int, count: int) -> list[tuple[dict[str, Pose], np.ndarray]]:
    """TCP poses of random configurations around home (±0.5 rad per joint), clear of collisions,
    with random gripper openings: reachable by construction."""
    rng = np.random.default_rng(seed)
    probe = Kinematics(model)
    arm_arm, arm_table = arm_arm_limit(model), arm_table_limit(model)
    targets = []
    while len(targets) < count:
        q = HOME_POSE + rng.uniform(-0.5, 0.5, ACTION_DIM)
        q[GRIPPER_INDICES] = HOME_POSE[GRIPPER_INDICES]
        probe.configure(q)
        if minimum_distance(arm_arm, probe) < 0.05 or minimum_distance(arm_table, probe) < 0.03:
            continue
        poses = {site: probe.frame_pose(site) for site in ("left/tcp", "right/tcp")}
        targets.append((poses, rng.uniform(0.0, 1.0, 2)))
    # The two down-pointing reference targets.
    targets.append(
        (
            {
                "left/tcp": Pose(np.array([-0.15, -0.05, 0.10]), LEFT_DOWN),
                "right/tcp": Pose(np.array([0.1, 0.05, 0.05]), RIGHT_DOWN),
            },
            np.array([0.0, 1.0]),
        )
    )
    return targets


# -- reaching ---------------------------------------------------------------------------------


def test_reaches_reachable_targets_for_both_arms(model, kin):
    worst_position, worst_angle = 0.0, 0.0
    for poses, openings in reachable_targets(model, seed=0, count=4):
        tasks = {site: frame_task(site, pose) for site, pose in poses.items()}
        wbc = WholeBodyController(
            kin,
            [[*tasks.values(), GripperTask(tuple(openings))], [PostureTask(HOME_POSE, cost=0.05)]],
            standard_limits(model),
        )
        q = HOME_POSE.copy()
        for _ in range(1500):  # 3 s
            result = wbc.step(q)
            assert result.status == "optimal", result.reason
            q = result.configuration
        kin.configure(q)
        for site, pose in poses.items():
            position, angle = pose_error(kin, site, pose)
            worst_position, worst_angle = max(worst_position, position), max(worst_angle, angle)
        np.testing.assert_allclose(q[GRIPPER_INDICES], openings, atol=1e-9)
    assert worst_position < 2e-3, f"worst position error {worst_position * 1e3:.3f} mm"
    assert np.degrees(worst_angle) < 1.0, f"worst orientation error {np.degrees(worst_angle)}°"


# -- joint limits -----------------------------------------------------------------------------


def assert_run_respects_joint_limits(wbc: WholeBodyController, steps: int) -> np.ndarray:
    """Run from home; every velocity and configuration within limits, before and after clipping."""
    max_velocity = MAX_VELOCITY
    q = HOME_POSE.copy()
    for _ in range(steps):
        result = wbc.step(q)
        assert result.status == "optimal", result.reason
        assert np.all(np.abs(result.velocity) <= max_velocity + 1e-9)
        unclipped = q + result.velocity * DT  # the QP itself must respect the range
        assert np.all(unclipped >= LOW - 1e-8) and np.all(unclipped <= HIGH + 1e-8)
        q = result.configuration
        assert np.all(q >= LOW) and np.all(q <= HIGH)
    return q


def test_never_violates_joint_limits_chasing_targets_outside_the_workspace(model, kin):
    beyond = HOME_POSE + np.array([5, -5, 5, -5, 5, -5, 0, -5, 5, -5, 5, -5, 5, 0], dtype=float)
    levels = [
        [
            frame_task("left/tcp", Pose(np.array([1.5, 0.8, 1.2]), LEFT_DOWN)),
            frame_task("right/tcp", Pose(np.array([-1.5, -0.8, -0.5]), RIGHT_DOWN)),
        ],
        [PostureTask(beyond, cost=1.0)],
    ]
    assert_run_respects_joint_limits(WholeBodyController(kin, levels, standard_limits(model)), 1000)


def test_posture_beyond_the_limits_stops_at_the_limits(model, kin):
    beyond = HOME_POSE + np.array([5, -5, 5, -5, 5, -5, 0, -5, 5, -5, 5, -5, 5, 0], dtype=float)
    wbc = WholeBodyController(kin, [[PostureTask(beyond)]], standard_limits(model))
    q = assert_run_respects_joint_limits(wbc, 1000)
    pushed_up = beyond > HIGH
    pushed_down = beyond < LOW
    assert pushed_up.sum() + pushed_down.sum() == 12
    # The limits were reached, so the check above had something to catch.
    np.testing.assert_allclose(q[pushed_up], HIGH[pushed_up], atol=1e-6)
    np.testing.assert_allclose(q[pushed_down], LOW[pushed_down], atol=1e-6)


# -- priorities -------------------------------------------------------------------------------


def test_lower_levels_do_not_change_what_a_higher_level_achieves(model, kin):
    """Strict hierarchy: J v of the top task is the same with the lower level removed or changed;
    weighted mode, with the same tasks, lets the lower one pull it away."""
    target = Pose(np.array([-0.15, -0.05, 0.10]), LEFT_DOWN)
    reach = frame_task("left/tcp", target, orientation_cost=0.0)  # 3 rows: the arm is redundant
    swing = np.array([1.5, 0.8, -1.0, 1.5, -1.0, 1.5, 0.0, 1, 1, 1, 1, 1, 1, 0])
    limits = standard_limits(model, collisions=False)
    alone = WholeBodyController(kin, [[reach]], limits)
    ranked = WholeBodyController(
        kin, [[reach], [PostureTask(HOME_POSE + swing, cost=100.0)]], limits
    )
    changed = WholeBodyController(
        kin, [[reach], [PostureTask(HOME_POSE - swing, cost=30.0)]], limits
    )
    weighted = WholeBodyController(
        kin,
        [[reach], [PostureTask(HOME_POSE + swing, cost=100.0)]],
        limits,
        WbcConfig(mode="weighted"),
    )
    q = HOME_POSE.copy()
    top_change = lower_effect = weighted_change = 0.0
    for _ in range(40):
        v_alone, v_ranked = alone.step(q).velocity, ranked.step(q).velocity
        v_changed, v_weighted = changed.step(q).velocity, weighted.step(q).velocity
        kin.configure(q)
        jacobian = kin.frame_jacobian("left/tcp")[:3]
        top_change = max(
            top_change,
            np.abs(jacobian @ (v_ranked - v_alone)).max(),
            np.abs(jacobian @ (v_changed - v_alone)).max(),
        )
        lower_effect = max(lower_effect, np.abs(v_ranked - v_alone).max())
        weighted_change = max(weighted_change, np.abs(jacobian @ (v_weighted - v_alone)).max())
        q = ranked.step(q).configuration
    assert top_change < 1e-9, f"top task velocity changed by {top_change:.2e} m/s"
    assert lower_effect > 0.1  # the lower level did act, in the nullspace
    assert weighted_change > 0.1  # weighted mode trades the tasks off


def test_relative_frame_task_on_top_holds_the_grippers_together(model, kin):
    kin.configure(HOME_POSE)
    start = kin.frame_pose("left/tcp")
    held = kin.frame_pose("right/tcp").relative_to(start)
    together = RelativeFrameTask("left/tcp", "right/tcp")
    together.set_target(held)
    moved = Pose(start.position + np.array([0.0, 0.08, -0.05]), start.rotation)
    wbc = WholeBodyController(
        kin,
        [[together], [frame_task("left/tcp", moved)], [PostureTask(HOME_POSE, cost=0.05)]],
        standard_limits(model),
    )
    probe = Kinematics(model)
    q = HOME_POSE.copy()
    drift_position = drift_angle = 0.0
    for _ in range(800):
        result = wbc.step(q)
        assert result.status == "optimal", result.reason
        q = result.configuration
        probe.configure(q)
        relative = probe.frame_pose("right/tcp").relative_to(probe.frame_pose("left/tcp"))
        drift_position = max(drift_position, np.linalg.norm(relative.position - held.position))
        drift_angle = max(
            drift_angle, np.linalg.norm(rotation_log(relative.rotation @ held.rotation.T))
        )
    travel = np.linalg.norm(probe.frame_pose("left/tcp").position - start.position)
    assert travel > 0.09  # the left gripper went (almost all the way) to the moved target
    assert pose_error(probe, "left/tcp", moved)[0] < 1e-3
    assert drift_position < 1e-4, f"relative position drifted {drift_position * 1e3:.3f} mm"
    assert drift_angle < 3e-4, f"relative orientation drifted {drift_angle:.2e} rad"


# -- collision avoidance ----------------------------------------------------------------------


def head_on_run(model, kin, with_limit: bool, steps: int = 2000) -> float:
    """Both grippers pointing down, driven to the same point above the table centre; returns the
    smallest arm–arm distance (m) over the run."""
    middle = np.array([0.0, 0.0, 0.25])
    levels = [
        [
            frame_task("left/tcp", Pose(middle, LEFT_DOWN)),
            frame_task("right/tcp", Pose(middle, RIGHT_DOWN)),
            GripperTask(),
        ],
        [PostureTask(HOME_POSE, cost=0.05)],
    ]
    limits = [PositionLimit(), VelocityLimit(), arm_table_limit(model)]
    if with_limit:
        limits.append(arm_arm_limit(model, 0.02))
    wbc = WholeBodyController(kin, levels, limits)
    gauge = arm_arm_limit(model, 0.02, detection_distance_m=0.5)  # a measuring tape only
    probe = Kinematics(model)
    q = HOME_POSE.copy()
    smallest = np.inf
    for _ in range(steps):
        result = wbc.step(q)
        assert result.status == "optimal", result.reason
        q = result.configuration
        probe.configure(q)
        smallest = min(smallest, minimum_distance(gauge, probe))
    return smallest


def test_collision_avoidance_keeps_the_arms_apart_head_on(model, kin):
    assert head_on_run(model, kin, with_limit=True) >= 0.02 - 1e-3


def test_without_collision_avoidance_the_head_on_run_collides(model, kin):
    """The scenario above is a real test: without the limit the grippers interpenetrate."""
    assert head_on_run(model, kin, with_limit=False) < 0.0


# -- solvers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hierarchical", "weighted"])
def test_cvxpy_path_matches_daqp(model, kin, mode):
    """Away from saturated limits (small gains), both solvers return the same optimum."""
    rng = np.random.default_rng(5)
    probe = Kinematics(model)
    for _ in range(3):
        q = HOME_POSE + rng.uniform(-0.3, 0.3, ACTION_DIM)
        q[GRIPPER_INDICES] = rng.uniform(0.2, 0.8, 2)
        probe.configure(q + rng.normal(scale=0.02, size=ACTION_DIM))
        gain = 0.01  # v ≈ 5 · error: well inside the velocity limits
        levels = [
            [
                frame_task("left/tcp", probe.frame_pose("left/tcp"), gain=gain),
                frame_task(
                    "right/tcp", probe.frame_pose("right/tcp"), orientation_cost=0.0, gain=gain
                ),
                GripperTask((0.5, 0.5), gain=gain),
            ],
            [PostureTask(HOME_POSE, cost=0.05, gain=gain)],
        ]
        velocities = [
            WholeBodyController(
                kin, levels, standard_limits(model), WbcConfig(mode=mode, solver=solver)
            )
            .step(q)
            .velocity
            for solver in ("daqp", "CLARABEL")
        ]
        assert 0.05 < np.abs(velocities[0]).max() < 0.5 * np.pi  # moving, not saturated
        np.testing.assert_allclose(velocities[1], velocities[0], atol=1e-5)


# -- failure ----------------------------------------------------------------------------------


def test_infeasible_first_level_falls_back_to_holding(model, kin):
    """At the zero pose the grippers overlap by ~4 cm; separating at the damper's rate with
    1 mrad/s joints is impossible, so the first level has no solution."""
    q = np.zeros(ACTION_DIM)
    kin.configure(q)
    assert minimum_distance(arm_arm_limit(model), kin) < -0.03
    wbc = WholeBodyController(
        kin,
        [[frame_task("left/tcp", kin.frame_pose("left/tcp")), GripperTask()], [PostureTask(q)]],
        [PositionLimit(), VelocityLimit(np.full(ACTION_DIM, 1e-3)), arm_arm_limit(model, 0.02)],
    )
    for count in (1, 2):
        result = wbc.step(q)
        assert result.status == "fallback"
        assert "level 0" in result.reason
        np.testing.assert_array_equal(result.velocity, 0.0)
        np.testing.assert_array_equal(result.configuration, q)
        assert wbc.fallback_count == count
    # A feasible state solves normally and leaves the count alone.
    result = wbc.step(HOME_POSE)
    assert result.status == "optimal"
    assert wbc.fallback_count == 2


@pytest.mark.parametrize("levels", [[], [[]], [[GripperTask()], []]], ids=["none", "empty", "tail"])
def test_empty_levels_raise(kin, levels):
    with pytest.raises(WbcError, match=r"^WholeBodyController: levels must be"):
        WholeBodyController(kin, levels, [])


@pytest.mark.parametrize("shape", [(12, 14), (3, 14), (6, 6), (9, 6), (4, 9)])
def test_nullspace_basis_spans_exactly_the_free_directions(kin, shape):
    rng = np.random.default_rng(sum(shape))
    size = shape[1]
    matrix = rng.standard_normal(shape)
    matrix[0] = matrix[1]  # one dependent row: the rank is one short of full
    wbc = WholeBodyController(kin, [[PostureTask(HOME_POSE)]], [])
    basis = np.linalg.qr(rng.standard_normal((ACTION_DIM, size)))[0]  # orthonormal columns
    free, _ = wbc._nullspace(matrix, basis)
    rank = np.linalg.matrix_rank(matrix)
    assert free.shape == (ACTION_DIM, size - rank)
    np.testing.assert_allclose(free.T @ free, np.eye(size - rank), atol=1e-12)
    # Moving along the free directions changes nothing the matrix measures.
    np.testing.assert_allclose(matrix @ (basis.T @ free), 0.0, atol=1e-12)

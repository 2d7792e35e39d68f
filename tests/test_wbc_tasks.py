"""WBC tasks: Jacobians against finite differences of the errors, objectives, bad arguments."""

import numpy as np
import pytest

from kinema.aloha import ACTION_DIM, GRIPPER_INDICES, HOME_POSE, JOINT_INDICES
from kinema.controllers.kinematics import Kinematics, Pose, rotation_exp
from kinema.controllers.tasks import (
    FrameTask,
    GripperTask,
    Objective,
    PostureTask,
    RelativeFrameTask,
    TaskError,
)
from kinema.sim.model import build_model

EPS = 1e-6
FD_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def kin() -> Kinematics:
    return Kinematics(build_model(""))


def configurations(seed: int, count: int = 4) -> list[np.ndarray]:
    """Configurations around the home pose (±0.6 rad per joint), grippers in [0, 1]."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        q = HOME_POSE + rng.uniform(-0.6, 0.6, ACTION_DIM)
        q[GRIPPER_INDICES] = rng.uniform(0.0, 1.0, 2)
        result.append(q)
    return result


def finite_difference(kin: Kinematics, task, q: np.ndarray) -> np.ndarray:
    """Central differences of ``task.compute_error`` over the 14 entries of q."""
    columns = []
    for i in range(ACTION_DIM):
        step = np.zeros(ACTION_DIM)
        step[i] = EPS
        kin.configure(q + step)
        plus = task.compute_error(kin)
        kin.configure(q - step)
        minus = task.compute_error(kin)
        columns.append((plus - minus) / (2 * EPS))
    kin.configure(q)
    return np.stack(columns, axis=1)


def random_offset_pose(rng: np.random.Generator, pose: Pose, angle: float) -> Pose:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Pose(
        pose.position + rng.normal(scale=0.1, size=3), rotation_exp(angle * axis) @ pose.rotation
    )


# -- Jacobians against finite differences ----------------------------------------------------


@pytest.mark.parametrize("site", ["left/tcp", "right/tcp"])
def test_frame_task_jacobian_matches_finite_differences(kin, site):
    rng = np.random.default_rng(1)
    task = FrameTask(site)
    for q in configurations(seed=2):
        kin.configure(q)
        # At a target equal to the current pose log(R R*ᵀ) is exact to first order: all rows.
        task.set_target(kin.frame_pose(site))
        np.testing.assert_allclose(np.abs(task.compute_error(kin)).max(), 0.0, atol=1e-12)
        expected = finite_difference(kin, task, q)
        jacobian = task.compute_jacobian(kin)
        assert jacobian.shape == (6, ACTION_DIM)
        np.testing.assert_allclose(jacobian, expected, atol=FD_TOLERANCE)
        # Position rows are exact for any target.
        task.set_target(random_offset_pose(rng, kin.frame_pose(site), angle=1.0))
        expected = finite_difference(kin, task, q)
        np.testing.assert_allclose(task.compute_jacobian(kin)[:3], expected[:3], atol=FD_TOLERANCE)


@pytest.mark.parametrize(("base", "site"), [("left/tcp", "right/tcp"), ("right/tcp", "left/tcp")])
def test_relative_frame_task_jacobian_matches_finite_differences(kin, base, site):
    rng = np.random.default_rng(3)
    task = RelativeFrameTask(base, site)
    for q in configurations(seed=4):
        kin.configure(q)
        current = kin.frame_pose(site).relative_to(kin.frame_pose(base))
        task.set_target(current)
        np.testing.assert_allclose(np.abs(task.compute_error(kin)).max(), 0.0, atol=1e-12)
        expected = finite_difference(kin, task, q)
        jacobian = task.compute_jacobian(kin)
        assert jacobian.shape == (6, ACTION_DIM)
        np.testing.assert_allclose(jacobian, expected, atol=FD_TOLERANCE)
        np.testing.assert_array_equal(jacobian[:, GRIPPER_INDICES], 0.0)
        task.set_target(random_offset_pose(rng, current, angle=1.0))
        expected = finite_difference(kin, task, q)
        np.testing.assert_allclose(task.compute_jacobian(kin)[:3], expected[:3], atol=FD_TOLERANCE)


def test_relative_frame_task_ignores_moving_both_arms_together(kin):
    """Translating both grippers by the same world velocity leaves their relative pose alone."""
    q = configurations(seed=5, count=1)[0]
    kin.configure(q)
    task = RelativeFrameTask("left/tcp", "right/tcp")
    task.set_target(kin.frame_pose("right/tcp").relative_to(kin.frame_pose("left/tcp")))
    left, right = kin.frame_jacobian("left/tcp"), kin.frame_jacobian("right/tcp")
    twist = np.array([0.1, -0.05, 0.02, 0.0, 0.0, 0.0])  # pure translation, m/s
    velocity = np.zeros(ACTION_DIM)
    velocity[0:6] = np.linalg.solve(left[:, 0:6], twist)
    velocity[7:13] = np.linalg.solve(right[:, 7:13], twist)
    np.testing.assert_allclose(task.compute_jacobian(kin) @ velocity, 0.0, atol=1e-12)


def test_posture_task_jacobian_matches_finite_differences(kin):
    rng = np.random.default_rng(6)
    task = PostureTask(HOME_POSE + rng.normal(scale=0.5, size=ACTION_DIM))
    for q in configurations(seed=7):
        kin.configure(q)
        error = task.compute_error(kin)
        assert error.shape == (12,)
        np.testing.assert_allclose(error, (q - task.target)[JOINT_INDICES])
        jacobian = task.compute_jacobian(kin)
        assert jacobian.shape == (12, ACTION_DIM)
        np.testing.assert_allclose(jacobian, finite_difference(kin, task, q), atol=FD_TOLERANCE)
        np.testing.assert_array_equal(jacobian[:, GRIPPER_INDICES], 0.0)


def test_gripper_task_jacobian_matches_finite_differences(kin):
    task = GripperTask(openings=(0.2, 0.9))
    for q in configurations(seed=8):
        kin.configure(q)
        np.testing.assert_allclose(task.compute_error(kin), q[GRIPPER_INDICES] - [0.2, 0.9])
        jacobian = task.compute_jacobian(kin)
        assert jacobian.shape == (2, ACTION_DIM)
        np.testing.assert_allclose(jacobian, finite_difference(kin, task, q), atol=FD_TOLERANCE)
        np.testing.assert_array_equal(jacobian[:, JOINT_INDICES], 0.0)


def make_tasks(kin: Kinematics) -> list:
    frame = FrameTask("left/tcp", position_cost=[1.0, 2.0, 3.0], orientation_cost=0.5, gain=0.7)
    frame.set_target(random_offset_pose(np.random.default_rng(9), kin.frame_pose("left/tcp"), 0.3))
    relative = RelativeFrameTask("left/tcp", "right/tcp", position_cost=2.0, gain=0.5)
    relative.set_target(Pose(np.array([0.3, 0.0, 0.0]), np.eye(3)))
    return [frame, relative, PostureTask(HOME_POSE, cost=0.1, gain=0.2), GripperTask((0.0, 1.0))]


def test_objective_rows_are_cost_weighted_jacobian_and_error(kin):
    q = configurations(seed=10, count=1)[0]
    kin.configure(q)
    dt = 0.002
    for task in make_tasks(kin):
        objective = task.compute_objective(kin, dt)
        assert isinstance(objective, Objective)
        np.testing.assert_allclose(objective.A, task.cost[:, None] * task.compute_jacobian(kin))
        np.testing.assert_allclose(
            objective.b, -task.cost * task.gain * task.compute_error(kin) / dt
        )


# -- bad arguments ----------------------------------------------------------------------------

BAD_COSTS = [-1.0, np.nan, np.inf, [1.0] * 4, np.ones((3, 3)), [1.0, -1.0, 1.0]]
BAD_GAINS = [0.0, -0.5, 1.5, np.nan]

CONSTRUCTORS = {
    "FrameTask": lambda **kw: FrameTask("left/tcp", **kw),
    "RelativeFrameTask": lambda **kw: RelativeFrameTask("left/tcp", "right/tcp", **kw),
    "PostureTask": lambda **kw: PostureTask(HOME_POSE, **kw),
    "GripperTask": lambda **kw: GripperTask((1.0, 1.0), **kw),
}
COST_ARGUMENTS = {
    "FrameTask": ["position_cost", "orientation_cost"],
    "RelativeFrameTask": ["position_cost", "orientation_cost"],
    "PostureTask": ["cost"],
    "GripperTask": ["cost"],
}


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_bad_costs_raise_task_error_naming_the_class(name):
    for argument in COST_ARGUMENTS[name]:
        for cost in BAD_COSTS:
            with pytest.raises(TaskError, match=f"^{name} {argument}: cost must be"):
                CONSTRUCTORS[name](**{argument: cost})


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_bad_gains_raise_task_error_naming_the_class(name):
    for gain in BAD_GAINS:
        with pytest.raises(TaskError, match=f"^{name}: gain must be in"):
            CONSTRUCTORS[name](gain=gain)


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_good_costs_broadcast(name):
    for argument in COST_ARGUMENTS[name]:
        task = CONSTRUCTORS[name](**{argument: 0.0}, gain=1.0)  # zero cost is allowed
        assert task.cost.ndim == 1
        assert np.all(np.isfinite(task.cost))


def test_posture_task_rejects_bad_targets():
    task = PostureTask(HOME_POSE)
    for target in (np.zeros(12), np.r_[HOME_POSE[:-1], np.nan], np.zeros((14, 1))):
        with pytest.raises(TaskError, match=r"^PostureTask target: "):
            task.set_target(target)
    np.testing.assert_array_equal(task.target, HOME_POSE)


def test_gripper_task_rejects_bad_openings():
    task = GripperTask((0.5, 0.5))
    for openings in ((1.5, 0.0), (-0.1, 0.0), (0.5,), (0.5, 0.5, 0.5), (np.nan, 0.0)):
        with pytest.raises(
            TaskError, match=r"^GripperTask: openings must be two values in \[0, 1\]"
        ):
            task.set_target(openings)
    np.testing.assert_array_equal(task.target, [0.5, 0.5])


@pytest.mark.parametrize("name", ["FrameTask", "RelativeFrameTask"])
def test_frame_tasks_reject_malformed_target_poses(name):
    """A bad argument raises an error naming the class (DESIGN.md), at set_target, not later."""
    task = CONSTRUCTORS[name]()
    bad_targets = [
        Pose(np.zeros(2), np.eye(3)),  # position of the wrong shape
        Pose(np.array([np.nan, 0.0, 0.0]), np.eye(3)),  # non-finite position
        Pose(np.zeros(3), np.eye(2)),  # rotation of the wrong shape
        Pose(np.zeros(3), 2.0 * np.eye(3)),  # not a rotation
    ]
    for target in bad_targets:
        with pytest.raises(TaskError, match=f"^{name}"):
            task.set_target(target)


@pytest.mark.parametrize("name", ["FrameTask", "RelativeFrameTask"])
def test_frame_tasks_without_target_raise(kin, name):
    kin.configure(HOME_POSE)
    task = CONSTRUCTORS[name]()
    with pytest.raises(TaskError, match=f"^{name}\\(.*no target set"):
        task.compute_error(kin)
    with pytest.raises(TaskError, match=f"^{name}\\(.*no target set"):
        task.compute_objective(kin, 0.002)

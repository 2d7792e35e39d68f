"""Reusable checks of the safety layer: fuzz a ``SafeRobot`` and check what reached the robot.

    fuzz_commands(safe_robot, 10_000, np.random.default_rng(0))
    assert_no_violations(targets, presents, safe_robot.description, safe_robot.config)

``targets`` are the positions that reached the inner robot, in order, and ``presents`` the
inner robot's position when each was sent; any robot that records them can be checked.
"""

import contextlib

import numpy as np

from kinema.hardware.robot import RobotDescription
from kinema.hardware.safety import CommandRejected, SafeRobot, SafetyConfig
from kinema.types import JointCommand

VALID_KINDS = ("small_step", "anywhere_in_limits", "out_of_range", "huge_jump")
MALFORMED_KINDS = ("nan", "inf", "wrong_shape", "not_numeric")
WRONG_SHAPES = ((13,), (15,), (0,), (2, 14), (), (14, 1))
TOLERANCE = 1e-9


def random_command(
    kind: str, description: RobotDescription, rng: np.random.Generator, walk: np.ndarray
) -> object:
    """One command position of the given kind (``VALID_KINDS`` or ``MALFORMED_KINDS``);
    "small_step" moves ``walk`` (in place) by a few hundredths and returns a copy of it."""
    lower, upper = description.lower, description.upper
    inside = rng.uniform(lower, upper)
    size = lower.shape[0]
    if kind == "small_step":
        walk[:] = np.clip(walk + rng.normal(0.0, 0.02, size), lower, upper)
        return walk.copy()
    if kind == "anywhere_in_limits":
        return inside
    if kind == "out_of_range":
        return rng.uniform(lower - 3.0, upper + 3.0)
    if kind == "huge_jump":
        return rng.choice([-1.0, 1.0], size) * 10.0 ** rng.uniform(2, 12, size)
    if kind in ("nan", "inf"):
        bad = rng.random(size) < 0.3
        bad[rng.integers(size)] = True
        value = np.nan if kind == "nan" else rng.choice([-np.inf, np.inf])
        inside[bad] = value
        return inside
    if kind == "wrong_shape":
        return rng.normal(0.0, 1.0, WRONG_SHAPES[rng.integers(len(WRONG_SHAPES))])
    if kind == "not_numeric":
        return [None, "left", {"a": 1}, ["x"] * size][rng.integers(4)]
    raise ValueError(f"random_command: unknown kind {kind!r}")


def fuzz_commands(robot: SafeRobot, count: int, rng: np.random.Generator) -> None:
    """Send ``count`` random commands, valid and malformed mixed (a third malformed), and
    assert that each malformed one was recorded as exactly one "rejected" intervention."""
    kinds = VALID_KINDS + MALFORMED_KINDS
    walk = robot.observe().position.copy()
    weights = np.array([2.0] * len(VALID_KINDS) + [1.0] * len(MALFORMED_KINDS))
    for _ in range(count):
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        rejected_before = robot.intervention_counts().get("rejected", 0)
        command = JointCommand(random_command(kind, robot.description, rng, walk))
        with contextlib.suppress(CommandRejected):  # raised when hold_on_reject is False
            robot.command(command)
        rejected = robot.intervention_counts().get("rejected", 0) - rejected_before
        expected = 1 if kind in MALFORMED_KINDS else 0
        assert rejected == expected, f"a {kind} command was recorded as {rejected} rejections"


def assert_no_violations(
    targets: np.ndarray,
    presents: np.ndarray,
    description: RobotDescription,
    config: SafetyConfig,
) -> None:
    """Assert every target is within the limits, within max_target_offset of the position the
    robot had when it was sent, and within max_velocity · period · margin of the target before.

    Args:
        targets: (N, n) positions that reached the robot, in order.
        presents: (N, n) the robot's position when each target was sent.
        description: the robot's limits, velocities and rate.
        config: the safety bounds.

    The step bound holds while the robot stays within max_target_offset of its last target
    (a robot that follows its targets, not pushed away), as in ``fuzz_commands``.
    """
    targets = np.asarray(targets, dtype=np.float64)
    presents = np.asarray(presents, dtype=np.float64)
    names = np.array(description.joint_names)
    assert targets.ndim == 2 and targets.shape == presents.shape, (targets.shape, presents.shape)
    assert np.all(np.isfinite(targets)), "a non-finite target reached the robot"

    below = targets < description.lower - TOLERANCE
    above = targets > description.upper + TOLERANCE
    assert not below.any() and not above.any(), (
        f"{below.sum() + above.sum()} targets outside the limits, "
        f"joints {sorted(set(names[np.nonzero(below | above)[1]]))}"
    )

    offset = np.abs(targets - presents) - config.target_offsets(description.joint_names)
    assert offset.max() <= TOLERANCE, (
        f"{(offset > TOLERANCE).sum()} targets beyond max_target_offset of the present "
        f"position, worst by {offset.max():.4g} at {names[np.argmax(offset) % offset.shape[1]]}"
    )

    max_step = description.max_velocity * description.command_period_s * config.velocity_margin
    step = np.abs(np.diff(targets, axis=0)) - max_step
    assert step.size == 0 or step.max() <= TOLERANCE, (
        f"{(step > TOLERANCE).sum()} steps beyond the velocity bound, worst by "
        f"{step.max():.4g} at {names[np.argmax(step) % step.shape[1]]}"
    )

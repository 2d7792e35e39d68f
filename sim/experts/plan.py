"""End-effector plans: keyframes of both grippers, joined by minimum-jerk motions.

A plan starts from the grippers' current poses and openings. Each ``Keyframe`` says where the
left and right gripper (tool centre point) should be, and how open, ``duration_s`` seconds after
the previous keyframe. Between keyframes the position follows the minimum-jerk profile

    s(τ) = 10τ³ − 15τ⁴ + 6τ⁵,   τ = (t − t₀)/duration ∈ [0, 1],

which starts and ends at rest with zero acceleration; the rotation follows the same profile
along the geodesic, R(τ) = R₀ exp(s(τ) · log(R₀ᵀ R₁)), and the gripper opening linearly.

A keyframe target may be a callable, resolved once, when the plan first enters its segment. An
expert uses that to aim at where an object *is* at that moment (for example the block it is
about to stack on), not where it was when the plan was written.

A keyframe marked ``mistake`` moves towards a deliberate error (a grasp beside the object, a
release off target) that the expert then recovers from; ``PlanSample.mistake`` says whether an
instant belongs to such a motion, so that recordings can flag those frames as not to imitate.

Example:
    >>> import numpy as np
    >>> from kinema.controllers.kinematics import Pose
    >>> home = Pose(np.zeros(3), np.eye(3))
    >>> plan = EndEffectorPlan(home, home, (1.0, 1.0))
    >>> plan.append(Keyframe(1.0, right=Pose(np.array([0.0, 0.0, 0.1]), np.eye(3))))
    >>> float(plan.sample(0.5).right.position[2])
    0.05
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from kinema.controllers.kinematics import Pose, rotation_exp, rotation_log

PoseTarget = Pose | Callable[[], Pose] | None
"""A pose, a callable giving the pose when its segment starts, or None to keep the last one."""


@dataclass(frozen=True)
class Keyframe:
    """Where the grippers should be ``duration_s`` seconds after the previous keyframe.

    Attributes:
        duration_s: time to move from the previous keyframe, in seconds (> 0).
        left, right: gripper (TCP) target poses, or None to hold the previous one.
        left_opening, right_opening: gripper openings in [0, 1], or None to hold.
        mistake: the motion to this keyframe is a deliberate error (see module docstring).
    """

    duration_s: float
    left: PoseTarget = None
    right: PoseTarget = None
    left_opening: float | None = None
    right_opening: float | None = None
    mistake: bool = False


class PlanSample(NamedTuple):
    """The plan at one instant: both gripper poses, the (left, right) openings, and whether the
    instant lies in a motion towards a deliberate mistake."""

    left: Pose
    right: Pose
    openings: tuple[float, float]
    mistake: bool = False


def minimum_jerk(tau: float) -> float:
    """s(τ) = 10τ³ − 15τ⁴ + 6τ⁵ for τ clipped to [0, 1]."""
    tau = min(max(tau, 0.0), 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


def interpolate_pose(start: Pose, end: Pose, s: float) -> Pose:
    """The pose a fraction ``s`` of the way from ``start`` to ``end`` (straight line, geodesic)."""
    rotation = start.rotation @ rotation_exp(s * rotation_log(start.rotation.T @ end.rotation))
    return Pose(start.position + s * (end.position - start.position), rotation)


class _Segment(NamedTuple):
    start_s: float
    keyframe: Keyframe


class EndEffectorPlan:
    """A timeline of keyframes for both grippers (see module docstring)."""

    def __init__(self, left: Pose, right: Pose, openings: tuple[float, float]):
        self._segments: list[_Segment] = []
        self._end_s = 0.0
        self._current = 0
        self.initial = PlanSample(left, right, openings)
        self._from = self.initial  # the state at the current segment's start
        self._to = self.initial

    @property
    def end_s(self) -> float:
        """Time at which the last keyframe is reached, in seconds from the plan's start."""
        return self._end_s

    def append(self, keyframe: Keyframe) -> None:
        """Add ``keyframe`` after the last one."""
        if not keyframe.duration_s > 0.0:
            raise ValueError(f"Keyframe.duration_s must be positive. Got {keyframe.duration_s}.")
        self._segments.append(_Segment(self._end_s, keyframe))
        self._end_s += keyframe.duration_s

    def _enter(self, index: int) -> None:
        """Make segment ``index`` current: its start is the previous target, its end resolved."""
        self._from = self._to
        keyframe = self._segments[index].keyframe
        self._to = PlanSample(
            _resolve(keyframe.left, self._from.left),
            _resolve(keyframe.right, self._from.right),
            (
                self._from.openings[0] if keyframe.left_opening is None else keyframe.left_opening,
                self._from.openings[1]
                if keyframe.right_opening is None
                else keyframe.right_opening,
            ),
        )
        self._current = index + 1

    def sample(self, time_s: float) -> PlanSample:
        """The grippers' poses and openings at ``time_s``; times must not decrease."""
        while self._current < len(self._segments) and time_s >= self._segments[self._current][0]:
            self._enter(self._current)
        if self._current == 0:
            return self._from
        start_s, keyframe = self._segments[self._current - 1]
        s = minimum_jerk((time_s - start_s) / keyframe.duration_s)
        tau = min(max((time_s - start_s) / keyframe.duration_s, 0.0), 1.0)
        return PlanSample(
            interpolate_pose(self._from.left, self._to.left, s),
            interpolate_pose(self._from.right, self._to.right, s),
            (
                self._from.openings[0] + tau * (self._to.openings[0] - self._from.openings[0]),
                self._from.openings[1] + tau * (self._to.openings[1] - self._from.openings[1]),
            ),
            keyframe.mistake,
        )


def _resolve(target: PoseTarget, previous: Pose) -> Pose:
    if target is None:
        return previous
    return target() if callable(target) else target

"""What every scripted expert shares: the grasp geometry of the ALOHA gripper and the timing.

An expert writes an ``EndEffectorPlan`` one subtask at a time, from the true object poses in the
simulator, with randomised durations and approach heights so that no two demonstrations are
alike. The runner (``kinema.sim.experts.runner``) executes the plan through the cerebellum.

Gripper geometry (see sim/assets/arm.xml): the tool centre point (TCP) lies between the finger
pads, which reach 0.026 m beyond it along the gripper's x axis. "Pointing down"
means the gripper x axis is world −z; each arm's natural downward orientation keeps the fingers
closing along world y, and a yaw turns it about world z.

Example:
    >>> import numpy as np
    >>> down_rotation("left", 0.0)[:, 0]
    array([ 0.,  0., -1.])
"""

import abc
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from kinema.aloha import Arm
from kinema.controllers.kinematics import Pose
from kinema.sim.experts.plan import EndEffectorPlan, Keyframe, PoseTarget
from kinema.sim.simulation import AlohaSim
from kinema.sim.tasks.base import Task
from kinema.types import Subtask

GRASP_ABOVE_CENTRE_M = 0.012
"""Height of the TCP above the centre of a 0.04 m cube when grasping it from above."""

OPEN = 1.0
CLOSED = 0.0

# Natural downward orientations (columns: gripper x, y, z in world coordinates).
_DOWN: dict[Arm, np.ndarray] = {
    "left": np.column_stack([(0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)]),
    "right": np.column_stack([(0.0, 0.0, -1.0), (0.0, -1.0, 0.0), (-1.0, 0.0, 0.0)]),
}


def yaw_rotation(yaw_rad: float) -> np.ndarray:
    """Rotation about world z by ``yaw_rad``."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def down_rotation(arm: Arm, yaw_rad: float) -> np.ndarray:
    """Orientation of ``arm``'s gripper pointing down, turned by ``yaw_rad`` about world z."""
    return yaw_rotation(yaw_rad) @ _DOWN[arm]


def square_grasp_yaw(object_yaw_rad: float) -> float:
    """The yaw in (−π/4, π/4] that aligns the fingers with a square object's faces."""
    quarter = np.pi / 2
    return float((object_yaw_rad + quarter / 2) % quarter - quarter / 2)


def body_yaw(sim: AlohaSim, body: str) -> float:
    """Yaw of a body about world z, in radians (from its quaternion)."""
    w, x, y, z = sim.body_quaternion(body)
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


@dataclass(frozen=True)
class ExpertTiming:
    """How much an expert varies its demonstrations.

    Attributes:
        duration_scale: durations are multiplied by a factor drawn uniformly from this range.
        approach_height_m: range of the height above an object from which a grasp descends.
        lateral_jitter_m: largest horizontal offset of approach points (not of grasps).
        mistake_rate: chance that the first attempt at a subtask goes wrong on purpose (an
            expert with ``makes_mistakes``: a grasp beside the object, a release off target),
            after which the expert recovers and does the subtask again. Demonstrations of
            recovery, which a flawless expert never shows; the erring motion itself is marked
            (``Keyframe.mistake``) so that it can be left out of training.
    """

    duration_scale: tuple[float, float] = (0.85, 1.15)
    approach_height_m: tuple[float, float] = (0.07, 0.11)
    lateral_jitter_m: float = 0.01
    mistake_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.mistake_rate <= 1.0:
            raise ValueError(
                f"ExpertTiming.mistake_rate must be in [0, 1], got {self.mistake_rate}"
            )


DEFAULT_TIMING = ExpertTiming()


class Expert(abc.ABC):
    """A demonstrator for one task: appends each subtask's keyframes when asked.

    ``makes_mistakes``: whether the expert honours ``ExpertTiming.mistake_rate``.
    """

    makes_mistakes = False

    def __init__(
        self,
        task: Task,
        subtasks: Sequence[Subtask],
        rng: np.random.Generator,
        timing: ExpertTiming = DEFAULT_TIMING,
    ):
        self.task = task
        self.subtasks = list(subtasks)
        self.rng = rng
        self.timing = timing

    def duration(self, nominal_s: float) -> float:
        """``nominal_s`` scaled by a random factor within ``timing.duration_scale``."""
        return nominal_s * float(self.rng.uniform(*self.timing.duration_scale))

    def approach_height(self) -> float:
        """A random height (m) above the object from which to descend onto it."""
        return float(self.rng.uniform(*self.timing.approach_height_m))

    def jitter(self) -> np.ndarray:
        """A random horizontal offset (3,) of at most ``timing.lateral_jitter_m`` per axis."""
        offset = self.rng.uniform(-1.0, 1.0, size=2) * self.timing.lateral_jitter_m
        return np.array([*offset, 0.0])

    def pick_from_above(
        self, arm: Arm, position: np.ndarray, yaw_rad: float, lift_to_m: float
    ) -> list[Keyframe]:
        """Keyframes that grasp an object whose top grasp point is ``position`` and lift it.

        Approach above it with the gripper open while the other arm goes back to rest, descend,
        close, then lift to ``lift_to_m``.
        """
        rotation = down_rotation(arm, yaw_rad)
        above = position + np.array([0.0, 0.0, self.approach_height()])
        other: Arm = "right" if arm == "left" else "left"
        approach = arm_keyframe(
            arm, self.duration(0.9), Pose(above + self.jitter(), rotation), OPEN
        )
        return [
            arm_keyframe(other, approach.duration_s, self.rest[other], None, base=approach),
            arm_keyframe(arm, self.duration(0.5), Pose(above, rotation)),
            arm_keyframe(arm, self.duration(0.45), Pose(position, rotation)),
            arm_keyframe(arm, self.duration(0.35), None, CLOSED),
            arm_keyframe(
                arm, self.duration(0.5), Pose(np.array([*position[:2], lift_to_m]), rotation)
            ),
        ]

    def start(self, plan: EndEffectorPlan) -> None:
        """Begin a demonstration whose plan starts at the grippers' resting poses."""
        self.rest: dict[Arm, Pose] = {"left": plan.initial.left, "right": plan.initial.right}
        self.subtasks_planned = 0
        self._retried: set[int] = set()  # subtasks that went wrong once and were planned again

    def next_subtask(self) -> Subtask | None:
        """The first subtask not planned yet (now counted as planned), or None when all are."""
        if self.subtasks_planned == len(self.subtasks):
            return None
        self.subtasks_planned += 1
        return self.subtasks[self.subtasks_planned - 1]

    def first_attempt_goes_wrong(self) -> bool:
        """Whether to err on purpose in the subtask just taken by ``next_subtask``: drawn with
        ``timing.mistake_rate`` on a subtask's first attempt, never on its retry."""
        index = self.subtasks_planned - 1
        if index in self._retried or self.timing.mistake_rate == 0.0:
            return False
        return bool(self.rng.random() < self.timing.mistake_rate)

    def retry_subtask(self) -> None:
        """Plan the subtask just taken again on the next ``extend``, from the scene then."""
        self.subtasks_planned -= 1
        self._retried.add(self.subtasks_planned)

    def take_all_subtasks(self) -> bool:
        """Count every subtask as planned, for an expert that plans the whole demonstration at
        once; False if they already were."""
        if self.subtasks_planned == len(self.subtasks):
            return False
        self.subtasks_planned = len(self.subtasks)
        return True

    @abc.abstractmethod
    def extend(self, sim: AlohaSim, plan: EndEffectorPlan) -> bool:
        """Append the next part of the demonstration (a subtask, or several that run at once)
        planned from the simulator's state now; False when nothing is left to plan."""


def as_mistake(keyframes: Sequence[Keyframe]) -> list[Keyframe]:
    """``keyframes`` marked as a motion towards a deliberate mistake."""
    return [replace(keyframe, mistake=True) for keyframe in keyframes]


def horizontal_offset(rng: np.random.Generator, distance_m: tuple[float, float]) -> np.ndarray:
    """A horizontal (3,) offset in a uniformly random direction, its length uniform in
    ``distance_m`` (metres)."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return float(rng.uniform(*distance_m)) * np.array([np.cos(angle), np.sin(angle), 0.0])


def arm_keyframe(
    arm: Arm,
    duration_s: float,
    pose: PoseTarget,
    opening: float | None = None,
    base: Keyframe | None = None,
) -> Keyframe:
    """A keyframe that moves only ``arm`` (on top of ``base``'s settings for the other arm)."""
    base = base or Keyframe(duration_s)
    if arm == "left":
        return replace(base, duration_s=duration_s, left=pose, left_opening=opening)
    return replace(base, duration_s=duration_s, right=pose, right_opening=opening)

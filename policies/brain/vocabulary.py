"""The closed vocabulary of plan steps the embedded brain chooses from: every (skill, arm, object,
target) the four simulated tasks' ground-truth plans use, plus END.

TransferCube and Insertion always plan the same steps; SortCubes puts a cube of one of the five
colours into the bin of that colour with the arm on the bin's side (5 × 2 steps); StackBlocks
puts one coloured block on another of a different colour with either arm (5 × 4 × 2 steps).
That is ``len(STEPS) == 55`` steps; index ``END`` (= 55) ends a plan.

Example:
    >>> from kinema.types import Subtask
    >>> pick = Subtask("pick up the peg with the right arm", "pick", "right", "peg", None, 4.0)
    >>> STEPS[step_index(pick)]
    Step(skill='pick', arm='right', object='peg', target=None)
    >>> plan_labels([pick], slots=3) == [step_index(pick), END, END]
    True
"""

from collections.abc import Sequence
from typing import NamedTuple, get_args

import numpy as np

from kinema.sim.tasks.base import COLOR_NAMES
from kinema.skills import ARMS
from kinema.types import Skill, Subtask, SubtaskArm


class Step(NamedTuple):
    """One plan step, as a planner answers it (``schema.plan_schema``'s items)."""

    skill: Skill
    arm: SubtaskArm
    object: str
    target: str | None


def _steps() -> tuple[Step, ...]:
    steps = [
        Step("pick", "right", "red cube", None),
        Step("handover", "left", "red cube", None),
        Step("pick", "right", "peg", None),
        Step("pick", "left", "socket", None),
        Step("insert", "both", "peg", "socket"),
    ]
    for color in COLOR_NAMES:
        for arm in ("left", "right"):
            steps.append(Step("put_in", arm, f"{color} cube", f"{color} bin"))
    for upper in COLOR_NAMES:
        for lower in COLOR_NAMES:
            if upper != lower:
                for arm in ("left", "right"):
                    steps.append(Step("stack_on", arm, f"{upper} block", f"{lower} block"))
    return tuple(steps)


STEPS: tuple[Step, ...] = _steps()
"""Every step a simulated task's plan may hold, in a fixed order (the model's class indices)."""

END = len(STEPS)
"""The class that ends a plan."""

_INDEX = {step: index for index, step in enumerate(STEPS)}


def step_objects(step: Step) -> tuple[str, ...]:
    """The object names a step mentions (object, and target if any)."""
    return (step.object,) if step.target is None else (step.object, step.target)


OBJECT_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(name for step in STEPS for name in step_objects(step))
)
"""Every object name a step mentions (17), in order of first mention."""

OBJECT_KINDS = ("cube", "block", "bin", "peg", "socket")
"""The kinds of object the steps name; a coloured one is "<colour> <kind>"."""


def step_of(subtask: Subtask) -> Step:
    """The (skill, arm, object, target) of ``subtask``."""
    return Step(subtask.skill, subtask.arm, subtask.object, subtask.target)


def step_index(subtask: Subtask) -> int:
    """The class index of ``subtask``'s step.

    Raises:
        KeyError: if the step is not one of ``STEPS``.
    """
    step = step_of(subtask)
    if step not in _INDEX:
        raise KeyError(f"step_index: {step} is not in the embedded brain's vocabulary")
    return _INDEX[step]


def plan_labels(subtasks: Sequence[Subtask], slots: int) -> list[int]:
    """The class of each of ``slots`` plan slots: the subtasks' steps, then END.

    Raises:
        ValueError: if the plan has more than ``slots`` subtasks.
    """
    if len(subtasks) > slots:
        raise ValueError(f"plan_labels: a plan of at most {slots} steps, got {len(subtasks)}")
    return [step_index(s) for s in subtasks] + [END] * (slots - len(subtasks))


def _name_features(name: str | None) -> list[float]:
    """Colour one-hot, then kind one-hot, of an object name (all zeros for None)."""
    color, _, kind = (name or "").rpartition(" ")
    colors = [float(color == c) for c in COLOR_NAMES]
    return colors + [float(name is not None and kind == k) for k in OBJECT_KINDS]


def name_features() -> np.ndarray:
    """(len(OBJECT_NAMES), 10) colour one-hot and kind one-hot of every object name."""
    return np.array([_name_features(name) for name in OBJECT_NAMES], dtype=np.float32)


def step_features() -> np.ndarray:
    """(END + 1, 29) binary attributes of every class: skill one-hot, END, arm one-hot, then
    the object's and the target's colour and kind. Classes that share attributes (a colour, an
    arm) share these columns, so a model scoring attributes learns from all of those classes."""
    rows = []
    for step in (*STEPS, None):
        if step is None:
            skills, end, arms = [0.0] * len(get_args(Skill)), 1.0, [0.0] * len(ARMS)
            names = _name_features(None) * 2
        else:
            skills = [float(step.skill == k) for k in get_args(Skill)]
            end, arms = 0.0, [float(step.arm == a) for a in ARMS]
            names = _name_features(step.object) + _name_features(step.target)
        rows.append([*skills, end, *arms, *names])
    return np.array(rows, dtype=np.float32)


def step_name_indices() -> tuple[np.ndarray, np.ndarray]:
    """(END + 1,) indices into ``OBJECT_NAMES`` of each class's object and of its target; the
    index ``len(OBJECT_NAMES)`` stands for none (END's object, a step without a target)."""
    none = len(OBJECT_NAMES)
    objects = [OBJECT_NAMES.index(s.object) for s in STEPS]
    targets = [none if s.target is None else OBJECT_NAMES.index(s.target) for s in STEPS]
    return np.array([*objects, none]), np.array([*targets, none])

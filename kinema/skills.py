"""The policy's skill vocabulary: how each skill is phrased, which arms may do it, whether it has
a destination, and how long it may take.

This is the one table that both ends of the subtask language read: the simulated tasks build their
ground-truth plans with ``make_subtask`` (so the demonstrations label their frames with these
texts), and the brain's schema, prompts and parser use it, so that a plan the brain writes turns
into exactly the subtask texts the policy was trained on.

Example:
    >>> subtask_text("pick", "right", "red cube", None)
    'pick up the red cube with the right arm'
    >>> subtask_text("put_in", "left", "purple cube", "purple bin")
    'put the purple cube in the purple bin'
    >>> make_subtask("pick", "right", "peg").time_budget_s
    4.0
    >>> named_objects("put the purple cube in the purple bin")
    ('purple cube', 'purple bin')
"""

import re
from dataclasses import dataclass
from functools import cache
from typing import get_args

from kinema.types import Skill, Subtask, SubtaskArm

ARMS: tuple[SubtaskArm, ...] = get_args(SubtaskArm)
"""Every arm value a subtask may name: "left", "right", "both"."""


@dataclass(frozen=True)
class SkillSpec:
    """What the brain must know of one skill.

    Attributes:
        template: the subtask text, with ``{object}``, ``{arm}`` and ``{target}`` fields.
        arms: the arm values the skill allows.
        has_target: whether the skill names a destination (``target``); if not it must be null.
        time_budget_s: how long the subtask may take before it counts as failed, seconds.
        description: one line for the prompt, telling a planner what the skill does.
    """

    template: str
    arms: tuple[SubtaskArm, ...]
    has_target: bool
    time_budget_s: float
    description: str


SKILLS: dict[Skill, SkillSpec] = {
    "pick": SkillSpec(
        "pick up the {object} with the {arm} arm",
        ("left", "right"),
        False,
        4.0,
        "grasp the object with the given arm and lift it off the table; target is null",
    ),
    "handover": SkillSpec(
        "hand the {object} to the {arm} arm",
        ("left", "right"),
        False,
        4.0,
        "pass the held object from the other arm to the given (receiving) arm; target is null",
    ),
    "insert": SkillSpec(
        "insert the {object} into the {target}",
        ("both",),
        True,
        5.0,
        "with both arms, insert the held object into the held target, in mid-air",
    ),
    "put_in": SkillSpec(
        "put the {object} in the {target}",
        ("left", "right"),
        True,
        6.0,
        "with the given arm, put the object into the target container and release it",
    ),
    "stack_on": SkillSpec(
        "put the {object} on the {target}",
        ("left", "right"),
        True,
        6.0,
        "with the given arm, place the object on top of the target and release it",
    ),
}
"""Every skill of ``kinema.types.Skill``, in its order."""

if tuple(SKILLS) != get_args(Skill):
    raise RuntimeError(
        f"SKILLS must list the skills of kinema.types.Skill {get_args(Skill)}, got {tuple(SKILLS)}"
    )


def subtask_text(skill: Skill, arm: SubtaskArm, object: str, target: str | None) -> str:
    """The canonical subtask text the policy was trained on.

    Raises:
        ValueError: if the skill is unknown, the arm is not one the skill allows, or the target
            is missing for a skill with a destination (or given for one without).
    """
    if skill not in SKILLS:
        raise ValueError(f"subtask_text: skill must be one of {list(SKILLS)}, got {skill!r}")
    spec = SKILLS[skill]
    if arm not in spec.arms:
        raise ValueError(
            f"subtask_text: skill {skill!r} is done by arm {' or '.join(spec.arms)}, got {arm!r}"
        )
    if spec.has_target and target is None:
        raise ValueError(f"subtask_text: skill {skill!r} needs a target, got None")
    if not spec.has_target and target is not None:
        raise ValueError(f"subtask_text: skill {skill!r} takes no target, got {target!r}")
    return spec.template.format(object=object, arm=arm, target=target)


def make_subtask(skill: Skill, arm: SubtaskArm, object: str, target: str | None = None) -> Subtask:
    """The subtask with the canonical text and time budget of ``skill`` (checked as in
    ``subtask_text``)."""
    text = subtask_text(skill, arm, object, target)
    return Subtask(text, skill, arm, object, target, SKILLS[skill].time_budget_s)


@cache
def _template_patterns() -> tuple[re.Pattern[str], ...]:
    """Each skill's template as a regular expression with the groups ``object`` and ``target``."""
    fields = {
        "object": "(?P<object>.+?)",
        "target": "(?P<target>.+?)",
        "arm": "(?:" + "|".join(ARMS) + ")",
    }
    patterns = []
    for spec in SKILLS.values():
        parts = re.split(r"\{(\w+)\}", spec.template)  # text, field, text, field, …, text
        regex = "".join(fields[part] if i % 2 else re.escape(part) for i, part in enumerate(parts))
        patterns.append(re.compile(regex))
    return tuple(patterns)


def named_objects(text: str) -> tuple[str, str | None] | None:
    """The object and the target (None for a skill without one) that a canonical subtask text
    (``subtask_text``) names; None when no skill's template words it that way (free text).
    The arm is not always in the text ("put the … in the …"), so the text alone does not
    give back the ``Subtask``."""
    for pattern in _template_patterns():
        match = pattern.fullmatch(text)
        if match is not None:
            values = match.groupdict()
            return values["object"], values.get("target")
    return None

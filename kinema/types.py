"""Small typed values that flow between the layers of the stack (see DESIGN.md)."""

from dataclasses import dataclass
from typing import Literal

Skill = Literal["pick", "handover", "insert", "put_in", "stack_on"]
"""The subtask kinds the policy knows: pick an object up, hand it to the other arm, insert the
held peg into the held socket, put an object in a container, stack an object on another."""

SubtaskArm = Literal["left", "right", "both"]


@dataclass(frozen=True)
class Subtask:
    """One step of a plan, as the brain produces it and the policy is conditioned on.

    Attributes:
        text: the language the policy sees, e.g. "put the red cube in the red bin".
        skill: what kind of step it is (see ``Skill``).
        arm: which arm does it ("both" for steps that need the two arms together).
        object: the object acted on, e.g. "red cube".
        target: where it goes, e.g. "red bin"; None when the skill has no destination.
        time_budget_s: how long the step may take before it counts as failed, in seconds.
    """

    text: str
    skill: Skill
    arm: SubtaskArm
    object: str
    target: str | None
    time_budget_s: float

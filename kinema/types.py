"""Small typed values that flow between the layers of the stack (see DESIGN.md)."""

from dataclasses import dataclass
from typing import Literal

import numpy as np

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


@dataclass(frozen=True)
class JointCommand:
    """What the cerebellum sends the robot for one controller tick (see DESIGN.md).

    Attributes:
        position: (14,) target joint positions in the ALOHA order of ``kinema.aloha``: radians
            for the arm joints, the gripper opening in [0, 1] (0 = closed).
        velocity: (14,) target joint velocities in rad/s (gripper: opening per second), or None
            when the command is position-only.
    """

    position: np.ndarray
    velocity: np.ndarray | None = None


@dataclass(frozen=True)
class ActionChunk:
    """H future actions from the policy (see DESIGN.md).

    Attributes:
        actions: (H, A) actions; A = 14 in the joint space (rad, grippers 0..1) or 20 in the
            end-effector space (per arm position in m, 6-D rotation, gripper 0..1).
        start_time_s: the time the first action is for, in seconds (the observation's time).
        dt_s: seconds between consecutive actions (0.02 at 50 Hz).
        action_space: "joint" or "end_effector".
    """

    actions: np.ndarray
    start_time_s: float
    dt_s: float
    action_space: Literal["joint", "end_effector"]

"""What every brain backend offers: the ``Planner`` protocol, the history a replan reads, and the
error a backend raises when it cannot answer.

Backends: ``HttpPlanner`` (any OpenAI-compatible server), ``TransformersPlanner`` (a VLM from a
local directory), ``OraclePlanner`` (the simulator's ground truth); ``BrainRunner`` drives any of
them beside the control loop.

Example:
    planner: Planner = HttpPlanner(HttpPlannerConfig("http://127.0.0.1:8000/v1", "qwen2.5-vl"))
    subtasks = planner.plan("put every cube in its bin", observation)
    verdict = planner.check(subtasks[0], observation)
    if verdict.status == "failed":
        subtasks = planner.replan(PlanHistory(instruction, ((subtasks[0], verdict),)), observation)
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask


class BrainError(RuntimeError):
    """A planner could not produce a valid answer (after its retries); the message says what
    failed at each attempt."""


@dataclass(frozen=True)
class PlanHistory:
    """What happened so far in an episode, for replanning.

    Attributes:
        instruction: the instruction the episode started from.
        attempts: each subtask tried so far, in order, with the verdict that ended it.
    """

    instruction: str
    attempts: tuple[tuple[Subtask, Verdict], ...] = ()


@runtime_checkable
class Planner(Protocol):
    """A brain: turns an instruction into subtasks and judges them from camera images."""

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        """The subtasks that accomplish ``instruction`` from the scene seen now, in order."""
        ...

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        """Whether ``subtask`` is done, still under way, or failed, seen now."""
        ...

    def replan(self, history: PlanHistory, observation: BrainObservation) -> list[Subtask]:
        """The subtasks that finish the instruction from here, given what was tried."""
        ...

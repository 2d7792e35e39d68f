"""A planner that knows the answer: the simulated task's ground-truth plan and its success
predicates. Running the stack with it instead of a VLM separates the brain's errors from the
policy's: a rollout that fails under the oracle fails in the policy (or below it).

Example:
    env = gymnasium.make("kinema/SortCubes-v0", cameras=["cam_high"])
    observation, info = env.reset(seed=0)
    latest = {"info": info}            # the control loop stores each frame's info here
    planner = OraclePlanner(lambda: latest["info"])
    BrainObservation.from_env(observation, objects=scene_objects(info["subtasks"]))
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kinema.policies.brain.planner import PlanHistory
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask

TaskInfo = Callable[[], Mapping[str, Any]]
"""Gives the environment's latest ``info``: ``subtasks`` (the ground-truth plan) and
``subtasks_done`` (a bool per subtask). Called from the brain's thread, so it should return
what the control loop last stored rather than read the simulator while it steps."""


def scene_objects(subtasks: Sequence[Subtask]) -> tuple[str, ...]:
    """The objects a plan names (objects and targets), each once, in order of appearance; for
    the simulated tasks, every object in the scene."""
    names = [name for s in subtasks for name in (s.object, s.target) if name is not None]
    return tuple(dict.fromkeys(names))


class OraclePlanner:
    """A ``Planner`` answering from the task's ground truth (see the module docstring)."""

    def __init__(self, task_info: TaskInfo):
        self.task_info = task_info

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        """The episode's ground-truth plan (``instruction`` is the episode's own)."""
        return list(self.task_info()["subtasks"])

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        """done when the task's predicate holds for ``subtask``, else not_yet; never failed
        (the runner's time budget decides that)."""
        info = self.task_info()
        if subtask not in info["subtasks"]:
            raise ValueError(
                f"OraclePlanner.check: expected a subtask of the episode's plan "
                f"{[s.text for s in info['subtasks']]}, got {subtask.text!r}"
            )
        done = info["subtasks_done"][info["subtasks"].index(subtask)]
        reason = "the task's predicate holds" if done else "the task's predicate does not hold"
        return Verdict("done" if done else "not_yet", 1.0, reason)

    def replan(self, history: PlanHistory, observation: BrainObservation) -> list[Subtask]:
        """The ground-truth subtasks not done yet, in order (empty when all are)."""
        info = self.task_info()
        states = zip(info["subtasks"], info["subtasks_done"], strict=True)
        return [subtask for subtask, done in states if not done]

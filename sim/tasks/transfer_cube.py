"""TransferCube (the ACT paper's task): the right arm picks up a cube and hands it to the left arm.

Reset distribution: a red cube of 0.04 m edge, upright, at x ∈ [0.0, 0.2] m, y ∈ [-0.1, 0.1] m
(the right arm's half of the table, as in ACT's simulation).

Staged reward (ACT): 1 the right gripper touches the cube; 2 it lifts it off the table; 3 the
left gripper touches the cube; 4 the left gripper touches it and it is off the table (success).

Plan: pick up the cube with the right arm (done at stage ≥ 2), hand it to the left arm (stage 4).

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> env = gym.make("kinema/TransferCube-v0")
    >>> obs, info = env.reset(seed=0)
    >>> info["subtasks"][0].text
    'pick up the red cube with the right arm'
"""

import numpy as np

from kinema.sim.simulation import AlohaSim
from kinema.sim.tasks.base import (
    COLORS,
    Episode,
    Region,
    Task,
    object_pose,
    pose_names,
)
from kinema.sim.tasks.objects import box_object
from kinema.skills import make_subtask
from kinema.types import Subtask

CUBE_HALF_M = 0.02
CUBE_REGION = Region(x_min=0.0, x_max=0.2, y_min=-0.1, y_max=0.1)

_INSTRUCTIONS = (
    "pick up the red cube with the right arm and hand it to the left arm",
    "transfer the red cube from the right gripper to the left gripper",
    "grab the cube with the right arm, then pass it over to the left arm",
)


class TransferCube(Task):
    """Right arm picks the cube, left arm takes it over (see module docstring)."""

    name = "TransferCube"
    max_episode_steps = 400
    environment_state_names = pose_names("cube")
    environment_state_dim = len(environment_state_names)

    def objects_xml(self) -> str:
        return box_object("cube", CUBE_HALF_M, COLORS["red"])

    def bind(self, sim: AlohaSim) -> None:
        self._cube = sim.body_geoms("cube")

    def reset(self, sim: AlohaSim, rng: np.random.Generator) -> Episode:
        x, y = CUBE_REGION.sample(rng)
        sim.set_free_body_pose("cube", np.array([x, y, CUBE_HALF_M]))
        instruction = _INSTRUCTIONS[rng.integers(len(_INSTRUCTIONS))]
        subtasks = (
            make_subtask("pick", "right", "red cube"),
            make_subtask("handover", "left", "red cube"),
        )
        return Episode(instruction, subtasks)

    @property
    def max_stage(self) -> int:
        return 4

    def stage(self, sim: AlohaSim) -> int:
        lifted = not sim.touches_table(self._cube)
        stage = 0
        if sim.gripper_touches("right", self._cube):
            stage = 2 if lifted else 1
        if sim.gripper_touches("left", self._cube):
            stage = 4 if lifted else 3
        return stage

    def subtask_done(self, sim: AlohaSim, subtask: Subtask) -> bool:
        lifted = not sim.touches_table(self._cube)
        if subtask.skill == "pick":
            return lifted and sim.gripper_touches("right", self._cube)
        if subtask.skill == "handover":
            return lifted and sim.gripper_touches("left", self._cube)
        raise ValueError(f"TransferCube has no subtask of skill {subtask.skill!r}")

    def environment_state(self, sim: AlohaSim) -> np.ndarray:
        return object_pose(sim, "cube")

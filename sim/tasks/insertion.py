"""Insertion (the ACT paper's task): the left arm grasps a socket, the right arm a peg, and the
peg is inserted into the socket in mid-air.

Reset distribution (as ACT's simulation): the red peg (0.12 m bar, 0.02 m square section) at
x ∈ [0.1, 0.2] m, the blue socket (0.1 m square tube, inner width 0.028 m, a pin across its
middle) at x ∈ [-0.2, -0.1] m, both with y ∈ [-0.1, 0.1] m and their long axis along x.

Staged reward: 1 both grippers touch their objects; 2 both objects lifted off the table while
touched; 3 the peg touches the socket in the air; 4 the peg touches the pin inside the socket
with neither object on the table (success). ACT counts a pin touch on the table as success too;
we require the insertion to happen in mid-air, as the task says.

Plan: pick the peg with the right arm, pick the socket with the left arm, insert (both arms).
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
from kinema.sim.tasks.objects import peg_object, socket_object
from kinema.skills import make_subtask
from kinema.types import Subtask

PEG_REGION = Region(x_min=0.1, x_max=0.2, y_min=-0.1, y_max=0.1)
SOCKET_REGION = Region(x_min=-0.2, x_max=-0.1, y_min=-0.1, y_max=0.1)
PEG_REST_Z_M = 0.01
SOCKET_REST_Z_M = 0.022

_INSTRUCTIONS = (
    "insert the peg into the socket",
    "pick up the peg and the socket and put the peg into the socket in mid-air",
    "grab the socket with the left arm and the peg with the right arm, then insert the peg",
)


class Insertion(Task):
    """Bimanual peg-in-socket insertion in mid-air (see module docstring)."""

    name = "Insertion"
    max_episode_steps = 400
    environment_state_names = pose_names("peg") + pose_names("socket")
    environment_state_dim = len(environment_state_names)

    def objects_xml(self) -> str:
        return peg_object("peg", COLORS["red"]) + socket_object("socket", COLORS["blue"])

    def bind(self, sim: AlohaSim) -> None:
        self._peg = sim.body_geoms("peg")
        self._socket = sim.body_geoms("socket")
        self._pin = [sim.model.geom("socket/pin").id]

    def reset(self, sim: AlohaSim, rng: np.random.Generator) -> Episode:
        peg_xy = PEG_REGION.sample(rng)
        socket_xy = SOCKET_REGION.sample(rng)
        sim.set_free_body_pose("peg", np.array([*peg_xy, PEG_REST_Z_M]))
        sim.set_free_body_pose("socket", np.array([*socket_xy, SOCKET_REST_Z_M]))
        instruction = _INSTRUCTIONS[rng.integers(len(_INSTRUCTIONS))]
        subtasks = (
            make_subtask("pick", "right", "peg"),
            make_subtask("pick", "left", "socket"),
            make_subtask("insert", "both", "peg", "socket"),
        )
        return Episode(instruction, subtasks)

    @property
    def max_stage(self) -> int:
        return 4

    def _both_lifted(self, sim: AlohaSim) -> bool:
        return not sim.touches_table(self._peg) and not sim.touches_table(self._socket)

    def stage(self, sim: AlohaSim) -> int:
        lifted = self._both_lifted(sim)
        stage = 0
        if sim.gripper_touches("right", self._peg) and sim.gripper_touches("left", self._socket):
            stage = 2 if lifted else 1
        if lifted and sim.touching(self._peg, self._socket):
            stage = 3
        if lifted and sim.touching(self._peg, self._pin):
            stage = 4
        return stage

    def subtask_done(self, sim: AlohaSim, subtask: Subtask) -> bool:
        if subtask.skill == "pick" and subtask.object == "peg":
            return not sim.touches_table(self._peg) and sim.gripper_touches("right", self._peg)
        if subtask.skill == "pick" and subtask.object == "socket":
            return not sim.touches_table(self._socket) and sim.gripper_touches("left", self._socket)
        if subtask.skill == "insert":
            return self._both_lifted(sim) and sim.touching(self._peg, self._pin)
        raise ValueError(f"Insertion has no subtask {subtask.skill!r} of {subtask.object!r}")

    def environment_state(self, sim: AlohaSim) -> np.ndarray:
        return np.concatenate([object_pose(sim, "peg"), object_pose(sim, "socket")])

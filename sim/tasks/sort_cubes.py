"""SortCubes (long horizon): put each coloured cube into the bin of its colour, with either arm.

Reset distribution: 3 or 4 cubes (0.04 m edge) of distinct colours drawn from ``COLORS``, and one
bin per cube colour. The bins stand in a row at the back of the table (y ≈ 0.17 m) in four slots
x ∈ {-0.29, -0.14, 0.14, 0.29} m, chosen at random; each bin belongs to the arm on its side.
Each cube lies in the front band (y ∈ [-0.2, 0.02] m) on the side of its bin, between 0.04 m and
0.3 m from the centre line, with a random yaw of up to ±0.4 rad; cubes are 0.08 m apart or more.

Plan: one ``put_in`` subtask per cube, taken from left to right along x, each done by the arm on
its bin's side. A cube is in its bin when its centre lies within the bin's inner square, below
the rim, and no gripper touches it.

Staged reward: the number of cubes in their bins; success when all are.
"""

import numpy as np

from kinema.aloha import Arm
from kinema.sim.simulation import AlohaSim
from kinema.sim.tasks.base import (
    COLOR_NAMES,
    Episode,
    Region,
    Task,
    sample_separated,
    yaw_quaternion,
)
from kinema.sim.tasks.colored_slots import ColoredSlots
from kinema.sim.tasks.objects import BIN_INNER_HALF_M, BIN_WALL_HEIGHT_M, bin_fixture, box_object
from kinema.skills import make_subtask
from kinema.types import Subtask

CUBE_HALF_M = 0.02
MAX_CUBES = 4
BIN_SLOTS_X_M = (-0.29, -0.14, 0.14, 0.29)
BIN_Y_M = 0.17
BIN_JITTER_M = 0.015
CUBE_REGIONS: dict[Arm, Region] = {
    "left": Region(x_min=-0.3, x_max=-0.04, y_min=-0.2, y_max=0.02),
    "right": Region(x_min=0.04, x_max=0.3, y_min=-0.2, y_max=0.02),
}
MAX_YAW_RAD = 0.4

_INSTRUCTIONS = (
    "sort the cubes into the bins of the same colour",
    "put every cube in the bin that matches its colour",
    "place each coloured cube into its matching bin",
)


class SortCubes(Task):
    """Sort 3–4 coloured cubes into matching bins (see module docstring)."""

    name = "SortCubes"
    max_episode_steps = 1200
    environment_state_names = ColoredSlots.state_names(
        "cube", MAX_CUBES, True
    ) + ColoredSlots.state_names("bin", MAX_CUBES, False)
    environment_state_dim = len(environment_state_names)

    def __init__(self) -> None:
        self.cubes = ColoredSlots("cube", MAX_CUBES, parking_y_m=2.0)
        self.bins = ColoredSlots("bin", MAX_CUBES, parking_y_m=2.5)
        self._subtasks: tuple[Subtask, ...] = ()

    def objects_xml(self) -> str:
        cubes = "".join(box_object(n, CUBE_HALF_M, (1, 1, 1, 1)) for n in self.cubes.names)
        bins = "".join(bin_fixture(n, (1, 1, 1, 1)) for n in self.bins.names)
        return cubes + bins

    def bind(self, sim: AlohaSim) -> None:
        self.cubes.bind(sim)
        self.bins.bind(sim)

    def reset(self, sim: AlohaSim, rng: np.random.Generator) -> Episode:
        count = int(rng.integers(3, MAX_CUBES + 1))
        colors = [str(c) for c in rng.choice(COLOR_NAMES, size=count, replace=False)]
        bin_slots = rng.choice(len(BIN_SLOTS_X_M), size=count, replace=False)
        sides: list[Arm] = ["left" if BIN_SLOTS_X_M[s] < 0 else "right" for s in bin_slots]
        cube_xy = sample_separated(rng, [CUBE_REGIONS[side] for side in sides], 0.08)

        padding: list[str | None] = [None] * (MAX_CUBES - count)
        self.cubes.assign(sim, [*colors, *padding])
        self.bins.assign(sim, [*colors, *padding])
        for i, slot in enumerate(bin_slots):
            jitter = rng.uniform(-BIN_JITTER_M, BIN_JITTER_M, size=2)
            position = np.array([BIN_SLOTS_X_M[slot] + jitter[0], BIN_Y_M + jitter[1], 0.0])
            sim.set_mocap_position(self.bins.names[i], position)
            yaw = rng.uniform(-MAX_YAW_RAD, MAX_YAW_RAD)
            sim.set_free_body_pose(
                self.cubes.names[i], np.array([*cube_xy[i], CUBE_HALF_M]), yaw_quaternion(yaw)
            )

        order = np.argsort([xy[0] for xy in cube_xy])
        self._subtasks = tuple(
            make_subtask("put_in", sides[i], f"{colors[i]} cube", f"{colors[i]} bin") for i in order
        )
        return Episode(_INSTRUCTIONS[rng.integers(len(_INSTRUCTIONS))], self._subtasks)

    @property
    def max_stage(self) -> int:
        return len(self._subtasks)

    def cube_in_bin(self, sim: AlohaSim, color: str) -> bool:
        """Whether the ``color`` cube rests inside the ``color`` bin, released."""
        cube = sim.body_position(self.cubes.slot(color))
        bin_center = sim.body_position(self.bins.slot(color))
        inside = np.all(np.abs(cube[:2] - bin_center[:2]) < BIN_INNER_HALF_M)
        below_rim = cube[2] < BIN_WALL_HEIGHT_M + CUBE_HALF_M
        geoms = self.cubes.geoms(color)
        released = not (sim.gripper_touches("left", geoms) or sim.gripper_touches("right", geoms))
        return bool(inside and below_rim and released)

    def stage(self, sim: AlohaSim) -> int:
        return sum(self.subtask_done(sim, s) for s in self._subtasks)

    def subtask_done(self, sim: AlohaSim, subtask: Subtask) -> bool:
        if subtask.skill != "put_in":
            raise ValueError(f"SortCubes has no subtask of skill {subtask.skill!r}")
        return self.cube_in_bin(sim, subtask.object.removesuffix(" cube"))

    def environment_state(self, sim: AlohaSim) -> np.ndarray:
        return np.concatenate(
            [
                self.cubes.environment_state(sim, with_orientation=True),
                self.bins.environment_state(sim, with_orientation=False),
            ]
        )

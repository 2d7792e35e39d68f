"""StackBlocks (long horizon): build a tower of four blocks in an order given in words.

Reset distribution: four blocks (0.04 m edge) of distinct colours drawn from ``COLORS`` in a
random order, bottom to top. The bottom block lies near the centre of the table (|x| ≤ 0.06 m,
y ∈ [-0.08, 0.06] m), where both arms reach; each other block lies on a random side, 0.14–0.3 m
from the centre line (y ∈ [-0.18, 0.14] m), and is moved by the arm on that side. Blocks have a
random yaw of up to ±0.4 rad and are 0.08 m apart or more.

Plan: three ``stack_on`` subtasks, "put the <upper> block on the <lower> block", bottom up. A block
is on another when its centre is within 0.02 m of the lower block's vertical axis, 0.03–0.05 m
above it, and no gripper touches it.

Staged reward: the height of the correct tower standing on the table, counted from the bottom
(0 … 3); success at 3.
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
from kinema.sim.tasks.objects import box_object
from kinema.skills import make_subtask
from kinema.types import Subtask

BLOCK_HALF_M = 0.02
BLOCK_COUNT = 4
BOTTOM_REGION = Region(x_min=-0.06, x_max=0.06, y_min=-0.08, y_max=0.06)
SIDE_REGIONS: dict[Arm, Region] = {
    "left": Region(x_min=-0.3, x_max=-0.14, y_min=-0.18, y_max=0.14),
    "right": Region(x_min=0.14, x_max=0.3, y_min=-0.18, y_max=0.14),
}
MAX_YAW_RAD = 0.4
ON_TOP_RADIUS_M = 0.02
ON_TOP_HEIGHT_M = (0.03, 0.05)

_INSTRUCTIONS = (
    "stack the blocks with {0} at the bottom, then {1}, then {2}, and {3} on top",
    "build a tower: {0} first, {1} on it, then {2}, then {3}",
    "put the {1} block on the {0} block, the {2} block on the {1} one and the {3} block on top",
)


class StackBlocks(Task):
    """Stack four coloured blocks in a spoken order (see module docstring)."""

    name = "StackBlocks"
    max_episode_steps = 1000
    environment_state_names = ColoredSlots.state_names("block", BLOCK_COUNT, True)
    environment_state_dim = len(environment_state_names)

    def __init__(self) -> None:
        self.blocks = ColoredSlots("block", BLOCK_COUNT)
        self._subtasks: tuple[Subtask, ...] = ()

    def objects_xml(self) -> str:
        return "".join(box_object(n, BLOCK_HALF_M, (1, 1, 1, 1)) for n in self.blocks.names)

    def bind(self, sim: AlohaSim) -> None:
        self.blocks.bind(sim)

    def reset(self, sim: AlohaSim, rng: np.random.Generator) -> Episode:
        order = [str(c) for c in rng.choice(COLOR_NAMES, size=BLOCK_COUNT, replace=False)]
        sides: list[Arm] = [("left", "right")[i] for i in rng.integers(2, size=BLOCK_COUNT - 1)]
        regions = [BOTTOM_REGION] + [SIDE_REGIONS[side] for side in sides]
        positions = sample_separated(rng, regions, 0.08)
        self.blocks.assign(sim, list(order))
        for name, xy in zip(self.blocks.names, positions, strict=True):
            yaw = rng.uniform(-MAX_YAW_RAD, MAX_YAW_RAD)
            sim.set_free_body_pose(name, np.array([*xy, BLOCK_HALF_M]), yaw_quaternion(yaw))

        self._subtasks = tuple(
            make_subtask("stack_on", side, f"{upper} block", f"{lower} block")
            for lower, upper, side in zip(order[:-1], order[1:], sides, strict=True)
        )
        template = _INSTRUCTIONS[rng.integers(len(_INSTRUCTIONS))]
        return Episode(template.format(*order), self._subtasks)

    @property
    def max_stage(self) -> int:
        return BLOCK_COUNT - 1

    def block_on(self, sim: AlohaSim, upper: str, lower: str) -> bool:
        """Whether the ``upper``-coloured block rests on the ``lower``-coloured one, released."""
        top = sim.body_position(self.blocks.slot(upper))
        base = sim.body_position(self.blocks.slot(lower))
        centred = np.linalg.norm(top[:2] - base[:2]) < ON_TOP_RADIUS_M
        height = ON_TOP_HEIGHT_M[0] < top[2] - base[2] < ON_TOP_HEIGHT_M[1]
        geoms = self.blocks.geoms(upper)
        released = not (sim.gripper_touches("left", geoms) or sim.gripper_touches("right", geoms))
        return bool(centred and height and released)

    def stage(self, sim: AlohaSim) -> int:
        bottom = sim.body_position(self.blocks.names[0])
        if bottom[2] > BLOCK_HALF_M + 0.005:  # the tower must stand on the table
            return 0
        stage = 0
        for subtask in self._subtasks:
            if not self.subtask_done(sim, subtask):
                break
            stage += 1
        return stage

    def subtask_done(self, sim: AlohaSim, subtask: Subtask) -> bool:
        if subtask.skill != "stack_on" or subtask.target is None:
            raise ValueError(f"StackBlocks has no subtask of skill {subtask.skill!r}")
        upper = subtask.object.removesuffix(" block")
        return self.block_on(sim, upper, subtask.target.removesuffix(" block"))

    def environment_state(self, sim: AlohaSim) -> np.ndarray:
        return self.blocks.environment_state(sim, with_orientation=True)

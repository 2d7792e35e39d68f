"""Object slots whose colours are drawn per episode, for tasks with randomised object sets.

The model holds a fixed number of bodies (``cube_0`` … ``cube_3``, say); an episode gives each
slot a colour from ``COLORS`` or leaves it unused. Colours are written to the model's geom RGBA
(the renderer reads them every frame, so no recompilation is needed); unused slots are parked on
the floor far from the table, out of every camera's view.

Example:
    >>> cubes = ColoredSlots("cube", count=4)
    >>> cubes.names
    ('cube_0', 'cube_1', 'cube_2', 'cube_3')
"""

import numpy as np

from kinema.sim.simulation import AlohaSim
from kinema.sim.tasks.base import COLORS, POSE_FIELDS, color_one_hot
from kinema.sim.tasks.objects import PARKED_Z_M


class ColoredSlots:
    """``count`` bodies named ``<prefix>_<i>`` whose colour (or absence) is set per episode."""

    def __init__(self, prefix: str, count: int, parking_y_m: float = 2.0):
        self.names = tuple(f"{prefix}_{i}" for i in range(count))
        self._parking_y_m = parking_y_m
        self.colors: tuple[str | None, ...] = (None,) * count

    def bind(self, sim: AlohaSim) -> None:
        """Look up each slot's geoms in the compiled model."""
        self._geoms = [sim.body_geoms(name) for name in self.names]
        self._is_mocap = [sim.model.body(name).mocapid[0] >= 0 for name in self.names]

    def assign(self, sim: AlohaSim, colors: list[str | None]) -> None:
        """Give slot i the colour ``colors[i]`` (None: unused, parked off the table)."""
        if len(colors) != len(self.names):
            raise ValueError(f"ColoredSlots: expected {len(self.names)} colours, got {len(colors)}")
        self.colors = tuple(colors)
        for i, color in enumerate(colors):
            if color is not None:
                sim.model.geom_rgba[self._geoms[i]] = COLORS[color]
                continue
            parked = np.array([1.5 + 0.2 * i, self._parking_y_m, PARKED_Z_M])
            if self._is_mocap[i]:
                sim.set_mocap_position(self.names[i], parked)
            else:
                sim.set_free_body_pose(self.names[i], parked)

    def slot(self, color: str) -> str:
        """Body name of the slot that has ``color`` in this episode."""
        if color not in self.colors:
            raise KeyError(f"no slot has colour {color!r}; colours: {self.colors}")
        return self.names[self.colors.index(color)]

    def geoms(self, color: str) -> list[int]:
        """Geom ids of the slot that has ``color``."""
        return self._geoms[self.names.index(self.slot(color))]

    def used(self) -> list[tuple[str, str]]:
        """(body name, colour) of every slot used in this episode, in slot order."""
        return [(n, c) for n, c in zip(self.names, self.colors, strict=True) if c is not None]

    def environment_state(self, sim: AlohaSim, with_orientation: bool) -> np.ndarray:
        """Per slot: position (3), quaternion (4, if ``with_orientation``), colour one-hot;
        all zeros for unused slots."""
        rows = []
        for name, color in zip(self.names, self.colors, strict=True):
            pose_dim = 7 if with_orientation else 3
            if color is None:
                rows.append(np.zeros(pose_dim + len(COLORS)))
                continue
            pose = [sim.body_position(name)]
            if with_orientation:
                pose.append(sim.body_quaternion(name))
            rows.append(np.concatenate([*pose, color_one_hot(color)]))
        return np.concatenate(rows)

    @staticmethod
    def state_names(prefix: str, count: int, with_orientation: bool) -> tuple[str, ...]:
        """Names of the entries of ``environment_state``: per slot ``<prefix>_<i>.x`` … (and
        ``.qw`` … ``.qz`` with the orientation), then one per colour, ``<prefix>_<i>.red`` …"""
        fields = POSE_FIELDS if with_orientation else POSE_FIELDS[:3]
        return tuple(f"{prefix}_{i}.{field}" for i in range(count) for field in (*fields, *COLORS))

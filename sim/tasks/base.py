"""What every simulated task defines, and helpers they share.

A task owns its objects (an MJCF fragment added to the scene), a seeded reset distribution, a
staged reward, a success predicate, and for every episode the instruction and its ground-truth
plan: a list of ``Subtask`` values with a success predicate each, computed from simulator state.
Those predicates are the ground truth the brain is trained and checked against.

Life cycle, driven by ``kinema.sim.env.AlohaEnv``:
    task = TransferCube()
    sim = AlohaSim(build_model(task.objects_xml()))
    task.bind(sim)                       # once: look up the ids it needs
    episode = task.reset(sim, rng)       # per episode: place objects, draw the instruction
    task.stage(sim), task.is_success(sim), task.subtask_done(sim, episode.subtasks[0])
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, final

import numpy as np

from kinema.sim.simulation import AlohaSim
from kinema.types import Subtask

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.12, 1.0),
    "green": (0.15, 0.65, 0.2, 1.0),
    "blue": (0.15, 0.3, 0.85, 1.0),
    "yellow": (0.95, 0.8, 0.1, 1.0),
    "purple": (0.55, 0.2, 0.7, 1.0),
}
"""The colour names tasks use in language, and their RGBA."""

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

POSE_FIELDS = ("x", "y", "z", "qw", "qx", "qy", "qz")
"""An object pose in ``observation.environment_state``: position (m), quaternion (w, x, y, z)."""


def pose_names(body: str) -> tuple[str, ...]:
    """Names of the entries of ``object_pose(sim, body)``: ``<body>.x`` … ``<body>.qz``."""
    return tuple(f"{body}.{field}" for field in POSE_FIELDS)


@dataclass(frozen=True)
class Episode:
    """What a reset drew: the instruction a person would give, and its ground-truth plan."""

    instruction: str
    subtasks: tuple[Subtask, ...]


class Task(ABC):
    """A simulated manipulation task (see the module docstring for the life cycle)."""

    name: ClassVar[str]
    """Registered as the gymnasium id ``kinema/<name>-v0``."""

    max_episode_steps: ClassVar[int] = 400
    """Default episode length in 50 Hz control steps."""

    environment_state_dim: ClassVar[int]
    """Length of ``observation.environment_state``: ``len(environment_state_names)``."""

    environment_state_names: ClassVar[tuple[str, ...]]
    """A name per entry of ``observation.environment_state``, ``<object>.<field>``: the
    entries of one object are consecutive and share the part before the dot."""

    @abstractmethod
    def objects_xml(self) -> str:
        """MJCF bodies of the task's objects, added to the scene's world body."""

    @abstractmethod
    def bind(self, sim: AlohaSim) -> None:
        """Look up the ids of the task's objects in the compiled model. Called once."""

    @abstractmethod
    def reset(self, sim: AlohaSim, rng: np.random.Generator) -> Episode:
        """Place the objects for a new episode (the arms are already at home) and draw the
        instruction. Deterministic for a given ``rng`` state."""

    @property
    @abstractmethod
    def max_stage(self) -> int:
        """The stage of the staged reward that means success."""

    @abstractmethod
    def stage(self, sim: AlohaSim) -> int:
        """Staged reward now: 0 … ``max_stage``."""

    @abstractmethod
    def subtask_done(self, sim: AlohaSim, subtask: Subtask) -> bool:
        """Whether ``subtask`` (one of this episode's) is accomplished in the current state."""

    @abstractmethod
    def environment_state(self, sim: AlohaSim) -> np.ndarray:
        """Object poses (and identities) as a flat float vector of ``environment_state_dim``."""

    @final
    def is_success(self, sim: AlohaSim) -> bool:
        """Whether the whole instruction is accomplished in the current state: by definition,
        the staged reward is at its top (``stage == max_stage``). Not overridden, so callers
        that already hold the stage may compare it themselves."""
        return self.stage(sim) == self.max_stage


def object_pose(sim: AlohaSim, body: str) -> np.ndarray:
    """Position (m) and quaternion (w, x, y, z) of a body, as one (7,) vector."""
    return np.concatenate([sim.body_position(body), sim.body_quaternion(body)])


def yaw_quaternion(yaw_rad: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation by ``yaw_rad`` about the world z axis."""
    return np.array([np.cos(yaw_rad / 2), 0.0, 0.0, np.sin(yaw_rad / 2)])


def color_one_hot(color: str | None) -> np.ndarray:
    """One-hot code of a colour name over ``COLOR_NAMES``; all zeros for None (no object)."""
    code = np.zeros(len(COLOR_NAMES))
    if color is not None:
        code[COLOR_NAMES.index(color)] = 1.0
    return code


@dataclass(frozen=True)
class Region:
    """An axis-aligned rectangle on the table top: x ∈ [x_min, x_max], y ∈ [y_min, y_max], m."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(self.x_min, self.x_max), rng.uniform(self.y_min, self.y_max)])


def sample_separated(
    rng: np.random.Generator,
    regions: Sequence[Region],
    min_distance_m: float,
    taken: Sequence[np.ndarray] = (),
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Draw one (x, y) point per region so that all points (and ``taken``) are at least
    ``min_distance_m`` apart, by rejection sampling.

    Raises:
        RuntimeError: if no such set is found in ``max_tries`` draws (the regions are too small).
    """
    for _ in range(max_tries):
        points = list(taken)
        for region in regions:
            point = region.sample(rng)
            if all(np.linalg.norm(point - other) >= min_distance_m for other in points):
                points.append(point)
            else:
                break
        else:
            return points[len(taken) :]
    raise RuntimeError(
        f"sample_separated: no layout with {min_distance_m} m spacing in {max_tries} tries"
    )

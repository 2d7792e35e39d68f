"""Demonstrators behind one interface: each produces the servo commands of every 50 Hz frame.

A ``TeleopSource`` starts an episode in an environment and then, frame after frame, returns the
frame's servo commands (``PHYSICS_STEPS_PER_CONTROL`` × 14, one per 2 ms physics step, in the
ALOHA convention); the recorder steps the environment with them and records the last one as the
frame's action. ``realtime`` says whether the frames must be paced at 50 Hz because a person (a
keyboard, leader arms) is in the loop; a scripted expert runs as fast as the machine allows.

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> env = gym.make("kinema/TransferCube-v0").unwrapped
    >>> source = ExpertTeleop("TransferCube")
    >>> observation, info = source.start(env, seed=0)
    >>> source.next_frame(observation).shape
    (10, 14)
"""

import abc

import numpy as np

from kinema.sim.env import AlohaEnv
from kinema.sim.experts import ExpertDriver
from kinema.sim.experts.base import ExpertTiming


class TeleopSource(abc.ABC):
    """A demonstrator: one frame of servo commands at a time (see the module docstring)."""

    realtime: bool = False
    discard_requested: bool = False  # the person asked to throw the episode away (re-record)

    @abc.abstractmethod
    def start(self, env: AlohaEnv, seed: int) -> tuple[dict, dict]:
        """Reset ``env`` for a new episode; return its first observation and info."""

    @abc.abstractmethod
    def next_frame(self, observation: dict) -> np.ndarray:
        """The servo commands of the next frame, given the current observation."""

    @property
    def makes_mistakes(self) -> bool:
        """Whether the demonstrator errs on purpose to show recoveries (``frame_is_mistake``)."""
        return False

    @property
    def frame_is_mistake(self) -> bool:
        """Whether the last frame's commands head for a deliberate mistake."""
        return False

    @property
    @abc.abstractmethod
    def finished(self) -> bool:
        """Whether the demonstrator has nothing more to do in this episode."""

    def close(self) -> None:  # noqa: B027  (an optional hook: most sources hold nothing)
        """Release what the demonstrator holds (devices); called once when recording ends."""


class ExpertTeleop(TeleopSource):
    """The task's scripted expert (``kinema.sim.experts``), as a demonstrator; with
    ``mistake_rate`` > 0 it errs on purpose and recovers (``ExpertTiming.mistake_rate``)."""

    def __init__(self, task: str, mistake_rate: float = 0.0):
        self.driver = ExpertDriver(task, timing=ExpertTiming(mistake_rate=mistake_rate))

    @property
    def makes_mistakes(self) -> bool:
        return self.driver.timing.mistake_rate > 0.0

    @property
    def frame_is_mistake(self) -> bool:
        return self.driver.frame_is_mistake

    def start(self, env: AlohaEnv, seed: int) -> tuple[dict, dict]:
        return self.driver.start(env, seed)

    def next_frame(self, observation: dict) -> np.ndarray:
        return self.driver.next_frame()

    @property
    def finished(self) -> bool:
        return self.driver.finished

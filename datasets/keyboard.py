"""Keyboard teleoperation: a person drives the grippers in simulation, through the cerebellum.

Keys move the selected gripper's target pose; every 2 ms the ``EndEffectorCerebellum`` (WBC with
limits and collision avoidance, MPC for smooth, limit-respecting motion) turns the targets into
servo commands. The motion follows the keys with the cerebellum's look-ahead of 0.4 s.

    1 / 2      select the left / right gripper
    w / s      move it +x / −x  (toward the right arm's side / the left arm's side)
    a / d      move it +y / −y
    r / f      move it up / down
    q / e      turn it about the vertical, +/−
    space      close the gripper if open, open it if closed
    enter      end the episode (keep it)
    backspace  end the episode and discard it (re-record)

Each key press moves the target by ``step_m`` (or turns it by ``step_rad``); holding a key
repeats it at the terminal's rate. Keys come from a ``KeySource``: ``TerminalKeys`` reads a real
terminal without waiting for Enter; tests feed a ``queue.Queue`` of key names.

Example:
    >>> import queue, gymnasium as gym, kinema.sim
    >>> keys = queue.Queue()
    >>> teleop = KeyboardTeleop(QueueKeys(keys))
    >>> observation, info = teleop.start(gym.make("kinema/TransferCube-v0").unwrapped, seed=0)
    >>> keys.put("r")  # the right gripper, up one step
    >>> teleop.next_frame(observation).shape
    (10, 14)
"""

import abc
import os
import queue
import select
import sys
from dataclasses import dataclass

import numpy as np

from kinema.controllers.cerebellum import EndEffectorCerebellum
from kinema.controllers.kinematics import Pose
from kinema.datasets.teleop import TeleopSource
from kinema.sim.env import AlohaEnv
from kinema.sim.experts.base import yaw_rotation
from kinema.sim.simulation import PHYSICS_STEPS_PER_CONTROL

_MOVES = {
    "w": np.array([1.0, 0.0, 0.0]),
    "s": np.array([-1.0, 0.0, 0.0]),
    "a": np.array([0.0, 1.0, 0.0]),
    "d": np.array([0.0, -1.0, 0.0]),
    "r": np.array([0.0, 0.0, 1.0]),
    "f": np.array([0.0, 0.0, -1.0]),
}
_TURNS = {"q": 1.0, "e": -1.0}
_TERMINAL_NAMES = {" ": "space", "\n": "enter", "\r": "enter", "\x7f": "backspace"}


class KeySource(abc.ABC):
    """Where key presses come from."""

    @abc.abstractmethod
    def pending(self) -> list[str]:
        """Every key pressed since the last call, oldest first, without waiting."""


class QueueKeys(KeySource):
    """Keys put into a ``queue.Queue`` by another thread or a test."""

    def __init__(self, keys: queue.Queue):
        self.keys = keys

    def pending(self) -> list[str]:
        pressed = []
        while True:
            try:
                pressed.append(self.keys.get_nowait())
            except queue.Empty:
                return pressed


class TerminalKeys(KeySource):
    """Keys typed into this process's terminal, read without echo or line buffering."""

    def __init__(self) -> None:
        import termios
        import tty

        self._file = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._file)
        tty.setcbreak(self._file)

    def pending(self) -> list[str]:
        pressed = []
        while select.select([self._file], [], [], 0.0)[0]:
            character = os.read(self._file, 1).decode(errors="ignore")
            pressed.append(_TERMINAL_NAMES.get(character, character.lower()))
        return pressed

    def close(self) -> None:
        """Give the terminal back its normal mode."""
        import termios

        termios.tcsetattr(self._file, termios.TCSADRAIN, self._saved)


@dataclass(frozen=True)
class KeyboardConfig:
    """Step sizes of one key press: ``step_m`` metres, ``step_rad`` radians."""

    step_m: float = 0.005
    step_rad: float = 0.05


class KeyboardTeleop(TeleopSource):
    """A person at the keyboard drives the grippers (see the module docstring)."""

    realtime = True

    def __init__(self, keys: KeySource, config: KeyboardConfig = KeyboardConfig()):
        self.keys = keys
        self.config = config
        self.discard_requested = False
        self._finished = False

    def start(self, env: AlohaEnv, seed: int) -> tuple[dict, dict]:
        observation, info = env.reset(seed=seed)
        self.cerebellum = EndEffectorCerebellum(env.sim.model)
        self.cerebellum.reset(env.sim.joint_state())
        self.targets = list(self.cerebellum.lookahead_poses())
        state = env.sim.joint_state()
        self.openings = [float(state[6]), float(state[13])]
        self.selected = 1  # the right arm, which starts most tasks
        self.discard_requested = False
        self._finished = False
        self.keys.pending()  # forget keys pressed between episodes
        return observation, info

    def _apply(self, key: str) -> None:
        target = self.targets[self.selected]
        if key in ("1", "2"):
            self.selected = int(key) - 1
        elif key in _MOVES:
            position = target.position + self.config.step_m * _MOVES[key]
            self.targets[self.selected] = Pose(position, target.rotation)
        elif key in _TURNS:
            turn = yaw_rotation(self.config.step_rad * _TURNS[key])
            self.targets[self.selected] = Pose(target.position, turn @ target.rotation)
        elif key == "space":
            self.openings[self.selected] = 0.0 if self.openings[self.selected] > 0.5 else 1.0
        elif key in ("enter", "backspace"):
            self._finished = True
            self.discard_requested = key == "backspace"

    def next_frame(self, observation: dict) -> np.ndarray:
        for key in self.keys.pending():
            self._apply(key)
        commands = np.empty((PHYSICS_STEPS_PER_CONTROL, 14))
        for tick in range(PHYSICS_STEPS_PER_CONTROL):
            left, right = self.targets
            commands[tick] = self.cerebellum.tick(left, right, tuple(self.openings)).position
        return commands

    @property
    def finished(self) -> bool:
        return self._finished

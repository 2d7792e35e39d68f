"""The one interface of every robot the stack drives, simulated or real (see DESIGN.md).

A ``Robot`` is connected, observed, commanded and disconnected; everything above ``hardware/``
sees only this interface and the robot's ``RobotDescription``:

    with make_robot(...) as robot:            # connect() … disconnect()
        observation = robot.observe()         # RobotObservation
        robot.command(JointCommand(target))   # one command per 1 / command_hz seconds

Values follow ``kinema.aloha``: 14 entries, the left arm first; per arm six joint angles in
radians and the gripper opening in [0, 1] (0 = closed). Images are uint8 H×W×3 by ALOHA camera
name; times are seconds.

Besides the four calls of DESIGN.md a robot can ``hold()`` (keep its present position: what
the safety layer's watchdog and emergency stop do) and ``disable_torque()`` (the arms go limp;
commands are refused until the next ``connect()``).
"""

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import numpy as np

from kinema.aloha import ACTION_HIGH, ACTION_LOW, MAX_VELOCITY, STATE_NAMES
from kinema.types import JointCommand

STATE_KEY = "observation.state"
IMAGE_KEY_PREFIX = "observation.images."


class RobotError(RuntimeError):
    """A robot that cannot be reached, or that stopped safely; the message says why."""


@dataclass(frozen=True)
class RobotDescription:
    """What a robot is: its joints, their limits, its cameras and its rates.

    Attributes:
        name: e.g. "sim" or "aloha".
        joint_names: the 14 entries of a state or command, in order.
        lower, upper: (14,) position limits (rad; grippers 0..1).
        max_velocity: (14,) largest speed of each entry (rad/s; grippers opening per second).
        cameras: camera names; each observation holds one image per camera.
        image_size: (height, width) of every image, pixels.
        command_hz: how many commands per second the robot takes (each is held until the next).
    """

    name: str
    joint_names: tuple[str, ...] = tuple(STATE_NAMES)
    lower: np.ndarray = field(default_factory=lambda: ACTION_LOW.astype(np.float64))
    upper: np.ndarray = field(default_factory=lambda: ACTION_HIGH.astype(np.float64))
    max_velocity: np.ndarray = field(default_factory=lambda: MAX_VELOCITY.copy())
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (480, 640)
    command_hz: float = 50.0

    @property
    def command_period_s(self) -> float:
        """Seconds each command is held."""
        return 1.0 / self.command_hz


@dataclass(frozen=True)
class RobotObservation:
    """One reading of the robot.

    Attributes:
        position: (14,) joint angles (rad) and gripper openings (0..1).
        velocity: (14,) rad/s and openings per second, or None when the robot does not measure
            it.
        images: camera name → uint8 (H, W, 3) image.
        timestamp_s: when the reading was taken (the robot's clock), seconds.
        extra: other named readings, e.g. ``observation.environment_state`` (object poses) from
            a simulation or a tracker.
    """

    position: np.ndarray
    velocity: np.ndarray | None
    images: dict[str, np.ndarray]
    timestamp_s: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def as_policy_input(self) -> dict[str, np.ndarray]:
        """The observation under LeRobot's names, as policies and datasets use them."""
        values = {STATE_KEY: self.position.astype(np.float32), **self.extra}
        for camera, image in self.images.items():
            values[IMAGE_KEY_PREFIX + camera] = image
        return values


class Robot(abc.ABC):
    """A bimanual ALOHA-style robot (module docstring). Use as a context manager: the robot
    is connected on entry and disconnected (torque off) on exit, also after an exception."""

    @property
    @abc.abstractmethod
    def description(self) -> RobotDescription:
        """What the robot is (joints, limits, cameras, rates)."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Reach the robot and make it ready to take commands (torque on, holding still)."""

    @abc.abstractmethod
    def observe(self) -> RobotObservation:
        """Read positions (and what else the robot senses) and the cameras."""

    def read_position(self) -> np.ndarray:
        """(14,) present positions only: what the safety layer reads before each command.
        Robots override it when reading the cameras costs time."""
        return self.observe().position

    @abc.abstractmethod
    def command(self, command: JointCommand) -> None:
        """Send target positions (``command.position``, (14,)), held until the next command."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Keep the present position (the targets become the positions just read)."""

    @abc.abstractmethod
    def disable_torque(self) -> None:
        """Make the arms limp; harmless when already off or not connected."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Torque off and release the robot; harmless when not connected."""

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.disconnect()

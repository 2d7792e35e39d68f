"""The simulated robot: the MuJoCo scene of ``kinema.sim`` behind the ``Robot`` interface.

``SimRobot`` wraps an ``AlohaEnv`` (one task, its objects, the cameras asked for). Simulated time
advances only when the robot is driven: each ``command()`` holds its 14 targets as the position
servos' setpoints for ``k = 500 / command_hz`` physics steps of 2 ms, i.e. one command period of
``k · 0.002`` seconds (``k = 1`` at the default 500 Hz, ``k = 10`` at ALOHA's 50 Hz); ``hold()``
commands the present position for one period the same way.

``disable_torque()`` makes the arms limp as a real arm with its servos off: the position servos
of the arm joints and fingers exert no force (their stiffness ``gainprm[0] = kp`` and bias
``biasprm[1:3] = (−kp, −kv)`` are zeroed, so force = kp · (target − q) − kv · q̇ becomes 0) and
the servos' gravity compensation of the links they move is switched off, so the arms fall under
gravity. ``connect()`` restores both and resets the scene with the configured seed.

Example:
    >>> import numpy as np
    >>> from kinema.types import JointCommand
    >>> with SimRobot(SimRobotConfig(cameras=("cam_high",))) as robot:
    ...     observation = robot.observe()
    ...     target = observation.position + np.r_[0.0, 0.2, np.zeros(12)]  # left shoulder +0.2
    ...     for _ in range(500):  # one second at 500 Hz
    ...         robot.command(JointCommand(target))
    ...     error_rad = abs(robot.observe().position[1] - target[1])
    ...     info = robot.task_info()
    >>> bool(error_rad < 0.01), info["stage"]
    (True, 0)
"""

import logging
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from kinema.aloha import ACTION_HIGH, ACTION_LOW, ARM_JOINTS, ARMS
from kinema.hardware.robot import Robot, RobotDescription, RobotError, RobotObservation
from kinema.sim.env import ENV_STATE_KEY, IMAGE_KEY_PREFIX, STATE_KEY, AlohaEnv
from kinema.sim.model import FINGER_JOINTS, arm_prefix
from kinema.sim.simulation import CONTROL_DT_S, PHYSICS_STEPS_PER_CONTROL, validate_action
from kinema.types import JointCommand

logger = logging.getLogger(__name__)

PHYSICS_HZ = PHYSICS_STEPS_PER_CONTROL / CONTROL_DT_S
"""Physics steps per second of the simulation (500: one step of 2 ms)."""


@dataclass(frozen=True)
class SimRobotConfig:
    """What the simulated robot simulates.

    Attributes:
        task: the task whose scene is loaded (``TransferCube``, ``Insertion``, ``SortCubes``,
            ``StackBlocks``).
        seed: the seed of every ``connect()``'s reset (object placement).
        cameras: camera names rendered into each observation; none is cheapest.
        image_size: (height, width) of every image, pixels.
        command_hz: commands per second; must divide the 500 Hz physics rate (500, 250, 100,
            50, …) so that each command is held for a whole number of 2 ms physics steps.
    """

    task: str = "TransferCube"
    seed: int = 0
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (96, 128)
    command_hz: float = 500.0

    def __post_init__(self) -> None:
        steps = PHYSICS_HZ / self.command_hz if self.command_hz > 0 else 0.0
        if steps < 1 or abs(steps - round(steps)) > 1e-9:
            raise ValueError(
                f"SimRobotConfig: command_hz must divide the {PHYSICS_HZ:g} Hz physics rate "
                f"(500, 250, 100, 50, …). Got {self.command_hz}."
            )

    @property
    def physics_steps_per_command(self) -> int:
        """2 ms physics steps each command is held: 500 / command_hz."""
        return round(PHYSICS_HZ / self.command_hz)


class _ServoPower:
    """Switches the arm and finger servos of one model on and off (module docstring).

    Remembers the servos' gains, biases and the gravity compensation of the bodies they move as
    the model had them when this object was made; ``off()`` zeroes them, ``on()`` restores them.
    """

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        names = [arm_prefix(arm) + joint for arm in ARMS for joint in (*ARM_JOINTS, *FINGER_JOINTS)]
        self.actuators = np.array([model.actuator(name).id for name in names])
        self.bodies = model.jnt_bodyid[model.actuator_trnid[self.actuators, 0]]
        self.gain = model.actuator_gainprm[self.actuators, 0].copy()
        self.bias = model.actuator_biasprm[self.actuators, 1:3].copy()
        self.gravcomp = model.body_gravcomp[self.bodies].copy()

    def on(self) -> None:
        self.model.actuator_gainprm[self.actuators, 0] = self.gain
        self.model.actuator_biasprm[self.actuators, 1:3] = self.bias
        self.model.body_gravcomp[self.bodies] = self.gravcomp

    def off(self) -> None:
        self.model.actuator_gainprm[self.actuators, 0] = 0.0
        self.model.actuator_biasprm[self.actuators, 1:3] = 0.0
        self.model.body_gravcomp[self.bodies] = 0.0


class SimRobot(Robot):
    """A bimanual ALOHA-style robot simulated in MuJoCo (see the module docstring).

    Observations hold what the environment's observation holds: the joint state (clipped to
    the joint limits), the joint velocities, one image per configured camera, the simulation
    time and the objects' poses under ``observation.environment_state``.
    """

    def __init__(self, config: SimRobotConfig = SimRobotConfig()):
        self.config = config
        self._description = RobotDescription(
            name="sim",
            cameras=config.cameras,
            image_size=config.image_size,
            command_hz=config.command_hz,
        )
        self._env: AlohaEnv | None = None
        self._servos: _ServoPower | None = None
        self._torque_on = False

    @property
    def description(self) -> RobotDescription:
        return self._description

    def connect(self) -> None:
        """Build the scene on first use, switch the servos on and reset with the config's seed."""
        if self._env is None:
            self._env = AlohaEnv(
                self.config.task, cameras=self.config.cameras, image_size=self.config.image_size
            )
            self._servos = _ServoPower(self._env.sim.model)
        assert self._servos is not None
        self._servos.on()
        self._env.reset(seed=self.config.seed)
        self._torque_on = True
        logger.info("sim robot connected: %s, seed %d", self.config.task, self.config.seed)

    def observe(self) -> RobotObservation:
        env = self._connected_env()
        observation = env.observation()
        images = {
            key.removeprefix(IMAGE_KEY_PREFIX): value
            for key, value in observation.items()
            if key.startswith(IMAGE_KEY_PREFIX)
        }
        return RobotObservation(
            position=observation[STATE_KEY].astype(np.float64),
            velocity=env.sim.joint_velocity(),
            images=images,
            timestamp_s=float(env.sim.data.time),
            extra={ENV_STATE_KEY: observation[ENV_STATE_KEY]},
        )

    def read_position(self) -> np.ndarray:
        """The joint state (14,), without rendering the cameras."""
        return np.clip(self._connected_env().sim.joint_state(), ACTION_LOW, ACTION_HIGH)

    def command(self, command: JointCommand) -> None:
        """Hold ``command.position`` for one command period (500 / command_hz physics steps).

        Raises:
            RobotError: when not connected or while the torque is off.
            ActionError: if the position is not a finite (14,) vector.
        """
        env = self._connected_env()
        if not self._torque_on:
            raise RobotError("SimRobot: torque is off; call connect() to switch it back on")
        self._drive(env, validate_action(command.position))

    def hold(self) -> None:
        """Command the present position for one command period (also while the torque is off:
        then the servos exert no force and simulated time passes with the arms limp)."""
        env = self._connected_env()
        self._drive(env, env.sim.joint_state())

    def disable_torque(self) -> None:
        if self._env is None or not self._torque_on:
            return
        assert self._servos is not None
        self._servos.off()
        self._torque_on = False
        logger.info("sim robot: torque off")

    def disconnect(self) -> None:
        if self._env is None:
            return
        self.disable_torque()
        self._env.close()
        self._env = self._servos = None
        logger.info("sim robot disconnected")

    def task_info(self) -> dict[str, Any]:
        """The task's state now, as the environment's ``info`` holds it: ``is_success``,
        ``stage``, ``max_stage``, ``instruction``, ``subtasks`` and ``subtasks_done``."""
        return self._connected_env().task_info()

    def _drive(self, env: AlohaEnv, target: np.ndarray) -> None:
        rows = np.tile(target, (self.config.physics_steps_per_command, 1))
        env.sim.step_ticks(rows)

    def _connected_env(self) -> AlohaEnv:
        if self._env is None:
            raise RobotError("SimRobot is not connected: call connect() first")
        return self._env

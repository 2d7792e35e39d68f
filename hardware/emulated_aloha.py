"""Hardware in the loop without the hardware: ALOHA follower arms on ptys, moved by MuJoCo.

``EmulatedAloha`` owns a simulated task (``AlohaEnv``) and two ``DynamixelEmulator``s, the left
and right follower buses with the servos of ``FOLLOWER_MOTORS``. The real driver stack,
``AlohaRobot`` → lerobot's ``DynamixelMotorsBus`` → dynamixel_sdk → pyserial, opens the ptys as
it opens the USB adapters of real arms, so everything from the robot down to the bytes on the
wire is the code that drives real arms.

Servos and physics meet through the robot's calibration (``kinema.hardware.calibration``), the
inverse of what ``AlohaRobot`` does:

- Goal_Position of each primary servo → its actuator target: angle = direction · (goal − zero) ·
  2π / 4096 rad; gripper opening = (goal − closed) / (open − closed), clipped to [0, 1]. Goals of
  shadows are ignored. Turning the torque off does not make an arm limp: its targets stay at the
  last goals.
- Present_Position ← the simulated joints: ticks = round(zero + direction · angle · 4096 / 2π),
  the gripper's linear between its stops. A shadow reads its primary's ticks when the reverse
  bit (bit 0) of its Drive_Mode is set, as ``AlohaRobot.connect`` sets it, else those ticks
  mirrored about the centre, 2 · 2048 − ticks.

Time runs in lockstep with the driver: the physics advances by ``physics_steps_per_command`` steps
of 2 ms (10 by default: one 50 Hz command) each time both arms have received a Goal_Position
SYNC_WRITE since the last advance; then the present positions are updated. An emulator that has
received its arm's sync write serves nothing more until the other arm's has come and the physics
has advanced (or ``lockstep_timeout_s`` has passed), so a read that follows a command sees the
advanced physics on both arms. Without commands, time stands still.

The world's own accessors (``joint_state()``, ``sim_time_s``, …) see what the emulators have
served so far: a sync write is not answered, so ``command()`` returns while its packets may still
be in the ptys. A read through the robot after it (``observe()``) is served after it, on both arms.

Example:
    with EmulatedAloha(task="TransferCube", seed=3, cameras=["cam_high"]) as world:
        robot = AlohaRobot(
            AlohaConfig(ports=world.ports, calibration=world.calibration),
            cameras=world.cameras(),
            extra_sensors={"observation.environment_state": world.environment_state},
        )
        with robot:
            robot.command(JointCommand(HOME_POSE))     # 20 ms of simulated time
        world.task_info()["is_success"]
"""

import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np

from kinema.aloha import ARMS, arm_slice
from kinema.hardware.aloha_robot import FOLLOWER_MOTORS, PRIMARIES, primary_of
from kinema.hardware.calibration import CENTRE_TICKS, ArmCalibration, RobotCalibration
from kinema.hardware.dynamixel.control_table import BY_NAME, MODEL_NUMBERS
from kinema.hardware.dynamixel.emulator import DynamixelEmulator, EmulatorConfig
from kinema.hardware.dynamixel.protocol import Instruction
from kinema.sim.env import ENV_STATE_KEY, AlohaEnv
from kinema.sim.rendering import CameraRenderer
from kinema.sim.simulation import PHYSICS_STEPS_PER_CONTROL
from kinema.sim.tasks import Task

logger = logging.getLogger(__name__)

_GOAL_ADDRESS = BY_NAME["Goal_Position"].address
_DRIVE_MODE = BY_NAME["Drive_Mode"]
_REVERSE_BIT = 0x01

NO_FAULTS = EmulatorConfig()
"""Emulators that answer every packet, at once."""


class EmulatedAloha:
    """A simulated task behind two emulated follower buses (see the module docstring).

    Args:
        task: the task to simulate (``TransferCube``, ``Insertion``, … or a ``Task``).
        seed: the episode's seed (object placement).
        calibration: ticks ↔ radians of both arms; the robot driving the world must use the
            same. Default: every joint zero at the servo's centre, counting forward.
        cameras: simulated cameras that ``cameras()`` offers, e.g. ``["cam_high"]``.
        image_size: (height, width) of their images, pixels.
        physics_steps_per_command: 2 ms physics steps per advance (one command of both arms).
        motors: name → (servo ID, lerobot model) of each arm's servos.
        emulator_config: the fault injection both emulators start with.
        lockstep_timeout_s: the longest an emulator waits (s) for the other arm's command before
            it serves its next packet anyway.

    Use as a context manager, or ``start()`` / ``stop()``; a world starts once.
    """

    def __init__(
        self,
        task: str | Task = "TransferCube",
        seed: int | None = 0,
        *,
        calibration: RobotCalibration | None = None,
        cameras: Sequence[str] = (),
        image_size: tuple[int, int] = (480, 640),
        physics_steps_per_command: int = PHYSICS_STEPS_PER_CONTROL,
        motors: Mapping[str, tuple[int, str]] = FOLLOWER_MOTORS,
        emulator_config: EmulatorConfig = NO_FAULTS,
        lockstep_timeout_s: float = 0.05,
    ):
        if physics_steps_per_command < 1 or lockstep_timeout_s < 0:
            raise ValueError(
                "EmulatedAloha: physics_steps_per_command must be >= 1 and lockstep_timeout_s "
                f">= 0 s, got {physics_steps_per_command} and {lockstep_timeout_s}"
            )
        self.calibration = calibration or RobotCalibration(
            ArmCalibration.centred(), ArmCalibration.centred()
        )
        self.physics_steps_per_command = physics_steps_per_command
        self.lockstep_timeout_s = lockstep_timeout_s
        self._motors = dict(motors)
        self._names = {servo_id: name for name, (servo_id, _) in motors.items()}
        self._arms = (self.calibration.left, self.calibration.right)
        servos = {servo_id: MODEL_NUMBERS[model] for servo_id, model in motors.values()}
        self.left = DynamixelEmulator(servos, emulator_config)
        self.right = DynamixelEmulator(servos, emulator_config)

        self._world = threading.Condition()  # guards everything below
        self._env = AlohaEnv(task)
        self._env.reset(seed=seed)
        self._renderer = (
            CameraRenderer(self._env.sim.model, cameras, image_size) if cameras else None
        )
        self._camera_names = tuple(cameras)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self._goals = self._present_ticks()  # per arm, primaries' Goal_Position ticks
        self._commanded = [False, False]  # per arm: a goal sync write since the last advance
        self._version = 0  # counts changes of the physics state (advances and resets)
        self._images: dict[str, np.ndarray] = {}
        self._images_at: tuple[int, float] = (-1, 0.0)  # (version, time.monotonic()) rendered

    # Lifecycle

    @property
    def emulators(self) -> tuple[DynamixelEmulator, DynamixelEmulator]:
        """The (left, right) bus emulators, e.g. for ``update_config(dead_servos={4})``."""
        return self.left, self.right

    @property
    def ports(self) -> tuple[str, str]:
        """The (left, right) serial ports to give ``AlohaConfig``."""
        return self.left.port, self.right.port

    def start(self) -> Self:
        """Start serving both buses, their present positions those of the simulation."""
        for arm, emulator in enumerate(self.emulators):
            emulator.on_goal(functools.partial(self._on_goal, arm))
            emulator.on_instruction(functools.partial(self._on_instruction, arm))
            emulator.start()
        with self._world:
            self._publish_present()
        logger.debug("emulated ALOHA serving %s", self.ports)
        return self

    def stop(self) -> None:
        """Stop both emulators and release the simulation; harmless when stopped."""
        for emulator in self.emulators:
            emulator.stop()
        with self._world:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
            self._env.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # What tests and benchmarks look at

    def reset(self, seed: int | None = None) -> None:
        """A new episode (``AlohaEnv.reset``): arms home, objects placed by ``seed``, targets
        and present positions those of the new state."""
        with self._world:
            self._env.reset(seed=seed)
            self._goals = self._present_ticks()
            self._commanded = [False, False]
            self._changed()

    def joint_state(self) -> np.ndarray:
        """The simulated (14,) joint state: rad, gripper openings 0..1, left arm first."""
        with self._world:
            return self._env.sim.joint_state()

    def environment_state(self) -> np.ndarray:
        """The task's object poses and identities, float32, as the environment's
        ``observation.environment_state``."""
        with self._world:
            return self._env.observation()[ENV_STATE_KEY]

    def task_info(self) -> dict[str, Any]:
        """The environment's info for the present state: ``is_success``, ``stage``,
        ``max_stage``, ``subtasks``, ``subtasks_done``, …"""
        with self._world:
            return self._env.task_info()

    @property
    def sim_time_s(self) -> float:
        """Simulated seconds since the last reset."""
        with self._world:
            return float(self._env.sim.data.time)

    def cameras(self) -> dict[str, "SimulatedCamera"]:
        """One ``SimulatedCamera`` per camera the world was made with, by name."""
        return {name: SimulatedCamera(name, self) for name in self._camera_names}

    def render(self, camera: str) -> tuple[np.ndarray, float]:
        """The (H, W, 3) uint8 image of ``camera`` for the present state (read-only; all
        cameras are rendered once per physics state) and the ``time.monotonic()`` second it
        was rendered at."""
        with self._world:
            if self._renderer is None:
                raise RuntimeError(f"EmulatedAloha.render: no camera {camera!r} (or stopped)")
            version, rendered_s = self._images_at
            if version != self._version:
                self._images = self._renderer.render(self._env.sim.data)
                for image in self._images.values():
                    image.flags.writeable = False
                rendered_s = time.monotonic()
                self._images_at = (self._version, rendered_s)
            return self._images[camera], rendered_s

    # The emulators' callbacks (on their threads)

    def _on_goal(self, arm: int, servo_id: int, ticks: int) -> None:
        """A Goal_Position written to ``servo_id`` of ``arm``: the new target of a primary."""
        name = self._names.get(servo_id)
        if name in PRIMARIES:
            with self._world:
                self._goals[arm][name] = ticks

    def _on_instruction(
        self, arm: int, instruction: Instruction | int, ids: tuple[int, ...], address: int | None
    ) -> None:
        """Lockstep: after a Goal_Position sync write to ``arm``, advance the physics if the other
        arm has had one too, else wait for it (at most ``lockstep_timeout_s``)."""
        if instruction != Instruction.SYNC_WRITE or address != _GOAL_ADDRESS:
            return
        with self._world:
            self._commanded[arm] = True
            if all(self._commanded):
                self._advance()
                return
            version = self._version
            if not self._world.wait_for(lambda: self._version != version, self.lockstep_timeout_s):
                logger.debug("%s arm: no command of the other arm in time", ARMS[arm])

    # Physics ↔ servo ticks (the caller holds the lock)

    def _advance(self) -> None:
        """Step the physics towards the goals, then publish the new present positions."""
        targets = np.concatenate(
            [arm.to_joint_values(goals) for arm, goals in zip(self._arms, self._goals, strict=True)]
        )
        self._env.sim.step(targets, physics_steps=self.physics_steps_per_command)
        self._commanded = [False, False]
        self._changed()

    def _changed(self) -> None:
        """The physics state changed: publish it, wake waiting emulators."""
        self._version += 1
        self._publish_present()
        self._world.notify_all()

    def _present_ticks(self) -> list[dict[str, int]]:
        """Per arm, the ticks of the primaries for the simulated joint state."""
        state = self._env.sim.joint_state()
        return [
            arm.to_ticks(state[arm_slice(side)]) for side, arm in zip(ARMS, self._arms, strict=True)
        ]

    def _publish_present(self) -> None:
        """Present_Position of every servo from the simulation (module docstring)."""
        for emulator, ticks in zip(self.emulators, self._present_ticks(), strict=True):
            for name, (servo_id, _) in self._motors.items():
                value = ticks[primary_of(name)]
                if name not in PRIMARIES and not self._reversed(emulator, servo_id):
                    value = 2 * CENTRE_TICKS - value
                emulator.set_present_position(servo_id, value)

    @staticmethod
    def _reversed(emulator: DynamixelEmulator, servo_id: int) -> bool:
        """Whether the reverse bit of the servo's Drive_Mode is set."""
        drive_mode = emulator.register(servo_id, _DRIVE_MODE.address, _DRIVE_MODE.size)
        return bool(drive_mode & _REVERSE_BIT)


class SimulatedCamera:
    """A camera of an ``EmulatedAloha``: ``read()`` renders the simulation's present state
    (the ``Camera`` protocol of ``kinema.hardware.cameras``)."""

    def __init__(self, name: str, world: EmulatedAloha):
        self._name = name
        self._world = world

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> tuple[int, int]:
        return self._world.image_size

    def connect(self) -> None:
        """Nothing to open: the world renders on demand."""

    def read(self) -> tuple[np.ndarray, float]:
        """The present state seen by this camera: (H, W, 3) uint8 RGB, read-only, and the
        ``time.monotonic()`` second it was rendered at."""
        return self._world.render(self._name)

    def disconnect(self) -> None:
        """Nothing to release: the world owns the renderer."""

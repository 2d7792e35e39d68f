"""ALOHA's follower arms (ViperX-300 class), driven over the Dynamixel bus through lerobot.

Each follower arm is one Dynamixel bus (its own U2D2 serial port, 1 Mbps) with nine servos
(``FOLLOWER_MOTORS``): waist 1, shoulder 2 (shadow 3), elbow 4 (shadow 5), forearm roll 6, wrist
angle 7 (XM540-W270), wrist rotate 8, gripper 9 (XM430-W350). The bus is lerobot's
``DynamixelMotorsBus``, used with raw ticks (``normalize=False``): ``kinema.hardware.calibration``
turns ticks into the stack's radians and gripper openings.

``connect()`` writes the servo modes with torque off (servos refuse EEPROM writes under torque):

- arm joints: Operating_Mode 3, position control;
- grippers: Operating_Mode 5, current-based position control (the gripper holds an object with
  bounded current rather than stalling against it at full torque);
- shadows: Drive_Mode bit 0 = 1, reversed. A shadow is mounted facing its primary on the same
  joint, so it turns the other way round in its own frame; with its direction reversed the same
  goal ticks turn it with its primary, and ``command()`` writes each shadow its primary's ticks.

then sets every goal to the present position and turns the torque on: the arms hold still.

Each tick, ``observe()`` is one SYNC_READ of Present_Position from the seven primaries of each arm
(``calibration.to_joint_values``: angle = direction · (ticks − zero) · 2π / 4096 rad, the
gripper opening linear between its stops), and ``command()`` one SYNC_WRITE of Goal_Position to
the nine servos of each arm (``calibration.to_ticks``, the inverse, rounded to whole ticks).
Velocities are not read (``velocity`` is None): Present_Velocity would cost a second sync read
per arm and tick.

Faults: a sync read that fails after ``read_retries`` retries is read servo by servo (one status
packet lost among seven should not cost the tick). A read or write that still fails is a safe
stop: every servo of that bus is pinged to find the silent ones, torque is turned off on every
servo of both arms that answers, and ``RobotError`` says which arm, port and servos, e.g.
"right arm (/dev/ttyDXL_follower_right): servo 4 'elbow' stopped answering; safe stop".
Commands are refused until the next ``connect()``.

Example:
    config = AlohaConfig(ports=("/dev/ttyDXL_follower_left", "/dev/ttyDXL_follower_right"),
                         calibration=Path("calibration.json"))
    with AlohaRobot(config, cameras={"cam_high": OpenCVCamera("cam_high", 0)}) as robot:
        observation = robot.observe()               # (14,) rad / openings, images
        robot.command(JointCommand(observation.position))
"""

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn

import numpy as np
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DriveMode, DynamixelMotorsBus, OperatingMode

from kinema.aloha import ACTION_DIM, ARMS, arm_slice
from kinema.hardware.calibration import ARM_JOINTS, GRIPPER, RobotCalibration
from kinema.hardware.cameras import Camera
from kinema.hardware.robot import Robot, RobotDescription, RobotError, RobotObservation
from kinema.types import JointCommand

logger = logging.getLogger(__name__)

FOLLOWER_MOTORS: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "waist": (1, "xm540-w270"),
        "shoulder": (2, "xm540-w270"),
        "shoulder_shadow": (3, "xm540-w270"),
        "elbow": (4, "xm540-w270"),
        "elbow_shadow": (5, "xm540-w270"),
        "forearm_roll": (6, "xm540-w270"),
        "wrist_angle": (7, "xm540-w270"),
        "wrist_rotate": (8, "xm430-w350"),
        "gripper": (9, "xm430-w350"),
    }
)
"""Name → (servo ID, lerobot model) of a ViperX-300-class follower arm."""

PRIMARIES: tuple[str, ...] = (*ARM_JOINTS, GRIPPER)
"""The servos that are read, in the stack's order: six joints and the gripper."""

SHADOW_SUFFIX = "_shadow"

# What a failing bus raises: lerobot's ConnectionError (no answer) and RuntimeError (an error
# in the status packet), pyserial's SerialException (an OSError) when the port itself fails.
_BUS_ERRORS = (OSError, RuntimeError)


def primary_of(motor: str) -> str:
    """The servo whose position ``motor`` takes: itself, or the primary of a shadow."""
    return motor.removesuffix(SHADOW_SUFFIX)


@dataclass(frozen=True)
class AlohaConfig:
    """How to reach and drive the two follower arms.

    Attributes:
        ports: serial ports of the (left, right) follower buses.
        calibration: ticks ↔ radians of both arms, or the path of a calibration JSON file
            (``RobotCalibration.save``); a path is loaded on construction.
        motors: name → (servo ID, lerobot model) of each arm's servos; must hold the six joints
            of ``ARM_JOINTS`` and ``gripper``, and may hold shadows ``<joint>_shadow``.
        command_hz: commands per second the robot is driven at (its description says so).
        read_retries: retries of a failing read or write before it counts as a fault.
        connect_attempts: tries at opening each bus (a status packet lost on a busy USB link
            is not a missing servo).
        serial_read_wait_s: the longest one read of a serial port waits for the bytes asked
            for. dynamixel_sdk polls its port with 0 s, a busy loop that holds a CPU core (and
            Python's GIL) for each whole transaction; waiting in the read frees both, and delays
            noticing a lost status packet by at most this.
    """

    ports: tuple[str, str]
    calibration: RobotCalibration | Path
    motors: Mapping[str, tuple[int, str]] = FOLLOWER_MOTORS
    command_hz: float = 50.0
    read_retries: int = 2
    connect_attempts: int = 3
    serial_read_wait_s: float = 0.001

    def __post_init__(self) -> None:
        if len(self.ports) != 2:
            raise ValueError(f"AlohaConfig.ports must be (left, right), got {self.ports}")
        missing = [name for name in PRIMARIES if name not in self.motors]
        orphans = [
            name
            for name in self.motors
            if name.endswith(SHADOW_SUFFIX) and primary_of(name) not in PRIMARIES
        ]
        if missing or orphans:
            raise ValueError(
                f"AlohaConfig.motors must hold {list(PRIMARIES)} and shadows of them; "
                f"missing {missing}, shadows of unknown joints {orphans}"
            )
        if not (
            self.command_hz > 0
            and self.read_retries >= 0
            and self.connect_attempts >= 1
            and self.serial_read_wait_s >= 0
        ):
            raise ValueError(
                "AlohaConfig: command_hz must be > 0, read_retries >= 0, connect_attempts >= 1, "
                f"serial_read_wait_s >= 0; got {self.command_hz}, {self.read_retries}, "
                f"{self.connect_attempts}, {self.serial_read_wait_s}"
            )
        if not isinstance(self.calibration, RobotCalibration):
            object.__setattr__(self, "calibration", RobotCalibration.load(Path(self.calibration)))


class AlohaRobot(Robot):
    """The two ALOHA follower arms, their cameras and other sensors (module docstring).

    Args:
        config: ports, calibration, servos and retries.
        cameras: camera name → camera; each observation holds one image per camera. All
            cameras must deliver the same image size.
        extra_sensors: observation key → a function returning its reading now, e.g.
            ``{"observation.environment_state": tracker.poses}``.
    """

    def __init__(
        self,
        config: AlohaConfig,
        cameras: Mapping[str, Camera] = MappingProxyType({}),
        extra_sensors: Mapping[str, Callable[[], np.ndarray]] = MappingProxyType({}),
    ):
        sizes = {name: tuple(camera.size) for name, camera in cameras.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"AlohaRobot: all cameras must have one image size, got {sizes}")
        self.config = config
        self.calibration: RobotCalibration = config.calibration  # loaded by AlohaConfig
        self.cameras = dict(cameras)
        self.extra_sensors = dict(extra_sensors)
        self._description = RobotDescription(
            name="aloha",
            cameras=tuple(self.cameras),
            image_size=next(iter(sizes.values()), (480, 640)),
            command_hz=config.command_hz,
        )
        motors = {
            name: Motor(servo_id, model, MotorNormMode.DEGREES)
            for name, (servo_id, model) in config.motors.items()
        }
        self.buses = tuple(DynamixelMotorsBus(port, dict(motors)) for port in config.ports)
        self._arms = (self.calibration.left, self.calibration.right)
        self._connected = False
        self._torque_on = False

    @property
    def description(self) -> RobotDescription:
        return self._description

    # Connecting

    def connect(self) -> None:
        """Open both buses, set the servo modes (module docstring), hold the present position,
        turn the torque on and connect the cameras. Raises ``RobotError`` (and leaves
        everything released) if an arm or a camera cannot be reached."""
        try:
            for arm in range(len(ARMS)):
                self._open(arm)
                self._set_modes(arm)
            self._connected = True
            self.hold()
            for arm, bus in enumerate(self.buses):
                self._on_bus(arm, bus.enable_torque, num_retry=self.config.read_retries)
            self._torque_on = True
            for name, camera in self.cameras.items():
                self._on_camera(name, camera.connect)
        except RobotError:
            self.disconnect()
            raise
        logger.info("ALOHA followers connected on %s", ", ".join(self.config.ports))

    def _open(self, arm: int) -> None:
        """Open the bus of ``arm`` (lerobot pings every servo and checks its model), trying
        ``connect_attempts`` times; then make its reads wait ``serial_read_wait_s``."""
        bus = self.buses[arm]
        attempt = 1
        while not bus.is_connected:
            try:
                bus.connect()
            except _BUS_ERRORS as error:
                if bus.is_connected:
                    bus.disconnect(disable_torque=False)
                if attempt == self.config.connect_attempts:
                    raise RobotError(f"{self._where(arm)}: {error}") from error
                logger.info("%s: connect attempt %d failed: %s", self._where(arm), attempt, error)
                attempt += 1
        bus.port_handler.ser.timeout = self.config.serial_read_wait_s  # the pyserial port

    def _set_modes(self, arm: int) -> None:
        """Torque off, then the operating and drive modes of every servo (EEPROM)."""
        bus, retries = self.buses[arm], self.config.read_retries
        self._on_bus(arm, bus.disable_torque, num_retry=retries)
        for name in self.config.motors:
            mode = OperatingMode.CURRENT_POSITION if name == GRIPPER else OperatingMode.POSITION
            drive = DriveMode.INVERTED if name.endswith(SHADOW_SUFFIX) else DriveMode.NON_INVERTED
            self._on_bus(arm, bus.write, "Operating_Mode", name, mode.value, num_retry=retries)
            self._on_bus(arm, bus.write, "Drive_Mode", name, drive.value, num_retry=retries)

    # The tick: observe and command

    def observe(self) -> RobotObservation:
        """Positions of both arms (one sync read each), then the cameras and extra sensors."""
        position = self.read_position()
        timestamp_s = time.monotonic()
        images = {name: self._read_camera(name, camera) for name, camera in self.cameras.items()}
        extra = {key: np.asarray(read()) for key, read in self.extra_sensors.items()}
        return RobotObservation(position, None, images, timestamp_s, extra)

    def read_position(self) -> np.ndarray:
        """(14,) positions of both arms (one sync read each), without cameras or sensors."""
        self._require_connection("read_position")
        return np.concatenate(
            [arm.to_joint_values(self._read_ticks(index)) for index, arm in enumerate(self._arms)]
        )

    def command(self, command: JointCommand) -> None:
        """Write ``command.position`` (14,) as Goal_Position ticks, one sync write per arm.

        Raises:
            RobotError: a position that is not a finite (14,) vector (nothing is written), a
                robot that is not connected or whose torque is off, or a bus fault (safe stop).
        """
        position = np.asarray(command.position, dtype=np.float64)
        if position.shape != (ACTION_DIM,):
            raise RobotError(
                f"AlohaRobot.command: position must have shape ({ACTION_DIM},), per arm six "
                f"angles in rad and the gripper opening. Got {position.shape}."
            )
        bad = np.flatnonzero(~np.isfinite(position))
        if bad.size:
            raise RobotError(
                f"AlohaRobot.command: position has non-finite values at {bad.tolist()}; "
                "nothing written"
            )
        self._require_connection("command")
        if not self._torque_on:
            raise RobotError("AlohaRobot.command: torque is off; connect() again to command")
        for arm, (side, calibration) in enumerate(zip(ARMS, self._arms, strict=True)):
            ticks = calibration.to_ticks(position[arm_slice(side)])
            self._write_goals(arm, ticks)

    def hold(self) -> None:
        """Goal = present position on every servo (a shadow takes its primary's)."""
        self._require_connection("hold")
        present = [self._read_ticks(arm) for arm in range(len(ARMS))]
        for arm, ticks in enumerate(present):
            self._write_goals(arm, ticks)

    def _read_ticks(self, arm: int) -> dict[str, int]:
        """Present_Position (ticks) of the primaries of ``arm``; a safe stop if they cannot be
        read even servo by servo."""
        bus, retries = self.buses[arm], self.config.read_retries
        try:
            ticks = bus.sync_read("Present_Position", PRIMARIES, normalize=False, num_retry=retries)
        except _BUS_ERRORS as sync_error:
            logger.debug("%s: sync read failed (%s); servo by servo", self._where(arm), sync_error)
            try:
                ticks = {
                    name: bus.read("Present_Position", name, normalize=False, num_retry=retries)
                    for name in PRIMARIES
                }
            except _BUS_ERRORS as error:
                self._safe_stop(arm, error)
        return {name: int(value) for name, value in ticks.items()}

    def _write_goals(self, arm: int, ticks: Mapping[str, int]) -> None:
        """One sync write of Goal_Position: ``ticks`` of each primary, and to each shadow its
        primary's."""
        goals = {name: ticks[primary_of(name)] for name in self.config.motors}
        bus = self.buses[arm]
        self._on_bus(
            arm,
            bus.sync_write,
            "Goal_Position",
            goals,
            normalize=False,
            num_retry=self.config.read_retries,
        )

    def _read_camera(self, name: str, camera: Camera) -> np.ndarray:
        """The latest image of ``camera``, checked to be uint8 (H, W, 3) of its size."""
        image, _ = self._on_camera(name, camera.read)
        expected = (*camera.size, 3)
        if image.dtype != np.uint8 or image.shape != expected:
            raise RobotError(
                f"camera {name!r}: images must be uint8 {expected}, got {image.dtype} {image.shape}"
            )
        return image

    # Stopping

    def disable_torque(self) -> None:
        """Torque off on every servo that answers (errors are logged, not raised)."""
        for arm, bus in enumerate(self.buses):
            if not bus.is_connected:
                continue
            for name in self.config.motors:
                try:
                    bus.disable_torque(name, num_retry=self.config.read_retries)
                except _BUS_ERRORS as error:
                    logger.warning("%s: torque off failed on %r: %s", self._where(arm), name, error)
        self._torque_on = False

    def disconnect(self) -> None:
        """Torque off, then close the buses and disconnect the cameras."""
        self.disable_torque()
        for bus in self.buses:
            if bus.is_connected:
                bus.disconnect(disable_torque=False)
        for name, camera in self.cameras.items():
            try:
                camera.disconnect()
            except Exception as error:  # a camera must not keep the arms from being released
                logger.warning("camera %r: disconnect failed: %s", name, error)
        self._connected = False

    def _safe_stop(self, arm: int, error: BaseException) -> NoReturn:
        """Find the silent servos of ``arm`` by pinging each, turn torque off everywhere it is
        still heard, and raise ``RobotError`` saying what happened."""
        bus = self.buses[arm]
        silent = [
            f"{servo_id} {name!r}"
            for name, (servo_id, _) in self.config.motors.items()
            if not self._answers(bus, name)
        ]
        self.disable_torque()
        if silent:
            servos = "servo " + silent[0] if len(silent) == 1 else "servos " + ", ".join(silent)
            message = f"{self._where(arm)}: {servos} stopped answering; safe stop"
        else:
            message = f"{self._where(arm)}: every servo answers a ping, but {error}; safe stop"
        logger.error(message)
        raise RobotError(message) from error

    def _answers(self, bus: DynamixelMotorsBus, name: str) -> bool:
        """Whether servo ``name`` answers a ping (with the configured retries)."""
        try:
            return bus.ping(name, num_retry=self.config.read_retries) is not None
        except _BUS_ERRORS:
            return False

    # Helpers

    def _on_bus[T](
        self, arm: int, operation: Callable[..., T], *args: object, **kwargs: object
    ) -> T:
        """``operation(*args, **kwargs)`` on the bus of ``arm``; a bus error is a safe stop."""
        try:
            return operation(*args, **kwargs)
        except _BUS_ERRORS as error:
            self._safe_stop(arm, error)

    @staticmethod
    def _on_camera[T](name: str, operation: Callable[[], T]) -> T:
        """``operation()`` of camera ``name``; any failure becomes a ``RobotError`` naming it
        (a ``RobotError`` of the camera's own already does)."""
        try:
            return operation()
        except RobotError:
            raise
        except Exception as error:
            raise RobotError(f"camera {name!r}: {error}") from error

    def _require_connection(self, call: str) -> None:
        if not self._connected:
            raise RobotError(f"AlohaRobot.{call}: not connected; call connect() first")

    def _where(self, arm: int) -> str:
        """e.g. "right arm (/dev/ttyDXL_follower_right)"."""
        return f"{ARMS[arm]} arm ({self.config.ports[arm]})"

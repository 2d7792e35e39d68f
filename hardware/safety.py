"""The safety layer every command passes on its way to a robot (see DESIGN.md).

``SafetyFilter`` turns a requested target t into a safe one, given the present position q and
the previous safe target p (all (n,) vectors: rad, grippers 0..1), per entry i:

    reject   t that is not a finite (n,) vector          → output p (hold the last safe target)
    1.  a = clip(t, lower, upper)                           position limits
    2.  b = clip(a, p − Δ, p + Δ),  Δ = max_velocity · command_period · velocity_margin
    3.  c = clip(b, q − d, q + d),  d = max_target_offset   (lerobot's ``max_relative_target``)
    4.  output = clip(c, lower, upper)

so the output is always within the limits; it is within d of q unless q lies more than d
outside the limits (limits come first); and it is within Δ of p whenever p is within d of q
(in one dimension, clipping a point of one interval to another interval that meets it lands in
both). When the arm was pushed or fell more than d away from p, the target steps toward the
arm rather than pulling it back hard.

``SafeRobot`` wraps any ``Robot``: each ``command()`` reads the present position
(``read_position()``), filters and forwards; a watchdog thread holds the robot when commands
stop coming and switches the torque off when they stay away; ``emergency_stop()`` latches
until the next ``connect()``. Each intervention is logged and kept in ``SafeRobot.interventions``.

Example:
    >>> from kinema.hardware.sim_robot import SimRobot
    >>> from kinema.types import JointCommand
    >>> with SafeRobot(SimRobot(), SafetyConfig(watchdog_timeout_s=0.05)) as robot:
    ...     robot.command(JointCommand(robot.observe().position + 1.0))  # clipped, not refused
    ...     sorted({i.kind for i in robot.interventions})
    ['position_limit', 'velocity_limit']
"""

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Self

import numpy as np

from kinema.hardware.robot import Robot, RobotDescription, RobotError, RobotObservation
from kinema.types import JointCommand

if TYPE_CHECKING:
    from kinema.datasets.keyboard import KeySource

logger = logging.getLogger(__name__)

InterventionKind = Literal[
    "rejected",
    "position_limit",
    "velocity_limit",
    "target_offset",
    "watchdog_hold",
    "torque_off",
    "emergency_stop",
    "fault",
]

ARM_JOINT_TARGET_OFFSET = 0.35
"""Default largest |target − present position| of an arm joint, rad."""
GRIPPER_TARGET_OFFSET = 1.0
"""Default largest |target − present opening| of a gripper (the whole 0..1 stroke)."""


class CommandRejected(ValueError):
    """A command that is not a finite vector of the robot's shape (``hold_on_reject=False``)."""


@dataclass(frozen=True)
class Intervention:
    """One act of the safety layer.

    Attributes:
        time_s: when it happened, ``time.monotonic()`` seconds.
        kind: what was done (``InterventionKind``).
        detail: which entries, by joint name, and by how much; or why.
    """

    time_s: float
    kind: InterventionKind
    detail: str


@dataclass(frozen=True)
class SafetyConfig:
    """The bounds and timeouts of the safety layer (module docstring).

    Attributes:
        max_target_offset: largest |target − present position| per entry (rad; grippers in
            openings); None means ``ARM_JOINT_TARGET_OFFSET`` for arm joints and
            ``GRIPPER_TARGET_OFFSET`` for entries whose name ends in "gripper".
        velocity_margin: the step from the previous safe target is at most
            max_velocity · command_period · velocity_margin per command.
        watchdog_timeout_s: hold when no command has come for this long, seconds.
        torque_off_after_s: switch the torque off when commands have not resumed this long
            after the watchdog's hold, seconds.
        hold_on_reject: a malformed command holds the previous safe target (True) or raises
            ``CommandRejected`` and sends nothing (False).
        interventions_kept: how many of the latest interventions ``SafeRobot`` keeps.
    """

    max_target_offset: tuple[float, ...] | None = None
    velocity_margin: float = 1.0
    watchdog_timeout_s: float = 0.05
    torque_off_after_s: float = 2.0
    hold_on_reject: bool = True
    interventions_kept: int = 10_000

    def __post_init__(self) -> None:
        if self.max_target_offset is not None and min(self.max_target_offset) <= 0:
            raise ValueError(
                f"SafetyConfig: max_target_offset entries must be positive. "
                f"Got {self.max_target_offset}."
            )
        for name in ("velocity_margin", "watchdog_timeout_s", "torque_off_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"SafetyConfig: {name} must be positive. Got {getattr(self, name)}."
                )
        if self.interventions_kept < 1:
            raise ValueError(
                "SafetyConfig: interventions_kept must be at least 1. "
                f"Got {self.interventions_kept}."
            )

    def target_offsets(self, joint_names: tuple[str, ...]) -> np.ndarray:
        """(n,) largest |target − present| for the entries named ``joint_names``."""
        if self.max_target_offset is None:
            return np.array(
                [
                    GRIPPER_TARGET_OFFSET if name.endswith("gripper") else ARM_JOINT_TARGET_OFFSET
                    for name in joint_names
                ]
            )
        if len(self.max_target_offset) != len(joint_names):
            raise ValueError(
                f"SafetyConfig: max_target_offset must have one entry per joint "
                f"({len(joint_names)}). Got {len(self.max_target_offset)}."
            )
        return np.array(self.max_target_offset, dtype=np.float64)


def _changes(names: tuple[str, ...], before: np.ndarray, after: np.ndarray) -> str:
    """'name before → after, …' for the entries that differ."""
    changed = np.flatnonzero(before != after)
    return ", ".join(f"{names[i]} {before[i]:.4g} → {after[i]:.4g}" for i in changed)


class SafetyFilter:
    """Makes targets safe for one robot (the math is in the module docstring).

    Args:
        description: the robot's joint names, limits, velocities and command rate.
        config: the bounds.

    Attributes:
        lower, upper: (n,) position limits.
        max_step: (n,) Δ, the largest change from the previous safe target per command.
        max_offset: (n,) d, the largest distance from the present position.
    """

    def __init__(self, description: RobotDescription, config: SafetyConfig = SafetyConfig()):
        self.names = description.joint_names
        self.lower = np.asarray(description.lower, dtype=np.float64)
        self.upper = np.asarray(description.upper, dtype=np.float64)
        self.max_step = (
            np.asarray(description.max_velocity, dtype=np.float64)
            * description.command_period_s
            * config.velocity_margin
        )
        self.max_offset = config.target_offsets(self.names)

    def filter(
        self, target: object, present: np.ndarray, previous_target: np.ndarray
    ) -> tuple[np.ndarray, list[Intervention]]:
        """The safe target for ``target`` and what was changed to get it.

        Args:
            target: the requested (n,) positions; anything else is rejected.
            present: (n,) the position just read.
            previous_target: (n,) the last safe target sent (within the limits).

        Returns:
            (safe target (n,), interventions), interventions empty when ``target`` was safe.
        """
        reason = self.malformed(target)
        if reason is not None:
            return previous_target.copy(), [Intervention(time.monotonic(), "rejected", reason)]
        requested = np.asarray(target, dtype=np.float64)
        within_limits = np.clip(requested, self.lower, self.upper)
        within_step = np.clip(
            within_limits, previous_target - self.max_step, previous_target + self.max_step
        )
        near_present = np.clip(within_step, present - self.max_offset, present + self.max_offset)
        safe = np.clip(near_present, self.lower, self.upper)

        interventions = []
        for kind, before, after in (
            ("position_limit", requested, within_limits),
            ("velocity_limit", within_limits, within_step),
            ("target_offset", within_step, near_present),
            ("position_limit", near_present, safe),
        ):
            if np.any(before != after):
                detail = _changes(self.names, before, after)
                interventions.append(Intervention(time.monotonic(), kind, detail))
        return safe, interventions

    def clip_to_limits(self, position: np.ndarray) -> np.ndarray:
        """``position`` clipped to [lower, upper]."""
        return np.clip(np.asarray(position, dtype=np.float64), self.lower, self.upper)

    def malformed(self, values: object, what: str = "target") -> str | None:
        """Why ``values`` is not a finite (n,) vector, or None when it is."""
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            return f"{what} is not numeric: {error}"
        if array.shape != self.lower.shape:
            return f"{what} must have shape {self.lower.shape}. Got {array.shape}."
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            return f"non-finite {what} at " + ", ".join(
                f"{self.names[i]} ({array[i]})" for i in bad
            )
        return None


class SafeRobot(Robot):
    """Any ``Robot`` behind the safety layer; a ``Robot`` with the same description.

    - ``command()`` reads the present position, filters the target (``SafetyFilter``) and sends
      the safe one (positions only: a velocity feed-forward is not forwarded).
    - A watchdog thread (started by ``connect()``) holds the robot once when no command has come
      for ``watchdog_timeout_s`` and switches the torque off when none has come
      ``torque_off_after_s`` after that hold. A later command resumes from the held position
      unless the torque is off.
    - ``emergency_stop(reason)``, from any thread: hold, torque off, and every later
      ``command()`` raises ``RobotError`` naming the reason until ``connect()`` is called.
    - An exception from the inner robot's ``observe()``, ``command()`` or ``hold()``, or a
      position reading that is not a finite vector, switches the torque off (errors while doing
      so are ignored), is recorded as a "fault" and raised; commands are refused until
      ``connect()``.

    Calls into the inner robot are serialised by a lock shared by the caller and the watchdog.
    """

    def __init__(self, robot: Robot, config: SafetyConfig = SafetyConfig()):
        self.robot = robot
        self.config = config
        self.safety_filter = SafetyFilter(robot.description, config)
        self._robot_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._recent: deque[Intervention] = deque(maxlen=config.interventions_kept)
        self._counts: Counter[str] = Counter()
        self._previous_target: np.ndarray | None = None
        self._last_command_s = time.monotonic()
        self._held_since_s: float | None = None
        self._halted: str | None = None
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()

    @property
    def description(self) -> RobotDescription:
        return self.robot.description

    @property
    def interventions(self) -> list[Intervention]:
        """The latest interventions (at most ``config.interventions_kept``), oldest first."""
        with self._record_lock:
            return list(self._recent)

    def intervention_counts(self) -> dict[str, int]:
        """How many interventions of each kind happened since this object was made."""
        with self._record_lock:
            return dict(self._counts)

    def connect(self) -> None:
        """Connect the inner robot, clear any emergency stop and start the watchdog."""
        self._stop_watchdog()
        with self._robot_lock:
            self.robot.connect()
            self._previous_target = self.safety_filter.clip_to_limits(self._read_present())
            self._halted = None
            self._held_since_s = None
            self._last_command_s = time.monotonic()
        self._watchdog_stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="safety-watchdog", daemon=True)
        self._watchdog.start()

    def observe(self) -> RobotObservation:
        with self._robot_lock:
            return self._call(self.robot.observe)

    def command(self, command: JointCommand) -> None:
        """Filter ``command.position`` and send the safe target.

        Raises:
            RobotError: when not connected, after an emergency stop or while the torque is off.
            CommandRejected: for a malformed command when ``hold_on_reject`` is False.
        """
        with self._robot_lock:
            if self._halted is not None:
                raise RobotError(f"SafeRobot: {self._halted}; call connect() to resume")
            if self._previous_target is None:
                raise RobotError("SafeRobot is not connected: call connect() first")
            safe, interventions = self.safety_filter.filter(
                command.position, self._read_present(), self._previous_target
            )
            for intervention in interventions:
                self._record(intervention)
            rejected = bool(interventions) and interventions[0].kind == "rejected"
            if rejected and not self.config.hold_on_reject:
                raise CommandRejected(interventions[0].detail)
            self._call(self.robot.command, JointCommand(safe))
            self._previous_target = safe
            self._last_command_s = time.monotonic()
            self._held_since_s = None

    def hold(self) -> None:
        with self._robot_lock:
            self._hold()
            self._last_command_s = time.monotonic()

    def disable_torque(self) -> None:
        """Torque off; commands are refused until ``connect()``."""
        with self._robot_lock:
            self._halted = self._halted or "torque disabled"
            self.robot.disable_torque()

    def disconnect(self) -> None:
        """Stop the watchdog and disconnect the inner robot (which switches its torque off)."""
        self._stop_watchdog()
        with self._robot_lock:
            self.robot.disconnect()
            self._previous_target = None

    def emergency_stop(self, reason: str) -> None:
        """Hold, switch the torque off and refuse commands until ``connect()``; any thread."""
        self._halted = f"emergency stop ({reason})"  # set first: refuse commands at once
        with self._robot_lock:
            self._record(Intervention(time.monotonic(), "emergency_stop", reason))
            try:
                self.robot.hold()
            except Exception:
                logger.exception("emergency stop: hold failed; switching the torque off")
            self._torque_off_quietly()

    def _hold(self) -> None:
        """Hold the inner robot and make the present position the previous safe target."""
        present = self._read_present()
        self._call(self.robot.hold)
        self._previous_target = self.safety_filter.clip_to_limits(present)

    def _read_present(self) -> np.ndarray:
        """The inner robot's position; a reading that is not a finite (n,) vector is a fault."""
        position = self._call(self.robot.read_position)
        reason = self.safety_filter.malformed(position, what="position reading")
        if reason is not None:
            error = RobotError(f"SafeRobot: unusable {reason}")
            self._fault("observe", error)
            raise error
        return np.asarray(position, dtype=np.float64)

    def _call[T](self, method: Callable[..., T], *args: object) -> T:
        """Call a method of the inner robot; on an exception: a fault (below), re-raised."""
        try:
            return method(*args)
        except Exception as error:
            self._fault(method.__name__, error)
            raise

    def _fault(self, method: str, error: Exception) -> None:
        """Torque off, refuse commands until ``connect()`` and record a "fault"."""
        self._torque_off_quietly()
        self._halted = f"fault ({method} raised {error!r})"
        self._record(Intervention(time.monotonic(), "fault", self._halted))

    def _torque_off_quietly(self) -> None:
        try:
            self.robot.disable_torque()
        except Exception:
            logger.exception("disable_torque failed")

    def _record(self, intervention: Intervention) -> None:
        logger.warning("safety %s: %s", intervention.kind, intervention.detail)
        with self._record_lock:
            self._recent.append(intervention)
            self._counts[intervention.kind] += 1

    def _watch(self) -> None:
        """The watchdog thread: sleep until the next deadline, then hold or switch torque off."""
        while True:
            with self._robot_lock:
                now = time.monotonic()
                deadline = self._act_on_deadline(now)
            # While holding, wake at least every watchdog_timeout_s: a command may have come.
            wait_s = min(deadline - now, self.config.watchdog_timeout_s)
            if self._watchdog_stop.wait(max(wait_s, 1e-3)):
                return

    def _act_on_deadline(self, now: float) -> float:
        """Hold or switch the torque off if their time has come; the time of the next check."""
        config = self.config
        if self._halted is not None:
            return now + config.watchdog_timeout_s
        if self._held_since_s is None:
            idle_s = now - self._last_command_s
            if idle_s < config.watchdog_timeout_s:
                return self._last_command_s + config.watchdog_timeout_s
            self._record(Intervention(now, "watchdog_hold", f"no command for {idle_s:.3f} s"))
            try:
                self._hold()
            except Exception:
                return now + config.watchdog_timeout_s  # recorded as a fault, torque is off
            self._held_since_s = now
            return now + config.torque_off_after_s
        held_s = now - self._held_since_s
        if held_s < config.torque_off_after_s:
            return self._held_since_s + config.torque_off_after_s
        self._halted = f"torque off (no command for {held_s:.3f} s after the watchdog's hold)"
        self._record(Intervention(now, "torque_off", self._halted))
        self._torque_off_quietly()
        return now + config.watchdog_timeout_s

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog_stop.set()
            self._watchdog.join()
            self._watchdog = None


class EmergencyStopKeys:
    """Presses ``safe_robot.emergency_stop("key <key>")`` when ``key`` is pressed.

    A daemon thread polls ``keys`` every ``poll_s`` seconds; other keys are consumed and
    ignored, so give it a key source of its own. The default is the space bar, the largest key
    (``TerminalKeys`` names no escape key: escape sequences begin with the same byte).

    Example:
        with SafeRobot(robot) as safe_robot, EmergencyStopKeys(safe_robot, TerminalKeys()):
            run_the_policy(safe_robot)
    """

    def __init__(
        self, safe_robot: SafeRobot, keys: "KeySource", key: str = "space", poll_s: float = 0.01
    ):
        self.safe_robot = safe_robot
        self.keys = keys
        self.key = key
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="emergency-stop-keys", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.key in self.keys.pending():
                self.safe_robot.emergency_stop(f"key {self.key}")

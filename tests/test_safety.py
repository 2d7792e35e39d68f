"""The safety layer: the filter's bounds, a fuzz of malformed and wild commands, the watchdog,
the emergency stop and faults of the inner robot."""

import logging
import queue
import threading
import time

import numpy as np
import pytest
from safety_checks import assert_no_violations, fuzz_commands

from kinema.aloha import HOME_POSE, STATE_NAMES
from kinema.datasets.keyboard import QueueKeys
from kinema.hardware.robot import Robot, RobotDescription, RobotError, RobotObservation
from kinema.hardware.safety import (
    CommandRejected,
    EmergencyStopKeys,
    SafeRobot,
    SafetyConfig,
    SafetyFilter,
)
from kinema.hardware.sim_robot import SimRobot, SimRobotConfig
from kinema.types import JointCommand

DESCRIPTION = RobotDescription(name="recording", command_hz=50.0)
MAX_STEP = np.pi * 0.02  # an arm joint's max_velocity · command period, rad
SHOULDER = STATE_NAMES.index("left_shoulder")
ELBOW = STATE_NAMES.index("right_elbow")


class RecordingRobot(Robot):
    """Records what reaches it: each target with the time and the position it had then, each
    hold and torque-off time. Its position moves ``follow`` of the way to each target (a
    servo that lags); tests may set it. ``fail_on`` names a method that raises ``OSError``;
    ``overlaps`` counts calls that began while another was still running (each takes
    ``call_s``)."""

    def __init__(self, follow: float = 0.5, call_s: float = 0.0):
        self.follow = follow
        self.call_s = call_s
        self.position = HOME_POSE.copy()
        self.targets: list[np.ndarray] = []
        self.presents: list[np.ndarray] = []
        self.command_times: list[float] = []
        self.hold_times: list[float] = []
        self.torque_off_times: list[float] = []
        self.torque_on = False
        self.fail_on: str | None = None
        self.overlaps = 0
        self._busy = False

    @property
    def description(self) -> RobotDescription:
        return DESCRIPTION

    def _enter(self, method: str) -> None:
        if self._busy:
            self.overlaps += 1
        if self.call_s:
            self._busy = True
            time.sleep(self.call_s)
            self._busy = False
        if self.fail_on == method:
            raise OSError(f"bus error in {method}")

    def connect(self) -> None:
        self.torque_on = True

    def observe(self) -> RobotObservation:
        self._enter("observe")
        return RobotObservation(self.position.copy(), None, {}, time.monotonic())

    def command(self, command: JointCommand) -> None:
        self._enter("command")
        if not self.torque_on:
            raise RobotError("torque is off")
        self.command_times.append(time.monotonic())
        self.targets.append(command.position.copy())
        self.presents.append(self.position.copy())
        self.position = self.position + self.follow * (command.position - self.position)

    def hold(self) -> None:
        self._enter("hold")
        self.hold_times.append(time.monotonic())

    def disable_torque(self) -> None:
        if self.torque_on:
            self.torque_off_times.append(time.monotonic())
        self.torque_on = False

    def disconnect(self) -> None:
        self.disable_torque()


def wait_for(condition, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.002)


def kinds(robot: SafeRobot) -> list[str]:
    return [intervention.kind for intervention in robot.interventions]


# -- the filter ----------------------------------------------------------------------------


def test_filter_clips_to_limits_then_step_then_offset_and_names_the_joints():
    safety_filter = SafetyFilter(DESCRIPTION)
    target = HOME_POSE.copy()
    target[SHOULDER] = 5.0  # beyond the shoulder's upper limit 1.25664
    safe, interventions = safety_filter.filter(target, HOME_POSE, HOME_POSE)
    assert safe[SHOULDER] == pytest.approx(HOME_POSE[SHOULDER] + MAX_STEP)
    np.testing.assert_array_equal(np.delete(safe, SHOULDER), np.delete(HOME_POSE, SHOULDER))
    assert [i.kind for i in interventions] == ["position_limit", "velocity_limit"]
    assert interventions[0].detail == "left_shoulder 5 → 1.257"
    assert interventions[1].detail.startswith("left_shoulder 1.257 → -0.8972")

    # The arm lags 0.3 rad behind the previous target: the step toward the target is cut to
    # stay within 0.35 rad of the arm.
    present = HOME_POSE.copy()
    present[ELBOW] += 0.3
    target = HOME_POSE.copy()
    target[ELBOW] -= 1.0
    safe, interventions = safety_filter.filter(target, present, HOME_POSE)
    assert safe[ELBOW] == pytest.approx(present[ELBOW] - 0.35)
    assert [i.kind for i in interventions] == ["velocity_limit", "target_offset"]
    assert interventions[1].detail.startswith("right_elbow")


def test_filter_steps_toward_an_arm_pushed_far_from_its_target():
    safety_filter = SafetyFilter(DESCRIPTION)
    present = HOME_POSE.copy()
    present[ELBOW] -= 1.0  # pushed 1 rad away from the previous target
    safe, _ = safety_filter.filter(HOME_POSE, present, HOME_POSE)
    assert safe[ELBOW] == pytest.approx(present[ELBOW] + 0.35)


def test_filter_output_stays_within_the_limits_when_a_reading_is_beyond_them():
    safety_filter = SafetyFilter(DESCRIPTION)
    upper = DESCRIPTION.upper[SHOULDER]
    present = HOME_POSE.copy()
    present[SHOULDER] = upper + 0.5  # a reading past the limit
    previous = HOME_POSE.copy()
    previous[SHOULDER] = upper
    safe, interventions = safety_filter.filter(previous, present, previous)
    assert safe[SHOULDER] == upper
    assert [i.kind for i in interventions] == ["target_offset", "position_limit"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (np.where(np.arange(14) == 2, np.nan, HOME_POSE), "left_elbow (nan)"),
        (np.where(np.arange(14) == 13, -np.inf, HOME_POSE), "right_gripper (-inf)"),
        (HOME_POSE[:13], "shape (14,). Got (13,)"),
        (np.tile(HOME_POSE, (2, 1)), "Got (2, 14)"),
        ("home", "not numeric"),
    ],
)
def test_filter_rejects_malformed_targets_by_holding_the_previous_one(target, reason):
    previous = HOME_POSE + 0.01
    safe, interventions = SafetyFilter(DESCRIPTION).filter(target, HOME_POSE, previous)
    np.testing.assert_array_equal(safe, previous)
    assert [i.kind for i in interventions] == ["rejected"]
    assert reason in interventions[0].detail


def test_config_checks_its_values():
    with pytest.raises(ValueError, match="SafetyConfig: max_target_offset must have one entry"):
        SafetyFilter(DESCRIPTION, SafetyConfig(max_target_offset=(0.1,) * 13))
    with pytest.raises(ValueError, match="SafetyConfig: velocity_margin must be positive"):
        SafetyConfig(velocity_margin=0.0)


# -- the fuzz ------------------------------------------------------------------------------


def test_ten_thousand_wild_commands_never_leave_the_safe_set(caplog):
    robot = RecordingRobot(follow=0.1)  # lags: the target offset bound comes into play
    config = SafetyConfig(watchdog_timeout_s=5.0, torque_off_after_s=10.0)
    safe_robot = SafeRobot(robot, config)
    with caplog.at_level(logging.WARNING, logger="kinema.hardware.safety"), safe_robot:
        fuzz_commands(safe_robot, 10_000, np.random.default_rng(0))

    assert len(robot.targets) == 10_000  # rejected commands hold the previous target
    assert_no_violations(np.array(robot.targets), np.array(robot.presents), DESCRIPTION, config)
    counts = safe_robot.intervention_counts()
    assert counts["rejected"] > 2000
    assert min(counts["position_limit"], counts["velocity_limit"], counts["target_offset"]) > 0
    rejected_logs = [r for r in caplog.records if r.getMessage().startswith("safety rejected")]
    assert len(rejected_logs) == counts["rejected"]
    assert set(counts) <= {"rejected", "position_limit", "velocity_limit", "target_offset"}


def test_malformed_command_raises_and_sends_nothing_without_hold_on_reject():
    robot = RecordingRobot()
    with SafeRobot(robot, SafetyConfig(hold_on_reject=False)) as safe_robot:
        with pytest.raises(CommandRejected, match="right_gripper"):
            safe_robot.command(JointCommand(np.where(np.arange(14) == 13, np.nan, HOME_POSE)))
        assert robot.targets == []
        assert kinds(safe_robot) == ["rejected"]


# -- the watchdog --------------------------------------------------------------------------


def test_watchdog_holds_when_commands_stop_then_switches_torque_off():
    robot = RecordingRobot()
    # commands every 20 ms, the watchdog at 200 ms: a loaded machine cannot fire it early
    config = SafetyConfig(watchdog_timeout_s=0.2, torque_off_after_s=0.3)
    with SafeRobot(robot, config) as safe_robot:
        for _ in range(5):
            safe_robot.command(JointCommand(HOME_POSE))
            time.sleep(0.02)
        wait_for(lambda: robot.torque_off_times)

        last_command = robot.command_times[-1]
        assert len(robot.hold_times) == 1
        assert 0.2 <= robot.hold_times[0] - last_command < 0.35
        assert 0.29 <= robot.torque_off_times[0] - robot.hold_times[0] < 0.5
        assert kinds(safe_robot) == ["watchdog_hold", "torque_off"]
        with pytest.raises(RobotError, match="torque off"):
            safe_robot.command(JointCommand(HOME_POSE))
        assert len(robot.command_times) == 5


def test_commands_after_a_watchdog_hold_resume_from_the_held_position():
    robot = RecordingRobot()
    config = SafetyConfig(watchdog_timeout_s=0.05, torque_off_after_s=5.0)
    with SafeRobot(robot, config) as safe_robot:
        safe_robot.command(JointCommand(HOME_POSE))
        robot.position[SHOULDER] += 0.2  # the arm was pushed after the last command
        wait_for(lambda: robot.hold_times)
        target = HOME_POSE.copy()
        target[SHOULDER] += 1.0
        safe_robot.command(JointCommand(target))
        assert robot.targets[-1][SHOULDER] == pytest.approx(HOME_POSE[SHOULDER] + 0.2 + MAX_STEP)
        assert robot.torque_on


def test_watchdog_and_caller_never_use_the_robot_at_once():
    robot = RecordingRobot(call_s=0.001)
    config = SafetyConfig(watchdog_timeout_s=0.01, torque_off_after_s=10.0)
    rng = np.random.default_rng(0)
    with SafeRobot(robot, config) as safe_robot:
        for _ in range(60):
            safe_robot.command(JointCommand(HOME_POSE))
            time.sleep(rng.uniform(0.0, 0.02))
    assert len(robot.hold_times) >= 5  # the watchdog acted between commands
    assert robot.overlaps == 0


def test_safe_sim_robot_moves_within_the_velocity_bound_and_holds_when_commands_stop():
    sim_robot = SimRobot(SimRobotConfig(command_hz=50.0))
    config = SafetyConfig(watchdog_timeout_s=0.05, torque_off_after_s=0.2)
    with SafeRobot(sim_robot, config) as safe_robot:
        start = safe_robot.observe().position
        target = start.copy()
        target[SHOULDER] += 0.5
        for _ in range(5):
            safe_robot.command(JointCommand(target))
        time_before_hold = safe_robot.observe().timestamp_s
        moved = safe_robot.observe().position[SHOULDER] - start[SHOULDER]
        assert 0.1 < moved <= 5 * MAX_STEP + 1e-3
        wait_for(lambda: "torque_off" in kinds(safe_robot))
        assert kinds(safe_robot)[-2:] == ["watchdog_hold", "torque_off"]
        assert safe_robot.observe().timestamp_s == pytest.approx(time_before_hold + 0.02)
        with pytest.raises(RobotError, match="torque off"):
            safe_robot.command(JointCommand(target))


# -- emergency stop and faults -------------------------------------------------------------


def test_emergency_stop_from_another_thread_latches_until_connect():
    robot = RecordingRobot()
    safe_robot = SafeRobot(robot, SafetyConfig(watchdog_timeout_s=1.0))
    errors: list[Exception] = []

    def command_until_refused() -> None:
        try:
            while True:
                safe_robot.command(JointCommand(HOME_POSE))
                time.sleep(0.002)
        except RobotError as error:
            errors.append(error)

    with safe_robot:
        commander = threading.Thread(target=command_until_refused)
        commander.start()
        time.sleep(0.05)
        stopper = threading.Thread(target=safe_robot.emergency_stop, args=("operator",))
        stopper.start()
        stopper.join()
        commander.join(timeout=1.0)

        assert "emergency stop (operator)" in str(errors[0])
        assert not robot.torque_on
        assert robot.command_times[-1] < robot.hold_times[-1] < robot.torque_off_times[-1]
        time.sleep(0.05)
        with pytest.raises(RobotError, match=r"emergency stop \(operator\)"):
            safe_robot.command(JointCommand(HOME_POSE))
        assert kinds(safe_robot) == ["emergency_stop"]  # the watchdog stays quiet

        safe_robot.connect()
        safe_robot.command(JointCommand(HOME_POSE))
        assert robot.torque_on and robot.command_times[-1] > robot.torque_off_times[-1]


def test_emergency_stop_key_stops_the_robot():
    robot = RecordingRobot()
    keys: queue.Queue = queue.Queue()
    with (
        SafeRobot(robot, SafetyConfig(watchdog_timeout_s=1.0)) as safe_robot,
        EmergencyStopKeys(safe_robot, QueueKeys(keys)),
    ):
        keys.put("a")
        time.sleep(0.05)
        safe_robot.command(JointCommand(HOME_POSE))  # other keys do nothing
        keys.put("space")
        wait_for(lambda: not robot.torque_on, timeout_s=1.0)
        with pytest.raises(RobotError, match="key space"):
            safe_robot.command(JointCommand(HOME_POSE))


@pytest.mark.parametrize("method", ["observe", "command"])
def test_inner_robot_failure_switches_torque_off_and_is_reraised(method):
    robot = RecordingRobot()
    with SafeRobot(robot, SafetyConfig(watchdog_timeout_s=1.0)) as safe_robot:
        robot.fail_on = method
        with pytest.raises(OSError, match=f"bus error in {method}"):
            safe_robot.command(JointCommand(HOME_POSE))
        assert not robot.torque_on
        assert kinds(safe_robot) == ["fault"]
        assert method in safe_robot.interventions[0].detail
        robot.fail_on = None
        with pytest.raises(RobotError, match="fault"):
            safe_robot.command(JointCommand(HOME_POSE))


def test_an_unusable_position_reading_is_a_fault():
    robot = RecordingRobot()
    with SafeRobot(robot, SafetyConfig(watchdog_timeout_s=1.0)) as safe_robot:
        robot.position[ELBOW] = np.nan
        with pytest.raises(RobotError, match=r"non-finite position reading at right_elbow"):
            safe_robot.command(JointCommand(HOME_POSE))
        assert robot.targets == [] and not robot.torque_on
        assert kinds(safe_robot) == ["fault"]

"""``kinema deploy``: the control loop on the simulated robot and on ALOHA's driver stack over
emulated Dynamixel buses, with the safety layer checked at the servos."""

import json
import math
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from replay import ReplayPolicy, expert_actions
from safety_checks import fuzz_commands
from scenes import decode
from test_dit_policy import TINY

from kinema.aloha import ACTION_HIGH, ACTION_LOW
from kinema.cli import main
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.loader import WindowConfig, WindowLoader
from kinema.deploy import DeployConfig, deploy
from kinema.hardware.aloha_robot import FOLLOWER_MOTORS, PRIMARIES, AlohaConfig, AlohaRobot
from kinema.hardware.calibration import ARM_JOINTS, GRIPPER, TICKS_PER_TURN
from kinema.hardware.emulated_aloha import EmulatedAloha
from kinema.hardware.safety import SafeRobot, SafetyConfig
from kinema.policies.dit.config import DiTConfig
from kinema.policies.dit.policy import DiTPolicy
from kinema.policies.executor import ExecutorConfig
from kinema.run import RunConfig, run
from kinema.types import JointCommand

HALF_TICK_RAD = math.pi / TICKS_PER_TURN


@pytest.mark.parametrize("seed", [0, 1])
def test_a_demonstration_replayed_through_the_emulated_buses_succeeds_as_in_simulation(seed):
    actions = expert_actions("TransferCube", seed)
    results = {
        robot: deploy(
            DeployConfig(
                policy=Path("unused"),
                robot=robot,
                first_seed=seed,
                executor=ExecutorConfig(mode="chunk", executed_steps=25),
            ),
            ReplayPolicy(actions),
        )["details"][0]
        for robot in ("sim", "emulated")
    }
    # The same actions succeed on both robots, at nearly the same frame (the real arms take one
    # command per 20 ms frame where the simulated robot takes ten), without the safety layer
    # having to step in.
    assert results["sim"]["success"] and results["emulated"]["success"]
    assert abs(results["sim"]["frames"] - results["emulated"]["frames"]) <= 5
    assert results["emulated"]["interventions"] == {}


def servo_goals(world: EmulatedAloha) -> tuple[list[float], list[tuple[int, int, int]]]:
    """What the Goal_Position registers of the primary servos of both emulated arms mean:
    the twelve joint angles (rad), and per gripper (goal, closed, open) in ticks."""
    angles, grippers = [], []
    arms = (world.calibration.left, world.calibration.right)
    for emulator, arm in zip(world.emulators, arms, strict=True):
        ticks = {name: emulator.goal_position(FOLLOWER_MOTORS[name][0]) for name in PRIMARIES}
        angles += [
            joint.direction * (ticks[name] - joint.zero_ticks) * 2 * math.pi / TICKS_PER_TURN
            for name, joint in zip(ARM_JOINTS, arm.joints, strict=True)
        ]
        grippers.append((ticks[GRIPPER], arm.gripper.closed_ticks, arm.gripper.open_ticks))
    return angles, grippers


def test_ten_thousand_fuzzed_commands_never_put_an_emulated_servo_beyond_its_limits():
    arm_joints = [i for i in range(14) if i % 7 != 6]
    with EmulatedAloha(task="TransferCube", seed=0) as world:
        robot = AlohaRobot(AlohaConfig(ports=world.ports, calibration=world.calibration))
        safe = SafeRobot(robot, SafetyConfig(watchdog_timeout_s=5.0))
        goals: list[list[float]] = []
        grippers: list[tuple[int, int, int]] = []
        inner_command = robot.command

        def record_goals() -> None:
            angles, openings = servo_goals(world)
            goals.append(angles)
            grippers.extend(openings)

        def record_then_command(command: JointCommand) -> None:
            # SafeRobot read the position just before this call, and the bus serves that read
            # after the previous sync write: the previous command's goals are in place.
            record_goals()
            inner_command(command)

        robot.command = record_then_command
        with safe:
            fuzz_commands(safe, 10_000, np.random.default_rng(7))
            robot.read_position()  # served after the last sync write
            record_goals()
    goals_array = np.array(goals)
    assert len(goals_array) >= 10_000 * 0.6  # valid commands and the holds of rejected ones
    low, high = ACTION_LOW[arm_joints], ACTION_HIGH[arm_joints]
    assert np.all(goals_array >= low - HALF_TICK_RAD), (goals_array - low).min()
    assert np.all(goals_array <= high + HALF_TICK_RAD), (goals_array - high).max()
    for ticks, closed, opened in grippers:
        assert min(closed, opened) <= ticks <= max(closed, opened)


def test_the_watchdog_holds_the_emulated_arms_within_100_ms_of_the_last_command():
    with EmulatedAloha(task="TransferCube", seed=0) as world:
        robot = AlohaRobot(AlohaConfig(ports=world.ports, calibration=world.calibration))
        safe = SafeRobot(robot, SafetyConfig(watchdog_timeout_s=0.05, torque_off_after_s=0.5))
        elbow = FOLLOWER_MOTORS["elbow"][0]
        with safe:
            start = safe.observe().position
            target = start.copy()
            for _ in range(20):  # lift the left elbow: the arm lags its goals
                target[2] -= 0.03
                safe.command(JointCommand(target.copy()))
            commanded_s = time.monotonic()
            safe.observe()  # served after the last sync write: its goals are in place
            last_goal = world.left.goal_position(elbow)
            held_s = None
            while time.monotonic() - commanded_s < 0.5:
                if world.left.goal_position(elbow) != last_goal:
                    held_s = time.monotonic()
                    break
                time.sleep(0.001)
            assert held_s is not None, "the watchdog never held the arm"
            assert held_s - commanded_s < 0.1
            deadline = time.monotonic() + 1.0
            while "watchdog_hold" not in [i.kind for i in safe.interventions]:
                assert time.monotonic() < deadline, "the hold was not recorded"
                time.sleep(0.005)
            deadline = time.monotonic() + 2.0
            while world.left.torque_enabled(elbow) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not world.left.torque_enabled(elbow), "torque stayed on after the grace period"


def test_deploy_command_runs_a_saved_policy_on_the_emulated_arms(
    recorded_dataset, tmp_path, capsys
):
    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "cameras": ("cam_high",)})
    loader = WindowLoader(
        root, WindowConfig(workers=0), FeatureMap(), expected=config.input_shapes()
    )
    DiTPolicy(config, loader.stats).save_pretrained(tmp_path / "policy")
    main(["deploy", "--policy", str(tmp_path / "policy"), "--robot", "emulated", "--episodes", "1"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["robot"] == "emulated" and report["episodes"] == 1
    assert report["details"][0]["frames"] > 0 and report["inference_ms"] > 0
    assert report["success_rate"] in (0.0, 1.0)


def test_deploy_on_real_arms_needs_ports_and_a_calibration():
    with pytest.raises(ValueError, match="--ports"):
        DeployConfig(policy=Path("p"), robot="aloha")


def test_a_safe_stop_from_another_thread_ends_a_deployment_with_a_clear_error():
    with EmulatedAloha(task="TransferCube", seed=0) as world:
        safe = SafeRobot(AlohaRobot(AlohaConfig(ports=world.ports, calibration=world.calibration)))
        with safe:
            threading.Timer(0.05, safe.emergency_stop, args=("operator",)).start()
            position = safe.observe().position
            with pytest.raises(Exception, match="operator"):
                for _ in range(200):
                    safe.command(JointCommand(position))
                    time.sleep(0.005)
            assert not world.left.torque_enabled(FOLLOWER_MOTORS["waist"][0])


def test_run_command_drives_a_saved_policy_with_the_ground_truth_brain(
    recorded_dataset, tmp_path, capsys
):
    root, _ = recorded_dataset
    loader = WindowLoader(root, WindowConfig(workers=0), FeatureMap(), expected=TINY.input_shapes())
    DiTPolicy(TINY, loader.stats).save_pretrained(tmp_path / "policy")
    main(
        [
            "run", "--policy", str(tmp_path / "policy"), "--task", "TransferCube",
            "--seed", "4", "--episodes", "2", "--brain", "oracle", "--out", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((tmp_path / "run" / "TransferCube_oracle_replans2.json").read_text())
    assert saved["summary"] == summary and summary["episodes"] == 2
    assert [report["seed"] for report in saved["episodes"]] == [4, 5]
    successes = sum(report["success"] for report in saved["episodes"])
    assert summary["success_rate"] == successes / 2
    assert summary["late_chunks"] == sum(
        report["timing"]["policy"]["late_chunks"] for report in saved["episodes"]
    )
    report = saved["episodes"][0]
    assert report["brain"] == "oracle" and report["subtasks"] == 2
    assert report["success"] in (True, False) and report["subtasks_done"] in (0, 1, 2)
    assert report["frames"] > 0 and report["timing"]["policy"]["inference"]["p50_ms"] > 0
    assert report["timing"]["cerebellum"]["frame"]["p50_ms"] > 0
    assert len(decode(report["video"])) >= report["frames"]
    decisions = (Path(report["trace"]) / "decisions.jsonl").read_text().splitlines()
    assert json.loads(decisions[0])["kind"] == "plan"
    # the ground truth audited against itself: every check right, none ended a subtask early
    audits = [report["brain_audit"] for report in saved["episodes"]]
    checks = [json.loads(line) for line in decisions if json.loads(line)["kind"] == "check"]
    assert 0 < audits[0]["checks"] <= len(checks)
    assert audits[0]["accuracy"] == 1.0 and audits[0]["false_advances"] == 0
    assert summary["brain_audit"]["checks"] == sum(audit["checks"] for audit in audits)


def test_the_whole_stack_succeeds_through_the_emulated_dynamixel_buses(tmp_path):
    config = RunConfig(
        task="TransferCube",
        seed=0,
        brain="oracle",
        robot="emulated",
        executor=ExecutorConfig(mode="chunk", executed_steps=25),
        out=tmp_path,
    )
    report = run(config, ReplayPolicy(expert_actions("TransferCube", 0)))
    assert report["robot"] == "emulated" and report["success_judged_by"] == "task"
    assert report["success"] and report["subtasks_done"] == report["subtasks"] == 2
    assert report["safety_interventions"] == {}
    assert len(decode(report["video"])) == report["frames"] + report["held_frames"]


def camera_video(path: Path, seconds: float) -> Path:
    """An MJPG video of a grey scene at 50 fps, ``seconds`` long: a camera for OpenCV."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (128, 96))
    for k in range(round(50 * seconds)):
        writer.write(np.full((96, 128, 3), 60 + k % 100, np.uint8))
    writer.release()
    return path


def test_run_on_real_arms_keeps_the_wall_clock_and_the_brain_judges_success(
    recorded_dataset, tmp_path, capsys
):
    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "cameras": (), "environment_state_dim": 0})
    loader = WindowLoader(
        root, WindowConfig(workers=0), FeatureMap(), expected=config.input_shapes()
    )
    DiTPolicy(config, loader.stats).save_pretrained(tmp_path / "policy")
    with EmulatedAloha(task="TransferCube", seed=0) as arms:  # posing as real arms
        arms.calibration.save(tmp_path / "calibration.json")
        cameras = [
            f"{name}={camera_video(tmp_path / f'{name}.avi', seconds=4.0)}"
            for name in ("cam_high", "cam_left_wrist", "cam_right_wrist")
        ]
        main(
            [
                "run", "pick up the red cube with the right arm and hand it to the left arm",
                "--policy", str(tmp_path / "policy"), "--robot", "aloha",
                "--ports", *arms.ports, "--calibration", str(tmp_path / "calibration.json"),
                *[argument for camera in cameras for argument in ("--camera", camera)],
                "--seconds", "1.5", "--seed", "7", "--out", str(tmp_path / "run"),
            ]
        )  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["robot"] == "aloha" and report["task"] is None
    assert report["success_judged_by"] == "brain" and report["success"] is False
    assert report["frames"] + report["held_frames"] == 75  # 1.5 s of 20 ms frames
    assert report["video"].endswith("aloha_seed7.mp4") and len(decode(report["video"])) == 75
    assert report["brain_audit"] is None  # no simulator knows the truth
    decisions = (Path(report["trace"]) / "decisions.jsonl").read_text().splitlines()
    assert json.loads(decisions[0])["kind"] == "plan"


def test_run_refuses_what_real_arms_cannot_do(recorded_dataset, tmp_path):
    arms = {"robot": "aloha", "ports": ("a", "b"), "calibration": tmp_path / "c.json"}
    with pytest.raises(ValueError, match="--ports"):
        RunConfig(robot="aloha", instruction="stack the blocks")
    with pytest.raises(ValueError, match="ground truth"):
        RunConfig(brain="oracle", instruction="stack the blocks", **arms)
    with pytest.raises(ValueError, match="needs the instruction"):
        RunConfig(**arms)
    with pytest.raises(SystemExit, match="kinema deploy: --robot aloha needs --ports"):
        main(["deploy", "--policy", str(tmp_path), "--robot", "aloha"])  # one line, no traceback
    root, _ = recorded_dataset
    loader = WindowLoader(root, WindowConfig(workers=0), FeatureMap(), expected=TINY.input_shapes())
    DiTPolicy(TINY, loader.stats).save_pretrained(tmp_path / "policy")  # needs object poses
    config = RunConfig(
        policy=tmp_path / "policy", instruction="stack the blocks", out=tmp_path / "run", **arms
    )
    with pytest.raises(ValueError, match="--no-environment-state"):
        run(config)

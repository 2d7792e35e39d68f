"""``kinema deploy``: run a trained policy on a robot: policy → cerebellum → safety → robot.

The robot is one of:

- ``sim``: the MuJoCo robot (``SimRobot``), taking all ten 500 Hz commands of each frame;
- ``emulated``: the ALOHA follower arms as on real hardware (``AlohaRobot``, lerobot's
  Dynamixel bus at 50 Hz), whose serial ports are two emulated buses moved by the MuJoCo
  simulation (``EmulatedAloha``): everything but the copper;
- ``aloha``: real follower arms on ``--ports``, with the calibration of ``--calibration`` and
  OpenCV cameras (``--camera cam_high=/dev/video0``).

Every command passes the safety layer (``SafeRobot``: limits, step and offset bounds, watchdog,
emergency stop — the space key on a terminal). On real arms the loop keeps the 50 Hz frame
clock and the subtask text is ``--instruction``; in simulation (sim, emulated) time advances with
the commands, the subtask text comes from the task, and the episode ends on success. The
simulated clocks stand still while the policy thinks, so there the watchdog only catches a
stalled loop (``SIMULATED_WATCHDOG_S``).

The last line printed is one JSON object: robot, task, episodes, success_rate (simulation),
the safety interventions by kind, the policy's median inference time and late frames.

Example:
    kinema deploy --policy outputs/dit/policy --robot emulated --task TransferCube --episodes 5
    kinema deploy --policy outputs/dit/policy --robot aloha --ports /dev/ttyDXL_left \\
        /dev/ttyDXL_right --calibration calib.json --camera cam_high=/dev/video0 \\
        --instruction "pick up the red cube with the right arm" --seconds 30
"""

import contextlib
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from kinema.control_loop import ChunkPolicy, TaskInfo, run_episode
from kinema.datasets.keyboard import TerminalKeys
from kinema.hardware.aloha_robot import AlohaConfig, AlohaRobot
from kinema.hardware.cameras import Camera, OpenCVCamera
from kinema.hardware.emulated_aloha import EmulatedAloha
from kinema.hardware.robot import Robot
from kinema.hardware.safety import EmergencyStopKeys, SafeRobot, SafetyConfig
from kinema.hardware.sim_robot import SimRobot, SimRobotConfig
from kinema.policies.dit.config import ENVIRONMENT_STATE
from kinema.policies.dit.policy import DiTPolicy
from kinema.policies.executor import ExecutorConfig
from kinema.sim.simulation import CONTROL_DT_S
from kinema.sim.tasks import make_task

RobotKind = Literal["sim", "emulated", "aloha"]
SIMULATED_WATCHDOG_S = 5.0
"""The watchdog's timeout on simulated clocks, seconds of wall time."""


@dataclass(frozen=True)
class DeployConfig:
    """What ``kinema deploy`` runs.

    Attributes:
        policy: a ``save_pretrained`` directory.
        robot: "sim", "emulated" or "aloha" (module docstring).
        task: the simulated task (sim, emulated).
        first_seed, episodes: episodes with seeds first_seed … first_seed + episodes − 1
            (sim, emulated; real arms run one).
        ports: the (left, right) follower buses (aloha).
        calibration: the arms' calibration JSON (aloha).
        cameras: camera name → OpenCV device index or path (aloha).
        instruction: the subtask text on real arms.
        seconds: the longest episode on real arms, seconds.
        executor: how chunks become actions.
        safety: the safety layer's bounds (the watchdog is relaxed on simulated clocks).
    """

    policy: Path
    robot: RobotKind = "sim"
    task: str = "TransferCube"
    first_seed: int = 100_000
    episodes: int = 1
    ports: tuple[str, str] | None = None
    calibration: Path | None = None
    cameras: dict[str, str] = field(default_factory=dict)
    instruction: str = ""
    seconds: float = 30.0
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        check_robot_options(self.robot, self.ports, self.calibration)


def check_robot_options(
    robot: RobotKind, ports: tuple[str, str] | None, calibration: Path | None
) -> None:
    """Real arms need their buses and their calibration; a clear error otherwise."""
    if robot not in ("sim", "emulated", "aloha"):
        raise ValueError(f"robot must be sim, emulated or aloha, got {robot!r}")
    if robot == "aloha" and (ports is None or calibration is None):
        raise ValueError("--robot aloha needs --ports LEFT RIGHT and --calibration FILE")


@contextlib.contextmanager
def simulated_robot(
    robot: Literal["sim", "emulated"],
    task: str,
    seed: int,
    cameras: tuple[str, ...],
    image_size: tuple[int, int],
    environment_state: bool,
) -> Iterator[tuple[Robot, TaskInfo]]:
    """The unconnected ``robot`` ("sim" or "emulated", module docstring) of one episode of
    ``task``, with ``cameras`` rendering ``image_size`` (height, width) images and, when
    ``environment_state``, the object state among its sensors; and the task's monitor."""
    if robot == "sim":
        sim = SimRobot(SimRobotConfig(task, seed, cameras, image_size))
        yield sim, sim.task_info
        return
    with EmulatedAloha(task=task, seed=seed, cameras=list(cameras), image_size=image_size) as world:
        sensors = {ENVIRONMENT_STATE: world.environment_state} if environment_state else {}
        arms = AlohaRobot(
            AlohaConfig(ports=world.ports, calibration=world.calibration),
            cameras=world.cameras(),
            extra_sensors=sensors,
        )
        yield arms, world.task_info


def real_robot(
    ports: tuple[str, str],
    calibration: Path,
    devices: dict[str, str],
    cameras: tuple[str, ...],
    image_size: tuple[int, int],
) -> AlohaRobot:
    """The real follower arms on ``ports`` with OpenCV ``cameras`` (each named camera's device
    from ``devices``, name → index or path) giving ``image_size`` images."""
    missing = sorted(set(cameras) - set(devices))
    if missing:
        raise ValueError(f"cameras {missing} are needed: give each with --camera NAME=DEVICE")
    opened: dict[str, Camera] = {
        name: OpenCVCamera(name, int(device) if device.isdigit() else device, size=image_size)
        for name, device in devices.items()
    }
    return AlohaRobot(AlohaConfig(ports=ports, calibration=calibration), opened)


def stop_on_space(stack: contextlib.ExitStack, safe: SafeRobot) -> None:
    """On a terminal, the space key stops ``safe``'s arms for as long as ``stack`` is open."""
    if sys.stdin.isatty():
        keys = TerminalKeys()
        stack.callback(keys.close)
        stack.enter_context(EmergencyStopKeys(safe, keys))


def _episode_report(safe: SafeRobot, result: Any, seed: int | None) -> dict[str, Any]:
    return {
        "seed": seed,
        "success": result.success,
        "frames": result.frames,
        "interventions": dict(safe.intervention_counts()),
        "inference_ms": float(np.median(result.inference_ms)) if result.inference_ms else 0.0,
        "late_frames": result.late_frames,
    }


def deploy(config: DeployConfig, policy: ChunkPolicy | None = None) -> dict[str, Any]:
    """Run the episodes of ``config``; the report (module docstring)."""
    policy = policy if policy is not None else DiTPolicy.from_pretrained(config.policy)
    episodes: list[dict[str, Any]] = []
    policy_config = policy.config
    if config.robot == "aloha":
        assert config.ports is not None and config.calibration is not None
        arms = real_robot(
            config.ports,
            config.calibration,
            config.cameras,
            policy_config.cameras,
            policy_config.image_size,
        )
        safe = SafeRobot(arms, config.safety)
        with contextlib.ExitStack() as stack:
            stack.enter_context(safe)
            stop_on_space(stack, safe)
            result = run_episode(
                safe,
                policy,
                config.executor,
                max_frames=round(config.seconds / CONTROL_DT_S),
                instruction=config.instruction,
                pace=True,
            )
        episodes.append(_episode_report(safe, result, None))
    else:
        safety = replace(config.safety, watchdog_timeout_s=SIMULATED_WATCHDOG_S)
        max_frames = make_task(config.task).max_episode_steps
        for seed in range(config.first_seed, config.first_seed + config.episodes):
            with simulated_robot(
                config.robot,
                config.task,
                seed,
                policy_config.cameras,
                policy_config.image_size,
                bool(policy_config.environment_state_dim),
            ) as (robot, task_info):
                safe = SafeRobot(robot, safety)
                with safe:
                    result = run_episode(
                        safe,
                        policy,
                        config.executor,
                        max_frames=max_frames,
                        task_info=task_info,
                        generator=torch.Generator().manual_seed(seed),
                    )
            episodes.append(_episode_report(safe, result, seed))
    successes = [e["success"] for e in episodes if e["success"] is not None]
    interventions: Counter[str] = Counter()
    for episode in episodes:
        interventions.update(episode["interventions"])
    return {
        "robot": config.robot,
        "task": config.task if config.robot != "aloha" else None,
        "episodes": len(episodes),
        "success_rate": round(sum(successes) / len(successes), 4) if successes else None,
        "interventions": dict(interventions),
        "inference_ms": round(float(np.median([e["inference_ms"] for e in episodes])), 1),
        "late_frames": sum(e["late_frames"] for e in episodes),
        "details": episodes,
    }

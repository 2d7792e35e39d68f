"""``kinema eval``: a trained policy's success rate in simulation, through the cerebellum.

Each episode: a simulated robot (``SimRobot``) is connected with the episode's seed and the
control loop of ``kinema.control_loop`` drives it: every 50 Hz frame the chunk executor gives
the frame's action from the policy's chunks (predicted from the observation history and the text
of the subtask in progress), and the cerebellum turns the coming actions into ten 2 ms servo
commands. Joint-space actions go through the joint cerebellum (the MPC follows the next 0.4 s
under the joint limits, then the safety pass); end-effector actions through the end-effector
one (the WBC places the grippers 0.4 s ahead, the MPC follows).
The episode ends on success or at the task's step limit.

Reported per task: the success rate with its 95 % Wilson interval, the mean fraction of the
task's stages reached, how far the executed actions jump from one frame to the next at chunk
hand-overs (largest) and elsewhere (median) — arm joints in rad for joint actions, gripper
positions in m for end-effector ones, before the cerebellum smooths them —, the policy's
inference time, and MP4s of the first episodes (the cameras, captioned with the subtask, the
stage and the executor mode).

Episodes run through ``kinema.episode_pool``: in parallel worker processes (spawned, one torch
thread each) or, with ``pool.ray_address``, as actors on a Ray cluster; each worker loads the
policy once with ``from_pretrained``. Ray workers get the policy folder's files through Ray's
object store, so they need not read its path (a pretrained text model the checkpoint names by
path, ``DiTConfig.text_model``, must be readable there), and the films come back with the
results.

Example:
    summary = evaluate(EvalConfig(policy=Path("outputs/dit/policy"), task="TransferCube"))
    summary["success_rate"], summary["ci95"]
"""

import json
import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kinema.control_loop import ChunkPolicy, run_episode
from kinema.datasets.record import subtask_text
from kinema.episode_pool import PoolConfig, PortableFolder, map_episodes
from kinema.hardware.robot import RobotObservation
from kinema.hardware.sim_robot import SimRobot, SimRobotConfig
from kinema.policies.dit.config import DiTConfig
from kinema.policies.dit.policy import CONFIG_FILE, DiTPolicy
from kinema.policies.executor import ExecutorConfig
from kinema.policies.lerobot_policy import (
    LerobotChunkPolicy,
    is_lerobot_checkpoint,
    load_interface_config,
)
from kinema.sim.simulation import CONTROL_DT_S
from kinema.sim.tasks import make_task
from kinema.video import Mp4Writer, mosaic


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        policy: a ``save_pretrained`` directory, or a lerobot checkpoint folder that
            ``lerobot-train`` wrote (``kinema.policies.lerobot_policy``; chunk or ensemble
            executor).
        task: the simulated task.
        episodes: seeded episodes, seeds ``first_seed`` … ``first_seed + episodes - 1``.
        first_seed: the first seed (the default stays clear of recorded demonstrations' seeds).
        pool: where the episodes run: parallel worker processes, or a Ray cluster.
        executor: how chunks become actions.
        inference_steps: denoising steps per chunk (None: the policy's own).
        videos: how many of the first episodes to film.
        out: folder for the videos and the JSON report.
    """

    policy: Path
    task: str = "TransferCube"
    episodes: int = 50
    first_seed: int = 100_000
    pool: PoolConfig = field(default_factory=PoolConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    inference_steps: int | None = None
    videos: int = 2
    out: Path = Path("outputs/eval")


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95 % for z = 1.96)."""
    if trials == 0:
        return (0.0, 1.0)
    rate = successes / trials
    denominator = 1 + z**2 / trials
    centre = (rate + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_policy_episode(
    policy: ChunkPolicy,
    task: str,
    seed: int,
    executor_config: ExecutorConfig,
    video: Path | None = None,
) -> dict[str, Any]:
    """One seeded episode of ``policy`` on ``task`` (see the module docstring); its figures."""
    config = policy.config
    # a state-only policy's films show the overview camera
    cameras = config.cameras or (("cam_high",) if video is not None else ())
    robot = SimRobot(
        SimRobotConfig(task=task, seed=seed, cameras=cameras, image_size=config.image_size)
    )
    writer = Mp4Writer(video, fps=round(1 / CONTROL_DT_S)) if video is not None else None

    def film(observation: RobotObservation, info: dict[str, Any] | None) -> None:
        assert writer is not None and info is not None
        caption = (
            f"{subtask_text(info)}  |  stage {info['stage']}/{info['max_stage']}  |  "
            f"{executor_config.mode}"
        )
        writer.write(mosaic(observation.images, caption, columns=len(observation.images)))

    try:
        with robot:
            result = run_episode(
                robot,
                policy,
                executor_config,
                max_frames=make_task(task).max_episode_steps,
                task_info=robot.task_info,
                generator=torch.Generator().manual_seed(seed),
                on_frame=film if writer is not None else None,
            )
    finally:
        if writer is not None:
            writer.close()
    handover_jump, step_jump = result.jumps(config.action_space)
    return {
        "seed": seed,
        "success": bool(result.success),
        "frames": result.frames,
        "stage_fraction": result.stage_fraction,
        "handover_jump": handover_jump,
        "step_jump": step_jump,
        "predictions": result.predictions,
        "inference_ms": float(np.median(result.inference_ms)) if result.inference_ms else 0.0,
    }


def _load(folder: PortableFolder, inference_steps: int | None) -> ChunkPolicy:
    """A worker's policy: the checkpoint in ``folder`` (ours, or one ``lerobot-train`` wrote),
    with ``inference_steps`` if given (ours only)."""
    with folder.opened() as directory:
        if is_lerobot_checkpoint(directory):
            if inference_steps is not None:
                raise ValueError("--inference-steps applies to DiT checkpoints, not lerobot's")
            return LerobotChunkPolicy.from_pretrained(directory)
        policy = DiTPolicy.from_pretrained(directory)
    if inference_steps is not None:
        policy.config = replace(policy.config, inference_steps=inference_steps)
    return policy


@dataclass(frozen=True)
class _Episode:
    """One evaluation episode as the pool runs it (picklable, so it travels to the workers).

    A filmed episode's MP4 is written on the worker and returned as bytes under ``"video"``,
    so that films from a Ray cluster's machines reach the driver's ``out`` folder."""

    task: str
    executor: ExecutorConfig
    filmed: frozenset[int]

    def __call__(self, policy: ChunkPolicy, seed: int) -> dict[str, Any]:
        if seed not in self.filmed:
            return run_policy_episode(policy, self.task, seed, self.executor)
        with tempfile.TemporaryDirectory(prefix="kinema-eval-") as folder:
            video = Path(folder) / "episode.mp4"
            result = run_policy_episode(policy, self.task, seed, self.executor, video)
            return {**result, "video": video.read_bytes()}


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run the episodes of ``config`` and return the report (also written as JSON to ``out``)."""
    lerobot_checkpoint = is_lerobot_checkpoint(config.policy)
    if lerobot_checkpoint and config.executor.mode == "rtc":
        raise ValueError(
            f"{config.policy} is a lerobot checkpoint, which cannot start a chunk from given "
            "actions: evaluate it with --executor chunk or ensemble"
        )
    policy_config = (
        load_interface_config(config.policy)
        if lerobot_checkpoint
        else DiTConfig.load(config.policy / CONFIG_FILE)
    )
    executor = config.executor.for_policy(policy_config.executed_steps)
    config.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(config.first_seed, config.first_seed + config.episodes))
    start = time.perf_counter()
    results = map_episodes(
        partial(_load, config.pool.portable(config.policy), config.inference_steps),
        _Episode(config.task, config.executor, frozenset(seeds[: config.videos])),
        seeds,
        config.pool,
        description=f"eval {config.task}",
        postfix=lambda arrived: {"success": sum(result["success"] for result in arrived)},
    )
    videos = []
    for result in results:
        if "video" in result:
            video = config.out / f"{config.task}_seed{result['seed']}.mp4"
            video.write_bytes(result.pop("video"))
            videos.append(str(video))
    successes = sum(result["success"] for result in results)
    low, high = wilson_interval(successes, len(results))
    report = {
        "task": config.task,
        "episodes": len(results),
        "success_rate": round(successes / max(len(results), 1), 4),
        "ci95": [round(low, 4), round(high, 4)],
        "mean_stage_fraction": round(float(np.mean([r["stage_fraction"] for r in results])), 4),
        "executor": executor.mode,
        "executed_steps": None if executor.mode == "ensemble" else executor.executed_steps,
        "action_space": policy_config.action_space,
        "handover_jump": round(max(r["handover_jump"] for r in results), 4),
        "step_jump": round(float(np.median([r["step_jump"] for r in results])), 5),
        "inference_ms": round(float(np.median([r["inference_ms"] for r in results])), 1),
        "failed_seeds": [r["seed"] for r in results if not r["success"]],
        "videos": videos,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (config.out / f"{config.task}_{config.executor.mode}.json").write_text(
        json.dumps({"report": report, "episodes": results}, indent=1)
    )
    return report

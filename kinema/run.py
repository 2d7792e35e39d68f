"""``kinema run``: the whole stack on one instruction: brain → DiT policy → cerebellum → robot.

The brain (``--brain``) plans the instruction into subtasks and judges them from the cameras on
its own thread, checking every 0.2 s; the policy turns images, joint state and the current
subtask into chunks (real-time chunking by default); the cerebellum turns chunks into 500 Hz
commands that pass the safety layer on their way to the robot. The run is filmed (the policy's
cameras and the brain's, captioned with the brain's phase, subtask and, in simulation, the
task's stage), the brain's decisions are traced, and the last line printed is one JSON report:
success, subtasks_done, video, the timing of each layer and, in simulation, how often the
brain's checks agreed with the task's ground truth (``kinema.policies.brain.audit``).

Robots (``--robot``, as for ``kinema deploy``): ``sim`` (MuJoCo), ``emulated`` (the ALOHA driver
stack on emulated Dynamixel buses moved by MuJoCo) or ``aloha`` (real follower arms: the loop
keeps the 50 Hz wall clock, the episode lasts at most ``seconds``, the space key on a terminal
stops the arms, and success is the brain's verdict, every subtask done, since no simulator
knows the truth; the policy must not need the object state, which real arms lack).

Brains: ``embedded`` (the compact model the project ships; ``embedded:<dir>`` loads other
weights of it, e.g. from ``kinema train-brain``), ``oracle`` (the task's ground truth:
separates policy errors from brain errors), ``transformers:<dir>`` (a local image-text-to-text
model), ``http:<base_url>#<model>`` (an OpenAI-compatible server).

Example:
    kinema run "pick up the red cube with the right arm and hand it to the left arm" \\
        --task TransferCube --policy outputs/dit/policy --brain oracle --seed 3
"""

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kinema.control_loop import ChunkPolicy, EpisodeResult, TaskInfo, run_episode
from kinema.deploy import (
    SIMULATED_WATCHDOG_S,
    RobotKind,
    check_robot_options,
    real_robot,
    simulated_robot,
    stop_on_space,
)
from kinema.evaluate import wilson_interval
from kinema.hardware.robot import Robot
from kinema.hardware.safety import SafeRobot, SafetyConfig
from kinema.policies.brain import (
    BrainRunner,
    BrainRunnerConfig,
    HttpPlanner,
    HttpPlannerConfig,
    OraclePlanner,
    Planner,
    scene_objects,
)
from kinema.policies.brain.audit import AuditedPlanner, total_audit
from kinema.policies.brain.trace import Decision
from kinema.policies.dit.policy import DiTPolicy
from kinema.policies.dit.shipped import DEFAULT_TASK, shipped_policy
from kinema.policies.executor import ExecutorConfig
from kinema.sim.simulation import CONTROL_DT_S, PHYSICS_STEPS_PER_CONTROL
from kinema.sim.tasks import make_task
from kinema.video import Mp4Writer, mosaic

BRAIN_CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
"""The cameras the brain looks through (rendered even for a state-only policy)."""


@dataclass(frozen=True)
class RunConfig:
    """What ``kinema run`` runs.

    Attributes:
        policy: the DiT policy's ``save_pretrained`` directory; None: the one shipped for
            ``task`` (``kinema.policies.dit.shipped``).
        instruction: what to do; None uses the task's own instruction for the seed.
        task: the simulated task (the scene and the success test).
        seed: the episode's seed; None draws one.
        brain: "embedded" (the shipped weights, or "embedded:<dir>" for others), "oracle",
            "transformers:<dir>" or "http:<base_url>#<model>".
        executor: how chunks become actions.
        out: where the video, the brain's trace and the report go.
        image_size: the brain cameras' image size when the policy has no cameras, pixels (the
            embedded brain was trained on 96×128).
        subtask_retries: how often the brain starts a failed subtask again before replanning.
        max_replans: how often the brain may plan again after a failure (0: never replans,
            the episode ends when a subtask has failed ``subtask_retries`` + 1 times).
        done_confirmations: checks in a row that must say "done" before the brain moves on
            (``BrainRunnerConfig.done_confirmations``).
        robot: "sim", "emulated" or "aloha" (module docstring).
        ports: the (left, right) follower buses (aloha).
        calibration: the arms' calibration JSON (aloha).
        camera_devices: camera name → OpenCV device index or path (aloha): every camera the
            policy or the brain looks through.
        seconds: the longest episode on real arms, seconds.
    """

    policy: Path | None = None
    instruction: str | None = None
    task: str = DEFAULT_TASK
    seed: int | None = None
    brain: str = "embedded"
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    out: Path = Path("outputs/run")
    image_size: tuple[int, int] = (96, 128)
    subtask_retries: int = BrainRunnerConfig.subtask_retries
    max_replans: int = BrainRunnerConfig.max_replans
    done_confirmations: int = BrainRunnerConfig.done_confirmations
    robot: RobotKind = "sim"
    ports: tuple[str, str] | None = None
    calibration: Path | None = None
    camera_devices: dict[str, str] = field(default_factory=dict)
    seconds: float = 60.0

    def __post_init__(self) -> None:
        check_robot_options(self.robot, self.ports, self.calibration)
        if self.robot == "aloha" and self.brain == "oracle":
            raise ValueError(
                "--brain oracle reads the simulated task's ground truth: use a brain that looks "
                "through the cameras on real arms"
            )
        if self.robot == "aloha" and not self.instruction:
            raise ValueError("--robot aloha needs the instruction: no simulated task draws one")

    @property
    def policy_dir(self) -> Path:
        """``policy``, or the checkpoint shipped for ``task``."""
        return self.policy if self.policy is not None else shipped_policy(self.task)


def make_planner(spec: str, task_info: Callable[[], dict[str, Any]]) -> Planner:
    """The planner ``spec`` names (see ``RunConfig.brain``)."""
    kind, _, argument = spec.partition(":")
    if kind == "oracle":
        return OraclePlanner(task_info)
    if kind == "embedded":
        from kinema.policies.brain import EmbeddedPlanner

        if argument:
            return EmbeddedPlanner.from_pretrained(Path(argument))
        return EmbeddedPlanner.from_pretrained()
    if kind == "transformers" and argument:
        from kinema.policies.brain import TransformersPlanner

        return TransformersPlanner(Path(argument))
    if kind == "http" and "#" in argument:
        base_url, model = argument.split("#", 1)
        return HttpPlanner(HttpPlannerConfig(base_url, model))
    raise ValueError(
        "--brain must be embedded, embedded:<dir>, oracle, transformers:<dir> or "
        f"http:<base_url>#<model>, got {spec!r}"
    )


def percentiles_ms(values_ms: list[float]) -> dict[str, float]:
    """p50 and p99 of ``values_ms`` (0 when empty), rounded to 0.1 ms."""
    if not values_ms:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    p50, p99 = np.percentile(values_ms, [50, 99])
    return {"p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1)}


def layer_timing(
    result: EpisodeResult, decisions: list[Decision], executor: ExecutorConfig
) -> dict[str, dict[str, Any]]:
    """Each layer's latency (p50/p99, ms), achieved rate and deadline misses in one episode.

    Rates are per second of robot time (frames × 20 ms): the brain's checks, the policy's
    chunks; the cerebellum's achievable rate is its ticks over the compute time they took
    (10 ticks a frame / mean frame time), to set beside the 500 Hz it must sustain.
    """
    robot_time_s = max(result.frames + result.held_frames, 1) * CONTROL_DT_S
    checks = [d.latency_s * 1e3 for d in decisions if d.kind == "check"]
    plans = [d.latency_s * 1e3 for d in decisions if d.kind in ("plan", "replan")]
    cerebellum_s = sum(result.cerebellum_ms) / 1e3
    ticks = PHYSICS_STEPS_PER_CONTROL * len(result.cerebellum_ms)
    return {
        "brain": {
            "check": percentiles_ms(checks),
            "plan": percentiles_ms(plans),
            "checks_per_s": round(len(checks) / robot_time_s, 2),
        },
        "policy": {
            "inference": percentiles_ms(result.inference_ms),
            "chunks_per_s": round(result.predictions / robot_time_s, 2),
            "deadline_ms": round(
                1e3 * CONTROL_DT_S * (executor.latency_steps if executor.mode == "rtc" else 1), 1
            ),
            "late_chunks": result.late_chunks,
        },
        "cerebellum": {
            "frame": percentiles_ms(result.cerebellum_ms),
            "achievable_hz": round(ticks / cerebellum_s) if cerebellum_s else 0,
            "deadline_misses": result.cerebellum_misses,
        },
    }


@contextlib.contextmanager
def _connected_robot(
    config: RunConfig, policy: ChunkPolicy, seed: int
) -> Iterator[tuple[SafeRobot, TaskInfo | None]]:
    """``config``'s robot for one episode, behind the safety layer and connected, with the
    policy's cameras and the brain's; and the simulated task's monitor (None on real arms)."""
    cameras = tuple(dict.fromkeys((*policy.config.cameras, *BRAIN_CAMERAS)))
    image_size = policy.config.image_size if policy.config.cameras else config.image_size
    with contextlib.ExitStack() as stack:
        robot: Robot
        task_info: TaskInfo | None
        if config.robot == "aloha":
            assert config.ports is not None and config.calibration is not None
            if policy.config.environment_state_dim:
                raise ValueError(
                    f"the policy {config.policy_dir} needs observation.environment_state (object "
                    "poses), which real arms do not measure: train one with "
                    "--no-environment-state"
                )
            robot = real_robot(
                config.ports, config.calibration, config.camera_devices, cameras, image_size
            )
            task_info = None
            safe = stack.enter_context(SafeRobot(robot, SafetyConfig()))
            stop_on_space(stack, safe)
        else:
            robot, task_info = stack.enter_context(
                simulated_robot(
                    config.robot,
                    config.task,
                    seed,
                    cameras,
                    image_size,
                    bool(policy.config.environment_state_dim),
                )
            )
            safety = SafetyConfig(watchdog_timeout_s=SIMULATED_WATCHDOG_S)
            safe = stack.enter_context(SafeRobot(robot, safety))
        yield safe, task_info


def run(config: RunConfig, policy: ChunkPolicy | None = None) -> dict[str, Any]:
    """Run one episode of the full stack with ``policy`` (default: loaded from
    ``config.policy_dir``); the report (module docstring)."""
    seed = config.seed if config.seed is not None else random.randrange(1_000_000, 2_000_000)
    policy = policy if policy is not None else DiTPolicy.from_pretrained(config.policy_dir)
    start = time.perf_counter()
    with _connected_robot(config, policy, seed) as (safe, task_info):
        latest = {"info": task_info() if task_info is not None else None}  # for the brain
        instruction = config.instruction or latest["info"]["instruction"]
        planner = make_planner(config.brain, lambda: latest["info"])
        audited = (
            AuditedPlanner(planner, OraclePlanner(lambda: latest["info"]))
            if task_info is not None
            else None
        )
        brain = BrainRunner(
            audited or planner,
            instruction,
            BrainRunnerConfig(
                subtask_retries=config.subtask_retries,
                max_replans=config.max_replans,
                done_confirmations=config.done_confirmations,
                trace_dir=config.out / f"trace_seed{seed}",
            ),
        )

        def film(observation: Any, info: dict[str, Any] | None) -> None:
            latest["info"] = info
            subtask = brain.current_subtask()
            caption = f"{brain.phase}: {subtask.text if subtask else '-'}"
            if info is not None:
                caption += f"  |  stage {info['stage']}/{info['max_stage']}"
            writer.write(mosaic(observation.images, caption, columns=len(observation.images)))

        simulated = task_info is not None
        config.out.mkdir(parents=True, exist_ok=True)
        name = config.task if config.robot != "aloha" else "aloha"
        video = config.out / f"{name}_seed{seed}.mp4"
        writer = Mp4Writer(video, fps=round(1 / CONTROL_DT_S))
        try:
            with brain:
                result = run_episode(
                    safe,
                    policy,
                    config.executor,
                    max_frames=make_task(config.task).max_episode_steps
                    if simulated
                    else round(config.seconds / CONTROL_DT_S),
                    task_info=task_info,
                    generator=torch.Generator().manual_seed(seed),
                    pace=not simulated,
                    on_frame=film,
                    brain=brain,
                    scene_objects=scene_objects(latest["info"]["subtasks"]) if simulated else None,
                )
        finally:
            writer.close()
        final = task_info() if task_info is not None else None
    return {
        "task": config.task if simulated else None,
        "robot": config.robot,
        "seed": seed,
        "instruction": instruction,
        "brain": config.brain,
        "max_replans": config.max_replans,
        "success": bool(final["is_success"]) if final is not None else brain.phase == "done",
        "success_judged_by": "task" if final is not None else "brain",
        "subtasks_done": result.subtasks_done,
        "subtasks": len(final["subtasks"]) if final is not None else None,
        "stage": final["stage"] if final is not None else None,
        "brain_phase": brain.phase,
        "frames": result.frames,
        "held_frames": result.held_frames,
        "late_frames": result.late_frames,
        "video": str(video),
        "trace": str(config.out / f"trace_seed{seed}"),
        "brain_audit": audited.audit.summary(brain.decisions) if audited else None,
        "timing": layer_timing(result, brain.decisions, config.executor),
        "safety_interventions": safe.intervention_counts(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_episodes(config: RunConfig, seeds: list[int]) -> dict[str, Any]:
    """Run the full stack once per seed (one after the other, so each layer's timing is
    measured on an otherwise idle machine); the summary over the episodes, also written with
    every episode's report to ``out/<task>_<brain kind>_replans<max_replans>.json``.

    The summary: success rate with its 95 % Wilson interval, the mean fraction of the task's
    subtasks the brain reported done, and, over all episodes, the late policy chunks, the
    cerebellum's deadline misses and its p99 frame time, the policy's p99 inference time, and
    the brain's audit (its checks against the task's ground truth) summed.
    """
    reports = []
    progress = tqdm(seeds, desc=f"run {config.task}", unit="episode")
    for seed in progress:
        reports.append(run(replace(config, seed=seed)))
        progress.set_postfix(success=sum(r["success"] for r in reports))
    successes = sum(r["success"] for r in reports)
    low, high = wilson_interval(successes, len(reports))
    timing = [r["timing"] for r in reports]
    summary = {
        "task": config.task,
        "brain": config.brain,
        "max_replans": config.max_replans,
        "episodes": len(reports),
        "success_rate": round(successes / max(len(reports), 1), 4),
        "ci95": [round(low, 4), round(high, 4)],
        "subtasks_done_fraction": round(
            float(np.mean([r["subtasks_done"] / r["subtasks"] for r in reports])), 4
        ),
        "late_chunks": sum(t["policy"]["late_chunks"] for t in timing),
        "cerebellum_deadline_misses": sum(t["cerebellum"]["deadline_misses"] for t in timing),
        "cerebellum_frame_p99_ms": max(t["cerebellum"]["frame"]["p99_ms"] for t in timing),
        "policy_inference_p99_ms": max(t["policy"]["inference"]["p99_ms"] for t in timing),
        "brain_audit": total_audit([r["brain_audit"] for r in reports]),
        "failed_seeds": [r["seed"] for r in reports if not r["success"]],
    }
    kind = config.brain.partition(":")[0]
    (config.out / f"{config.task}_{kind}_replans{config.max_replans}.json").write_text(
        json.dumps({"summary": summary, "episodes": reports}, indent=1)
    )
    return summary

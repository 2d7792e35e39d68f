"""The control loop every rollout runs: policy → chunk executor → cerebellum → robot.

Every 50 Hz frame (``CONTROL_DT_S`` = 20 ms):

1. the robot is observed, and the last n observations are stacked (the policy's history);
2. the chunk executor gives the frame's action and the ones after it, from the policy's chunks
   (predicted from the history and the text of the subtask in progress);
3. the cerebellum turns them into ten commands, one per 2 ms tick (500 Hz): the joint
   cerebellum (MPC over the next 0.4 s, then the safety QP) for joint actions, the end-effector
   one (WBC 0.4 s ahead, then the MPC) for end-effector actions;
4. the robot gets every k-th of them, k = 500 Hz / ``command_hz`` (a simulated robot takes all
   ten; ALOHA's followers take one per frame at 50 Hz), each held for 1 / command_hz seconds.

With a brain (``BrainRunner``), the subtask text is the brain's current subtask: each frame the
loop hands it the observation and reads its decision, never waiting for it; while the brain
says ``hold`` (planning, or a subtask past its budget without a verdict) the robot holds still,
and the episode ends when the brain reports every subtask done or gives up (without a brain, a
simulated episode ends on success).

The loop knows only the ``Robot`` interface; which robot it drives (simulation, emulated or
real arms, with or without the safety layer) is the caller's choice. With ``pace=True`` each
frame starts 20 ms after the previous one on the wall clock (real arms); without, the loop runs
as fast as the robot answers (a simulation that advances with each command).

Example:
    with SimRobot(SimRobotConfig(task="TransferCube", seed=3)) as robot:
        result = run_episode(robot, policy, ExecutorConfig(), task_info=robot.task_info)
    result.success, result.frames
"""

import contextlib
import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import mujoco
import numpy as np
import torch

from kinema.aloha import JOINT_INDICES
from kinema.controllers.action_spaces import END_EFFECTOR_POSITION_INDICES, end_effector_targets
from kinema.controllers.cerebellum import EndEffectorCerebellum, JointCerebellum
from kinema.controllers.mpc import sample_chunk
from kinema.hardware.robot import Robot, RobotObservation
from kinema.policies.brain.runtime import BrainRunner
from kinema.policies.brain.types import BrainObservation
from kinema.policies.dit.config import DiTConfig
from kinema.policies.executor import ChunkExecutor, ExecutorConfig
from kinema.sim.env import subtask_in_progress
from kinema.sim.model import build_model
from kinema.sim.simulation import CONTROL_DT_S, PHYSICS_STEPS_PER_CONTROL
from kinema.types import ActionChunk, JointCommand

TICK_HZ = PHYSICS_STEPS_PER_CONTROL / CONTROL_DT_S
"""The cerebellum's rate: 500 ticks per second."""

TaskInfo = Callable[[], dict[str, Any]]
"""Gives the task's state (``is_success``, ``stage``, ``max_stage``, ``subtasks``,
``subtasks_done``), as ``AlohaEnv``'s info holds it."""

FrameCallback = Callable[[RobotObservation, dict[str, Any] | None], None]


class ChunkPolicy(Protocol):
    """What the loop needs of a policy (``DiTPolicy`` is one): its configuration (the action
    space and the observation history it wants) and one chunk per call."""

    config: DiTConfig

    def predict_chunk(
        self,
        observation: dict[str, np.ndarray],
        subtask: str,
        time_s: float = 0.0,
        generator: torch.Generator | None = None,
        prefix: np.ndarray | None = None,
    ) -> ActionChunk: ...


class JointDriver:
    """Joint-space chunks → 500 Hz commands: the MPC follows the next 0.4 s of actions."""

    def __init__(self, model: mujoco.MjModel):
        self.cerebellum = JointCerebellum(model)
        self.lookahead_frames = self.cerebellum.config.mpc.horizon_steps + 1

    def reset(self, configuration: np.ndarray) -> None:
        self.cerebellum.reset(configuration)

    def commands(self, upcoming: np.ndarray) -> list[JointCommand]:
        """The frame's ``PHYSICS_STEPS_PER_CONTROL`` commands; ``upcoming[k]`` is the action
        for the end of the k-th frame from now."""
        mpc = self.cerebellum.config.mpc
        return [
            self.cerebellum.tick(
                sample_chunk(upcoming, CONTROL_DT_S, CONTROL_DT_S, tick * mpc.tick_dt_s, mpc)
            )
            for tick in range(PHYSICS_STEPS_PER_CONTROL)
        ]


class EndEffectorDriver:
    """End-effector chunks → 500 Hz commands: each tick the cerebellum gets the gripper poses
    wanted one look-ahead horizon (0.4 s) later, interpolated between the chunk's actions
    (positions and 6-D rotations linearly, then re-orthonormalised)."""

    def __init__(self, model: mujoco.MjModel):
        self.cerebellum = EndEffectorCerebellum(model)
        mpc = self.cerebellum.config.mpc
        self.horizon_s = mpc.horizon_steps * mpc.horizon_dt_s
        self.lookahead_frames = mpc.horizon_steps + 2

    def reset(self, configuration: np.ndarray) -> None:
        self.cerebellum.reset(configuration)

    def commands(self, upcoming: np.ndarray) -> list[JointCommand]:
        """As ``JointDriver.commands``, for (frames, 20) end-effector actions."""
        tick_s = self.cerebellum.config.mpc.tick_dt_s
        commands = []
        for tick in range(PHYSICS_STEPS_PER_CONTROL):
            position = (tick * tick_s + self.horizon_s) / CONTROL_DT_S - 1.0
            below = int(np.clip(np.floor(position), 0, len(upcoming) - 2))
            fraction = float(np.clip(position - below, 0.0, 1.0))
            row = (1 - fraction) * upcoming[below] + fraction * upcoming[below + 1]
            left, right, openings = end_effector_targets(row)
            commands.append(self.cerebellum.tick(left, right, openings))
        return commands


def make_driver(action_space: str, model: mujoco.MjModel) -> JointDriver | EndEffectorDriver:
    """The cerebellum driver for the policy's action space ("joint" or "end_effector")."""
    return EndEffectorDriver(model) if action_space == "end_effector" else JointDriver(model)


class ObservationHistory:
    """The last n observations, stacked per feature ((n, ...) arrays); the first is repeated
    to fill the history at the start of an episode."""

    def __init__(self, steps: int):
        self.frames: deque[dict[str, np.ndarray]] = deque(maxlen=steps)

    def push(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.frames:
            self.frames.extend([observation] * self.frames.maxlen)
        self.frames.append(observation)
        return {key: np.stack([frame[key] for frame in self.frames]) for key in observation}


def command_stride(command_hz: float) -> int:
    """k: a robot taking ``command_hz`` commands per second gets every k-th of the cerebellum's
    500 Hz commands (k = 500 Hz / command_hz, which must divide the ten ticks of a frame)."""
    stride = TICK_HZ / command_hz
    if not np.isclose(stride, round(stride)) or PHYSICS_STEPS_PER_CONTROL % round(stride):
        raise ValueError(
            f"command_hz must be 500 Hz / k with k dividing {PHYSICS_STEPS_PER_CONTROL} (50, 100, "
            f"250 or 500 Hz), got {command_hz}"
        )
    return round(stride)


@dataclass
class EpisodeResult:
    """What one rollout did.

    Attributes:
        success: the task succeeded (None when nothing tells: a real robot without a monitor).
        frames: 50 Hz frames run.
        stage_fraction: the largest stage reached over the task's stages (None as above).
        executed: (frames, A) the executed action of each frame.
        handover_frames: frames where a new chunk took over.
        predictions: chunks predicted.
        inference_ms: each prediction's time, milliseconds.
        late_chunks: predictions that took longer than the time their chunk allowed: with
            real-time chunking ``latency_steps`` frames (the frames the old chunk keeps running
            while the new one is computed), otherwise one frame (the loop waits for it); the
            first chunk of an episode, and the first after a hold, are predicted while the arms
            stand still and have no deadline.
        cerebellum_ms: each frame's cerebellum time (the frame's ten 500 Hz commands),
            milliseconds.
        cerebellum_misses: frames whose cerebellum time exceeded the frame (20 ms), so that
            its last commands would have been late on a real-time clock.
        late_frames: frames that began later than their 20 ms slot (``pace=True`` only).
        held_frames: frames the robot held still because the brain said so.
        subtasks_done: the brain's subtasks reported done (with a brain).
    """

    success: bool | None
    frames: int
    stage_fraction: float | None
    executed: np.ndarray
    handover_frames: list[int]
    predictions: int
    inference_ms: list[float] = field(default_factory=list)
    late_chunks: int = 0
    cerebellum_ms: list[float] = field(default_factory=list)
    cerebellum_misses: int = 0
    late_frames: int = 0
    held_frames: int = 0
    subtasks_done: int = 0

    def jumps(self, action_space: str) -> tuple[float, float]:
        """(largest frame-to-frame change at chunk hand-overs, median change elsewhere) of the
        executed actions: arm joints in rad (joint actions) or gripper positions in m."""
        moving = JOINT_INDICES if action_space == "joint" else END_EFFECTOR_POSITION_INDICES
        trajectory = self.executed[:, moving]
        if len(trajectory) < 2:
            return 0.0, 0.0
        jumps = np.abs(np.diff(trajectory, axis=0)).max(axis=1)
        handovers = [f - 1 for f in self.handover_frames if 0 < f < len(trajectory)]
        elsewhere = np.delete(jumps, handovers)
        return (
            float(jumps[handovers].max()) if handovers else 0.0,
            float(np.median(elsewhere)) if len(elsewhere) else 0.0,
        )


@contextlib.contextmanager
def short_gc_pauses() -> Iterator[None]:
    """Keep Python's full garbage-collection passes out of the control loop's way.

    A full (generation 2) pass walks every object the process tracks: with PyTorch, MuJoCo,
    lerobot and two models loaded, 237 ms, longer than any chunk may take (two such passes in
    50 ``kinema run`` episodes on SortCubes, each a late chunk or a policy p99 near 200 ms).
    Everything alive when the episode starts is frozen (``gc.freeze``: left out of later passes),
    so a pass during the episode walks only what the episode made; it is unfrozen when the
    episode ends, so the objects of a finished episode can still be collected. (No collection
    first: it would cost the same 230 ms at every episode's start, and garbage frozen with the
    rest only waits one episode longer.)
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@short_gc_pauses()
def run_episode(
    robot: Robot,
    policy: ChunkPolicy,
    executor_config: ExecutorConfig,
    max_frames: int,
    task_info: TaskInfo | None = None,
    instruction: str = "",
    generator: torch.Generator | None = None,
    pace: bool = False,
    on_frame: FrameCallback | None = None,
    brain: BrainRunner | None = None,
    scene_objects: tuple[str, ...] | None = None,
) -> EpisodeResult:
    """Run ``policy`` on the connected ``robot`` for up to ``max_frames`` frames (module
    docstring). The subtask text is the started ``brain``'s current subtask when one is given
    (``scene_objects``: what it may name), else the task's subtask in progress when
    ``task_info`` is given (the episode then ends on success), else ``instruction``. The
    executor executes ``executor_config.executed_steps`` actions of a chunk, or the policy's
    own ``config.executed_steps`` where that is None."""
    executor_config = executor_config.for_policy(policy.config.executed_steps)
    stride = command_stride(robot.description.command_hz)
    driver = make_driver(policy.config.action_space, build_model(""))
    observation = robot.observe()
    driver.reset(observation.position)
    history = ObservationHistory(policy.config.observation_steps)
    info = task_info() if task_info is not None else None
    inference_ms: list[float] = []
    late_chunks = 0
    chunk_deadline_ms = (
        1e3 * CONTROL_DT_S * (executor_config.latency_steps if executor_config.mode == "rtc" else 1)
    )

    def subtask_text() -> str:
        if brain is not None:
            subtask = brain.current_subtask()
        else:
            subtask = subtask_in_progress(info) if info is not None else None
        return subtask.text if subtask is not None else instruction

    def predict(stacked: dict, prefix: np.ndarray | None) -> np.ndarray:
        nonlocal late_chunks
        text = subtask_text()
        start = time.perf_counter()
        chunk = policy.predict_chunk(
            stacked, text, observation.timestamp_s, generator=generator, prefix=prefix
        )
        elapsed_ms = 1e3 * (time.perf_counter() - start)
        inference_ms.append(elapsed_ms)
        if executor.current is not None and elapsed_ms > chunk_deadline_ms:
            late_chunks += 1  # a chunk was running that this one had to take over in time
        return chunk.actions

    executor = ChunkExecutor(predict, executor_config)
    executors = [(0, executor)]  # (first executed frame, executor): a new one after each hold
    executed, stages, late, held, frame = [], [], 0, 0, 0
    cerebellum_ms: list[float] = []
    next_frame_s = time.monotonic()
    for _ in range(max_frames):
        if brain is not None:
            brain.update(
                BrainObservation(observation.images, observation.timestamp_s, scene_objects)
            )
            if brain.phase in ("done", "gave_up"):
                break
        if brain is not None and brain.hold:
            held += 1
            for _ in range(PHYSICS_STEPS_PER_CONTROL // stride):
                robot.hold()
            driver.reset(robot.read_position())
            if frame:  # after the hold, chunks start afresh from where the arms stand
                executor, frame = ChunkExecutor(predict, executor_config), 0
                executors.append((len(executed), executor))
        else:
            stacked = history.push(observation.as_policy_input())
            upcoming = executor.actions(stacked, frame, driver.lookahead_frames)
            frame += 1
            executed.append(upcoming[0])
            start = time.perf_counter()
            commands = driver.commands(upcoming)
            cerebellum_ms.append(1e3 * (time.perf_counter() - start))
            for command in commands[stride - 1 :: stride]:
                robot.command(command)
        if pace:
            next_frame_s += CONTROL_DT_S
            wait_s = next_frame_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            else:
                late += 1
        observation = robot.observe()
        if task_info is not None:
            info = task_info()
            stages.append(info["stage"] / info["max_stage"])
        if on_frame is not None:
            on_frame(observation, info)
        if brain is None and info is not None and info["is_success"]:
            break
    return EpisodeResult(
        success=bool(info["is_success"]) if info is not None else None,
        frames=len(executed),
        stage_fraction=max(stages) if stages else None,
        executed=np.array(executed).reshape(len(executed), policy.config.action_dim),
        handover_frames=[first + f for first, ex in executors for f in ex.handover_frames],
        predictions=sum(ex.predictions for _, ex in executors),
        inference_ms=inference_ms,
        late_chunks=late_chunks,
        cerebellum_ms=cerebellum_ms,
        cerebellum_misses=sum(ms > 1e3 * CONTROL_DT_S for ms in cerebellum_ms),
        late_frames=late,
        held_frames=held,
        subtasks_done=brain.subtasks_done if brain is not None else 0,
    )

"""Scenes rendered from the simulation for the embedded brain: what it learns to plan and check.

Two kinds of episode, by seed:

- *reset scenes*: the scene right after ``reset`` (the cameras, the instruction's ground-truth
  plan), which is all a first plan sees. Cheap, so there are many.
- *expert episodes*: the task's scripted expert (``kinema.sim.experts.ExpertDriver``) runs the
  episode and a frame is kept every ``frame_every_s`` (random phase) with
  ``info["subtasks_done"]``, the ground truth of every check, until ``hold_after_s`` after the
  expert has finished (so the last subtask is seen done, not only undone). A fraction
  ``perturbed_fraction`` of the episodes is disturbed (``Perturbation``): both grippers open
  for a while (the object drops), one arm's waist is shoved off its path (grasps and placements
  miss), or the arms stop short and hold still. Then "not yet" is also seen late in an episode,
  with later subtasks under way or done.

Images are uint8 (H, W, 3) per camera, all cameras of a frame rendered in one pass
(``kinema.sim.rendering.CameraRenderer``). A ``Scenes`` set is saved as one ``.npz``.

Example:
    config = ScenesConfig(expert_episodes={"TransferCube": 2}, reset_scenes={"TransferCube": 8})
    scenes = generate_scenes(config)
    scenes.save(Path("outputs/brain/scenes.npz"))
    frames = scene_episode(env, renderer, "TransferCube", seed=100_000,
                           perturbation=draw_perturbation("TransferCube", 100_000, 0.5))
"""

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from kinema.aloha import arm_slice
from kinema.sim.env import AlohaEnv
from kinema.sim.experts import ExpertDriver
from kinema.sim.rendering import CameraRenderer
from kinema.sim.simulation import CONTROL_DT_S
from kinema.sim.tasks import TASKS
from kinema.types import Subtask

CAMERAS: tuple[str, ...] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
"""The cameras scenes are rendered from; the first is the overview a plan is made from."""

IMAGE_SIZE: tuple[int, int] = (96, 128)
"""(height, width) of every image, pixels."""

MAX_SUBTASKS = 4
"""The longest ground-truth plan of a simulated task."""

PerturbationKind = Literal["drop", "shove", "stop"]


@dataclass(frozen=True)
class Perturbation:
    """A disturbance of the expert's servo commands from ``start_s`` for ``duration_s``.

    Attributes:
        kind: "drop": both grippers commanded open; "shove": ``arm``'s waist offset by
            ``amplitude_rad`` · sin(π (t − start) / duration); "stop": the arms hold the last
            command, and the episode ends when the duration is over.
        start_s: when it begins, s after reset.
        duration_s: how long it lasts, s.
        arm: the shoved arm ("shove" only).
        amplitude_rad: the largest waist offset, rad ("shove" only).
    """

    kind: PerturbationKind
    start_s: float
    duration_s: float
    arm: Literal["left", "right"] = "left"
    amplitude_rad: float = 0.0

    def active(self, time_s: float) -> bool:
        return self.start_s <= time_s < self.start_s + self.duration_s

    def apply(self, commands: np.ndarray, time_s: float, last_sent: np.ndarray) -> np.ndarray:
        """The (ticks, 14) servo commands of the frame ending at ``time_s``, disturbed;
        ``last_sent`` is the (14,) command sent last before this frame."""
        if not self.active(time_s):
            return commands
        disturbed = commands.copy()
        if self.kind == "drop":
            disturbed[:, [arm_slice("left").stop - 1, arm_slice("right").stop - 1]] = 1.0
        elif self.kind == "shove":
            phase = np.pi * (time_s - self.start_s) / self.duration_s
            disturbed[:, arm_slice(self.arm).start] += self.amplitude_rad * np.sin(phase)
        else:
            disturbed[:] = last_sent
        return disturbed


def draw_perturbation(task: str, seed: int, fraction: float) -> Perturbation | None:
    """The perturbation of episode ``seed`` of ``task`` (None: undisturbed, with probability
    1 − fraction), starting at a uniform time in [0.5 s, 60 % of the task's step limit]."""
    rng = np.random.default_rng([seed, 2])
    if rng.random() >= fraction:
        return None
    start_s = float(rng.uniform(0.5, 0.6 * TASKS[task].max_episode_steps * CONTROL_DT_S))
    kind: PerturbationKind = ("drop", "shove", "stop")[int(rng.integers(3))]
    if kind == "drop":
        return Perturbation("drop", start_s, float(rng.uniform(0.6, 1.5)))
    if kind == "shove":
        amplitude = float(rng.uniform(0.15, 0.3) * rng.choice([-1.0, 1.0]))
        arm = ("left", "right")[int(rng.integers(2))]
        return Perturbation("shove", start_s, float(rng.uniform(1.0, 2.0)), arm, amplitude)
    return Perturbation("stop", start_s, float(rng.uniform(1.0, 2.0)))


@dataclass(frozen=True)
class SceneFrame:
    """One kept frame of an expert episode.

    Attributes:
        images: camera → uint8 (H, W, 3).
        time_s: seconds after reset.
        subtasks_done: the task's predicate for each subtask of the plan, at this frame.
    """

    images: dict[str, np.ndarray]
    time_s: float
    subtasks_done: tuple[bool, ...]


def scene_episode(
    env: AlohaEnv,
    renderer: CameraRenderer,
    task: str,
    seed: int,
    perturbation: Perturbation | None = None,
    frame_every_s: float = 0.3,
    hold_after_s: float = 1.0,
) -> list[SceneFrame]:
    """Run the expert on ``env`` (made with ``terminate_on_success=False``) for episode
    ``seed``, disturbed by ``perturbation``; the frame at reset and one every ``frame_every_s``
    after it (random phase), until ``hold_after_s`` after the expert finished, the
    perturbation stopped the arms, or the task's step limit."""
    driver = ExpertDriver(task)
    _, info = driver.start(env, seed)
    frames = [SceneFrame(renderer.render(env.sim.data), 0.0, info["subtasks_done"])]
    every = max(1, round(frame_every_s / CONTROL_DT_S))
    phase = int(np.random.default_rng([seed, 3]).integers(every))
    last_sent = env.sim.joint_state()
    end_s = float("inf")
    for frame in range(1, env.task.max_episode_steps + 1):
        time_s = frame * CONTROL_DT_S
        commands = driver.next_frame()
        if perturbation is not None:
            commands = perturbation.apply(commands, time_s, last_sent)
            if perturbation.kind == "stop":
                end_s = min(end_s, perturbation.start_s + perturbation.duration_s)
        _, _, _, _, info = env.step_ticks(commands)
        last_sent = commands[-1]
        if frame % every == phase:
            frames.append(SceneFrame(renderer.render(env.sim.data), time_s, info["subtasks_done"]))
        if driver.finished:
            end_s = min(end_s, time_s + hold_after_s)
        if time_s >= end_s:
            break
    return frames


@dataclass(frozen=True)
class ScenesConfig:
    """What ``generate_scenes`` renders.

    Attributes:
        expert_episodes: expert episodes per task, seeds ``first_seed`` onwards.
        reset_scenes: reset scenes per task, seeds ``first_seed`` onwards.
        first_seed: the first seed (held-out evaluation seeds start at 100 000).
        perturbed_fraction: the share of expert episodes that are disturbed.
        frame_every_s: seconds between kept frames of an expert episode.
        cameras: cameras of expert frames; reset scenes keep only the first.
        image_size: (height, width) in pixels.
        workers: worker processes (0: one per CPU core).
    """

    expert_episodes: dict[str, int] = field(
        default_factory=lambda: dict(TransferCube=30, Insertion=24, SortCubes=80, StackBlocks=80)
    )
    reset_scenes: dict[str, int] = field(
        default_factory=lambda: dict(
            TransferCube=200, Insertion=200, SortCubes=3000, StackBlocks=2000
        )
    )
    first_seed: int = 0
    perturbed_fraction: float = 0.5
    frame_every_s: float = 0.3
    cameras: tuple[str, ...] = CAMERAS
    image_size: tuple[int, int] = IMAGE_SIZE
    workers: int = 0


@dataclass(frozen=True, eq=False)
class Scenes:
    """Rendered episodes and their ground truth, as arrays.

    Attributes:
        tasks: (E,) task name of each episode.
        seeds: (E,) seed of each episode.
        plans: (E,) the ground-truth plan of each episode.
        perturbations: (E,) "none", "reset" (a reset scene) or the perturbation kind.
        first_images: (E, H, W, 3) uint8 first-camera image at reset, per episode.
        frame_episode: (N,) the episode of each expert frame.
        frame_time_s: (N,) seconds after reset.
        frame_done: (N, MAX_SUBTASKS) int8: 1 done, 0 not yet, −1 no such subtask.
        frame_images: (N, cameras, H, W, 3) uint8.
        cameras: the cameras of ``frame_images``, in order.
    """

    tasks: tuple[str, ...]
    seeds: np.ndarray
    plans: tuple[tuple[Subtask, ...], ...]
    perturbations: tuple[str, ...]
    first_images: np.ndarray
    frame_episode: np.ndarray
    frame_time_s: np.ndarray
    frame_done: np.ndarray
    frame_images: np.ndarray
    cameras: tuple[str, ...]

    def save(self, path: Path) -> None:
        """Write one uncompressed ``.npz`` (atomically: a temporary file, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "tasks": self.tasks,
            "plans": [[asdict(s) for s in plan] for plan in self.plans],
            "perturbations": self.perturbations,
            "cameras": self.cameras,
        }
        staging = path.with_name(f"{path.name}.tmp-{os.getpid()}.npz")
        np.savez(
            staging,
            meta=np.array(json.dumps(meta)),
            seeds=self.seeds,
            first_images=self.first_images,
            frame_episode=self.frame_episode,
            frame_time_s=self.frame_time_s,
            frame_done=self.frame_done,
            frame_images=self.frame_images,
        )
        os.replace(staging, path)

    @classmethod
    def load(cls, path: Path) -> "Scenes":
        """The set ``save`` wrote to ``path``."""
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in data.files if name != "meta"}
        return cls(
            tasks=tuple(meta["tasks"]),
            plans=tuple(tuple(Subtask(**s) for s in plan) for plan in meta["plans"]),
            perturbations=tuple(meta["perturbations"]),
            cameras=tuple(meta["cameras"]),
            **arrays,
        )

    @classmethod
    def concatenate(cls, parts: Sequence["Scenes"]) -> "Scenes":
        """One set holding the episodes of ``parts`` in order (cameras must agree)."""
        if not parts or any(p.cameras != parts[0].cameras for p in parts):
            raise ValueError("Scenes.concatenate: expected parts with the same cameras")
        offsets = np.cumsum([0] + [len(p.tasks) for p in parts[:-1]])
        return cls(
            tasks=tuple(t for p in parts for t in p.tasks),
            seeds=np.concatenate([p.seeds for p in parts]),
            plans=tuple(plan for p in parts for plan in p.plans),
            perturbations=tuple(k for p in parts for k in p.perturbations),
            first_images=np.concatenate([p.first_images for p in parts]),
            frame_episode=np.concatenate(
                [p.frame_episode + o for p, o in zip(parts, offsets, strict=True)]
            ),
            frame_time_s=np.concatenate([p.frame_time_s for p in parts]),
            frame_done=np.concatenate([p.frame_done for p in parts]),
            frame_images=np.concatenate([p.frame_images for p in parts]),
            cameras=parts[0].cameras,
        )


def _render_job(
    task: str, seeds: list[int], expert: bool, config: ScenesConfig
) -> tuple[Scenes, int]:
    """The scenes of ``seeds`` (expert episodes, or reset scenes), and how many seeds."""
    env = AlohaEnv(task, terminate_on_success=False)
    cameras = config.cameras if expert else config.cameras[:1]
    renderer = CameraRenderer(env.sim.model, cameras, config.image_size)
    height, width = config.image_size
    plans, kinds, firsts = [], [], []
    frame_episode, frame_time, frame_done, frame_images = [], [], [], []
    try:
        for index, seed in enumerate(seeds):
            if expert:
                perturbation = draw_perturbation(task, seed, config.perturbed_fraction)
                frames = scene_episode(
                    env, renderer, task, seed, perturbation, config.frame_every_s
                )
                kinds.append("none" if perturbation is None else perturbation.kind)
                for frame in frames:
                    frame_episode.append(index)
                    frame_time.append(frame.time_s)
                    done = list(frame.subtasks_done)
                    frame_done.append(done + [-1] * (MAX_SUBTASKS - len(done)))
                    frame_images.append(np.stack([frame.images[c] for c in cameras]))
                firsts.append(frames[0].images[cameras[0]])
            else:
                env.reset(seed=seed)
                firsts.append(renderer.render(env.sim.data)[cameras[0]])
                kinds.append("reset")
            assert env.episode is not None
            plans.append(env.episode.subtasks)
    finally:
        renderer.close()
        env.close()
    empty = np.zeros((0, len(config.cameras), height, width, 3), np.uint8)
    scenes = Scenes(
        tasks=(task,) * len(seeds),
        seeds=np.array(seeds, np.int64),
        plans=tuple(plans),
        perturbations=tuple(kinds),
        first_images=np.stack(firsts),
        frame_episode=np.array(frame_episode, np.int64),
        frame_time_s=np.array(frame_time, np.float32),
        frame_done=np.array(frame_done, np.int8).reshape(-1, MAX_SUBTASKS),
        frame_images=np.stack(frame_images) if frame_images else empty,
        cameras=config.cameras,
    )
    return scenes, len(seeds)


def generate_scenes(config: ScenesConfig, chunk: int = 4) -> Scenes:
    """Render the reset scenes and expert episodes of ``config`` on worker processes
    (``chunk`` expert episodes, or 50 × ``chunk`` reset scenes, per job), with a progress bar."""
    jobs = []
    for expert, counts in ((True, config.expert_episodes), (False, config.reset_scenes)):
        size = chunk if expert else 50 * chunk
        for task, count in counts.items():
            seeds = list(range(config.first_seed, config.first_seed + count))
            jobs += [(task, seeds[i : i + size], expert) for i in range(0, count, size)]
    total = sum(len(seeds) for _, seeds, _ in jobs)
    workers = config.workers or os.cpu_count() or 1
    parts: dict[int, Scenes] = {}
    progress = tqdm(total=total, desc="brain scenes", unit="episode")
    # Spawned, not forked: rendering contexts and BLAS threads do not survive a fork.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(_render_job, task, seeds, expert, config): i
            for i, (task, seeds, expert) in enumerate(jobs)
        }
        for future in as_completed(futures):
            parts[futures[future]], count = future.result()
            progress.update(count)
    progress.close()
    return Scenes.concatenate([parts[i] for i in range(len(jobs))])

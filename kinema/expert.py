"""``kinema expert``: run a task's scripted expert over many seeds and report its success rate.

Episodes run on worker processes (each builds its own environment); the optional video shows the
first episode's four cameras in a mosaic, captioned with the current subtask and stage. The last
line printed is one JSON object: task, episodes, success_rate and the details.
"""

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from kinema.sim import env_id
from kinema.sim.env import IMAGE_KEY_PREFIX, subtask_in_progress
from kinema.sim.experts import ExpertEpisode, run_expert_episode
from kinema.sim.rendering import ALOHA_CAMERAS
from kinema.sim.simulation import CONTROL_DT_S
from kinema.video import Mp4Writer, mosaic


@dataclass(frozen=True)
class ExpertRunConfig:
    """What ``kinema expert`` runs.

    Attributes:
        task: task name, e.g. "TransferCube".
        episodes: number of episodes, with seeds ``first_seed`` … ``first_seed + episodes − 1``.
        first_seed: seed of the first episode.
        workers: worker processes (0: as many as CPU cores).
        video: where to write an MP4 of the first episode, or None.
        image_size: (height, width) of each camera in the video, in pixels.
    """

    task: str = "TransferCube"
    episodes: int = 10
    first_seed: int = 0
    workers: int = 0
    video: Path | None = None
    image_size: tuple[int, int] = (240, 320)


def _episode(task: str, seed: int) -> tuple[int, ExpertEpisode]:
    env = gym.make(env_id(task)).unwrapped
    try:
        return seed, run_expert_episode(env, task, seed)
    finally:
        env.close()


def record_episode(config: ExpertRunConfig, seed: int) -> ExpertEpisode:
    """Run one whole episode with the cameras on and write it to ``config.video``."""
    assert config.video is not None
    # Filmed to the end of the demonstration, not cut at the first frame that counts as success.
    env = gym.make(
        env_id(config.task),
        cameras=list(ALOHA_CAMERAS),
        image_size=config.image_size,
        terminate_on_success=False,
    ).unwrapped
    with Mp4Writer(config.video, fps=round(1 / CONTROL_DT_S)) as video:

        def write_frame(observation: dict, action: np.ndarray, info: dict) -> None:
            caption = f"expert  |  stage {info['stage']}/{info['max_stage']}  |  "
            pending = subtask_in_progress(info)
            if info["is_success"]:
                caption += "task done"
            elif pending is not None:
                caption += pending.text
            images = {c: observation[IMAGE_KEY_PREFIX + c] for c in ALOHA_CAMERAS}
            video.write(mosaic(images, caption))

        episode = run_expert_episode(env, config.task, seed, on_frame=write_frame)
    env.close()
    return episode


def run(config: ExpertRunConfig) -> dict[str, object]:
    """Run the episodes (see ``ExpertRunConfig``) and return the summary."""
    seeds = list(range(config.first_seed, config.first_seed + config.episodes))
    results: dict[int, ExpertEpisode] = {}
    start = time.perf_counter()
    if config.video is not None and seeds:
        results[seeds[0]] = record_episode(config, seeds[0])
    remaining = [s for s in seeds if s not in results]
    workers = config.workers or os.cpu_count() or 1
    progress = tqdm(
        total=len(seeds), initial=len(results), desc=f"{config.task} expert", unit="episode"
    )
    # Spawned, not forked: the parent may hold threads (rendering, BLAS) a fork would copy.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for seed, episode in pool.map(_episode, [config.task] * len(remaining), remaining):
            results[seed] = episode
            progress.update()
            progress.set_postfix(success=f"{np.mean([r.success for r in results.values()]):.3f}")
    progress.close()
    failed = [s for s in seeds if not results[s].success]
    summary: dict[str, object] = {
        "task": config.task,
        "episodes": len(seeds),
        "success_rate": round(1.0 - len(failed) / max(len(seeds), 1), 4),
        "failed_seeds": failed,
        "mean_frames": round(float(np.mean([results[s].frames for s in seeds])), 1),
        "fallback_ticks": int(sum(results[s].fallbacks for s in seeds)),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if config.video is not None:
        summary["video"] = str(config.video.resolve())
    return summary


def main(config: ExpertRunConfig) -> None:
    print(json.dumps(run(config)))

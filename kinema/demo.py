"""The main job for now: the scripted expert solves a task in simulation, filmed to an MP4.

The expert plans gripper waypoints from the true object poses; the cerebellum (WBC a horizon
ahead, MPC now) turns them into 500 Hz joint commands for the simulated arms. The video shows the
four ALOHA cameras in a 2×2 mosaic, captioned with the subtask in progress and the stage. Issue 8
replaces the expert with the full stack (brain → policy → cerebellum).
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from kinema.expert import ExpertRunConfig, record_episode


@dataclass(frozen=True)
class DemoConfig:
    """What the demo rolls out and where the video goes."""

    task: str = "TransferCube"
    seed: int = 0
    image_size: tuple[int, int] = (240, 320)
    out: Path = Path("outputs/demo.mp4")


def run_demo(config: DemoConfig) -> dict[str, object]:
    """Run one filmed expert episode, return a summary."""
    start = time.perf_counter()
    episode = record_episode(
        ExpertRunConfig(task=config.task, video=config.out, image_size=config.image_size),
        config.seed,
    )
    elapsed = time.perf_counter() - start
    return {
        "task": config.task,
        "seed": config.seed,
        "success": episode.success,
        "steps": episode.frames,
        "steps_per_s": round(episode.frames / elapsed, 1),
        "video": str(config.out.resolve()),
    }


def main(config: DemoConfig) -> None:
    summary = run_demo(config)
    print(f"rollout video: {summary['video']}")
    print(json.dumps(summary))

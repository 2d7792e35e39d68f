"""The main job for now: a rollout of the simulated robot rendered to an MP4.

Until the policy and the cerebellum exist, the arms follow a scripted joint sweep: in each of six
one-second segments one joint of both arms swings out from the home pose and back along
A·sin²(πτ) (τ ∈ [0, 1] within the segment), while the grippers close and reopen. The video shows
the four ALOHA cameras in a 2×2 mosaic with the task's instruction and the step.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from kinema.aloha import ACTION_DIM, DOF_PER_ARM, HOME_POSE
from kinema.sim import env_id
from kinema.sim.env import IMAGE_KEY_PREFIX
from kinema.sim.rendering import ALOHA_CAMERAS
from kinema.sim.simulation import CONTROL_DT_S
from kinema.video import Mp4Writer, mosaic

SWEEP_AMPLITUDES_RAD = (0.6, 0.35, -0.35, 0.8, 0.6, 1.0)
"""Swing of waist, shoulder, elbow, forearm roll, wrist angle and wrist rotate, in radians."""
SEGMENT_S = 1.0


@dataclass(frozen=True)
class DemoConfig:
    """What the demo rolls out and where the video goes."""

    task: str = "TransferCube"
    seed: int = 0
    image_size: tuple[int, int] = (240, 320)
    out: Path = Path("outputs/demo.mp4")


def joint_sweep(time_s: float) -> np.ndarray:
    """The 14-vector joint target of the scripted sweep at ``time_s`` seconds (see module doc)."""
    target = HOME_POSE.copy()
    segment = min(int(time_s / SEGMENT_S), len(SWEEP_AMPLITUDES_RAD) - 1)
    tau = min(time_s / SEGMENT_S - segment, 1.0)
    swing = SWEEP_AMPLITUDES_RAD[segment] * np.sin(np.pi * tau) ** 2
    gripper = 0.5 + 0.5 * np.cos(2 * np.pi * tau)
    for start in range(0, ACTION_DIM, DOF_PER_ARM):
        target[start + segment] += swing
        target[start + DOF_PER_ARM - 1] = gripper
    return target


def sweep_duration_s() -> float:
    """Length of the whole sweep, in seconds."""
    return SEGMENT_S * len(SWEEP_AMPLITUDES_RAD)


def run_demo(config: DemoConfig) -> dict[str, object]:
    """Roll out the sweep in the task's environment, write the MP4, return a summary."""
    env = gym.make(
        env_id(config.task),
        cameras=list(ALOHA_CAMERAS),
        image_size=config.image_size,
        terminate_on_success=False,
    )
    observation, info = env.reset(seed=config.seed)
    steps = round(sweep_duration_s() / CONTROL_DT_S)
    start = time.perf_counter()
    with Mp4Writer(config.out, fps=round(1 / CONTROL_DT_S)) as video:
        for step in tqdm(range(steps), desc=f"{config.task} rollout", unit="step"):
            images = {c: observation[IMAGE_KEY_PREFIX + c] for c in ALOHA_CAMERAS}
            caption = f"step {step:3d}  |  scripted joint sweep  |  {info['instruction']}"
            video.write(mosaic(images, caption))
            observation, _, _, _, info = env.step(joint_sweep(step * CONTROL_DT_S))
    elapsed = time.perf_counter() - start
    env.close()
    return {
        "task": config.task,
        "seed": config.seed,
        "steps": steps,
        "steps_per_s": round(steps / elapsed, 1),
        "video": str(config.out.resolve()),
    }


def main(config: DemoConfig) -> None:
    summary = run_demo(config)
    print(f"rollout video: {summary['video']}")
    print(json.dumps(summary))

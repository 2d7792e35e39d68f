"""Does the policy aim where the objects are? Its waist against the scripted expert's.

A policy that ignores the object tokens still scores well on its training loss (the mean
demonstration is a smooth motion) but reaches for the average place of the object. This gauge
puts a number on it: on ``--seeds`` seeded episodes of the scripted expert, at the observations
after each of ``--frames`` actions, the policy predicts a chunk for the current subtask; its waist
angle ``--horizon`` frames ahead, for the arm that subtask names, is compared with the waist the
expert commanded at that same frame. The expert's waist differs from seed to seed only because
the objects lie elsewhere, so the least-squares slope of the policy's waist on the expert's,

    slope = cov(policy, expert) / var(expert),

is 1 for a policy that turns as far as the expert per object displacement, and 0 for one that
turns the same way whatever the scene. Also printed: the RMS waist error and the spread of the
expert's waist across seeds, in radians.

Usage:  .venv/bin/python benchmarks/policy_reads_objects.py [--task SortCubes] [--policy DIR]
        [--seeds 20] [--first-seed 100000] [--frames 35 100] [--horizon 49]
Ends with one JSON line: task, seeds, and per frame waist_slope, waist_rmse_rad,
expert_waist_std_rad.
"""

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import kinema.sim  # noqa: F401  (registers the environments)
from kinema.aloha import arm_slice
from kinema.policies.dit.policy import DiTPolicy
from kinema.policies.dit.shipped import DEFAULT_TASK, shipped_policy
from kinema.sim.env import subtask_in_progress
from kinema.sim.experts import run_expert_episode


def waists(
    policy: DiTPolicy, task: str, seed: int, frames: list[int], horizon: int
) -> list[tuple[float, float]]:
    """(policy waist, expert waist) in radians at each of ``frames`` of one expert episode."""
    env = gym.make(f"kinema/{task}-v0").unwrapped
    predicted: dict[int, tuple[int, float]] = {}  # frame → (waist index, policy's waist)
    generator = torch.Generator().manual_seed(seed)
    frame_numbers = itertools.count()

    def on_frame(observation: dict[str, np.ndarray], _: np.ndarray, info: dict[str, Any]) -> None:
        frame = next(frame_numbers)
        subtask = subtask_in_progress(info)
        if frame not in frames or subtask is None:
            return
        chunk = policy.predict_chunk(observation, subtask, generator=generator)
        waist = arm_slice(subtask.arm).start
        predicted[frame] = (waist, float(chunk.actions[horizon, waist]))

    episode = run_expert_episode(env, task, seed, on_frame=on_frame)
    env.close()
    if len(predicted) < len(set(frames)) or max(frames) + 1 + horizon >= episode.frames:
        raise ValueError(
            f"seed {seed}: the expert's episode has {episode.frames} frames, too few for frames "
            f"{frames} {horizon} frames ahead"
        )
    # the observation after frame + 1 actions is answered from action index frame + 1 on
    return [
        (value, float(episode.actions[frame + 1 + horizon, waist]))
        for frame, (waist, value) in sorted(predicted.items())
    ]


def figures(pairs: np.ndarray) -> dict[str, float]:
    """Slope of the policy's waist on the expert's, RMS error and the expert's spread."""
    policy, expert = pairs[:, 0], pairs[:, 1]
    spread = float(expert.std())
    slope = float(np.cov(policy, expert, bias=True)[0, 1] / spread**2)
    return {
        "waist_slope": slope,
        "waist_rmse_rad": float(np.sqrt(np.mean((policy - expert) ** 2))),
        "expert_waist_std_rad": spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, help="default: the one shipped for --task")
    parser.add_argument("--task", default=DEFAULT_TASK)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=100_000, help="held-out by default")
    parser.add_argument("--frames", type=int, nargs="+", default=[35, 100])
    parser.add_argument("--horizon", type=int, default=49, help="chunk step compared, frames")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = DiTPolicy.from_pretrained(args.policy or shipped_policy(args.task))
    if policy.config.cameras:
        parser.error("the gauge runs state-based policies (the expert's env renders no camera)")
    if not 0 <= args.horizon < policy.config.chunk_steps:
        parser.error(f"--horizon must lie in [0, {policy.config.chunk_steps})")
    per_seed = [
        waists(policy, args.task, seed, args.frames, args.horizon)
        for seed in tqdm(range(args.first_seed, args.first_seed + args.seeds), desc="episodes")
    ]
    pairs = np.array(per_seed)  # (seeds, frames, 2)
    report: dict[str, Any] = {"task": args.task, "seeds": args.seeds, "horizon": args.horizon}
    for index, frame in enumerate(args.frames):
        result = figures(pairs[:, index])
        print(
            f"frame {frame}: slope {result['waist_slope']:.2f} of the expert's, RMS error "
            f"{result['waist_rmse_rad']:.3f} rad, the expert's spread "
            f"{result['expert_waist_std_rad']:.3f} rad"
        )
        report[f"frame_{frame}"] = result
    print(json.dumps(report))


if __name__ == "__main__":
    main()

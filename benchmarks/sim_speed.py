"""Simulation speed: kinema's environments against gym-aloha, measured in the same run.

Figures (environment steps per second, one step = 20 ms of simulated time with every asked
camera rendered):
  (a) kinema TransferCube, 2 cameras at 96×128        goal ≥ 50 steps/s and ≥ 8× gym-aloha
  (b) kinema TransferCube, 4 cameras at 240×320
  (c) kinema TransferCube, state only (no rendering)
  peer: gym-aloha AlohaTransferCube-v0 as lerobot uses it (pinned to mujoco < 3.9, so it runs in
        its own virtual environment, .bench-venv/gym-aloha, created on first use).

Usage:  .venv/bin/python benchmarks/sim_speed.py [--steps 300] [--skip-peer]
Ends with one JSON line of the figures.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import kinema.sim  # noqa: F401  (registers the environments, selects EGL rendering)
from kinema.aloha import HOME_POSE

REPO = Path(__file__).resolve().parent.parent
PEER_VENV = REPO / ".bench-venv" / "gym-aloha"
PEER_REQUIREMENT = "gym-aloha==0.1.5"


def kinema_steps_per_s(cameras: list[str], image_size: tuple[int, int], steps: int) -> float:
    """Steps per second of kinema/TransferCube-v0 driven by a 1 Hz sine around the home pose."""
    env = gym.make("kinema/TransferCube-v0", cameras=cameras, image_size=image_size)
    env.reset(seed=0)
    for _ in range(5):  # warm up
        env.step(HOME_POSE)
    label = f"kinema {len(cameras)} cam {image_size[0]}x{image_size[1]}" if cameras else "state"
    start = time.perf_counter()
    for k in tqdm(range(steps), desc=label, leave=False):
        env.step(HOME_POSE + 0.1 * np.sin(2 * np.pi * k * 0.02))
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def ensure_peer_venv() -> Path:
    """The python of gym-aloha's virtual environment, created and installed if missing."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_VENV} with {PEER_REQUIREMENT} (once, about a minute)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_REQUIREMENT], check=True)
    return python


def gym_aloha_steps_per_s(steps: int) -> float:
    python = ensure_peer_venv()
    script = Path(__file__).parent / "peers" / "gym_aloha_speed.py"
    print(f"gym-aloha: {steps} steps", flush=True)
    result = subprocess.run(
        [str(python), str(script), str(steps)], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["gym_aloha_steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per kinema measurement")
    parser.add_argument("--peer-steps", type=int, default=60, help="steps for gym-aloha")
    parser.add_argument("--skip-peer", action="store_true", help="do not measure gym-aloha")
    args = parser.parse_args()

    figures = {
        "kinema_2cam_96x128_steps_per_s": kinema_steps_per_s(
            ["cam_high", "cam_left_wrist"], (96, 128), args.steps
        ),
        "kinema_4cam_240x320_steps_per_s": kinema_steps_per_s(
            ["cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"], (240, 320), args.steps
        ),
        "kinema_state_only_steps_per_s": kinema_steps_per_s([], (96, 128), args.steps * 10),
    }
    if not args.skip_peer:
        peer = gym_aloha_steps_per_s(args.peer_steps)
        figures["gym_aloha_steps_per_s"] = peer
        figures["speedup_2cam_vs_gym_aloha"] = figures["kinema_2cam_96x128_steps_per_s"] / peer
        figures["speedup_4cam_vs_gym_aloha"] = figures["kinema_4cam_240x320_steps_per_s"] / peer

    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:10.1f}")
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}))


if __name__ == "__main__":
    main()

"""Steps per second of gym-aloha's AlohaTransferCube-v0, as lerobot uses it (pixels + joint
positions, its stock 480×640 'top' image). Runs inside gym-aloha's own virtual environment,
started by ``benchmarks/sim_speed.py``; prints one JSON line."""

import json
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import gym_aloha  # noqa: F401  (registers the environments)
import gymnasium as gym
import numpy as np

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
env = gym.make("gym_aloha/AlohaTransferCube-v0", obs_type="pixels_agent_pos")
observation, _ = env.reset(seed=0)
action = np.asarray(observation["agent_pos"], dtype=np.float64)
for _ in range(5):  # warm up
    env.step(action)
start = time.perf_counter()
for k in range(steps):
    env.step(action + 0.1 * np.sin(2 * np.pi * k * 0.02))
elapsed = time.perf_counter() - start
print(json.dumps({"gym_aloha_steps_per_s": steps / elapsed}))

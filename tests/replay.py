"""A policy that replays a scripted demonstration open loop, for tests of what runs a policy."""

import functools

import gymnasium as gym
import numpy as np

from kinema.policies.dit.config import DiTConfig
from kinema.sim import env_id
from kinema.sim.experts import run_expert_episode
from kinema.types import ActionChunk


@functools.cache
def expert_actions(task: str, seed: int) -> np.ndarray:
    """(frames, 14) the 50 Hz actions of the task's expert on ``seed`` (which succeeds); computed
    once per test session."""
    env = gym.make(env_id(task)).unwrapped
    demonstration = run_expert_episode(env, task, seed)
    env.close()
    assert demonstration.success
    return demonstration.actions


class ReplayPolicy:
    """A policy that replays a recorded demonstration open loop: its k-th chunk holds the
    demonstration's actions from frame 25 k on (the executor asks every 25 frames)."""

    def __init__(self, actions: np.ndarray):
        self.actions = actions
        self.config = DiTConfig(cameras=(), chunk_steps=50, executed_steps=25)
        self.calls = 0

    def predict_chunk(self, observation, subtask, time_s=0.0, generator=None, prefix=None):
        frames = np.arange(25 * self.calls, 25 * self.calls + 50)
        self.calls += 1
        return ActionChunk(
            self.actions[np.minimum(frames, len(self.actions) - 1)], time_s, 0.02, "joint"
        )

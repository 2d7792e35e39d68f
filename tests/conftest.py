"""Shared fixtures. Rendering is headless (EGL) in every test."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import pytest

import kinema.sim  # noqa: F401  (registers the environments)
from kinema.sim.tasks import TASKS

TASK_NAMES = list(TASKS)


@pytest.fixture(params=TASK_NAMES)
def task_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def state_env(task_name: str):
    """A state-only environment of each task (unwrapped), closed after the test."""
    env = gym.make(f"kinema/{task_name}-v0")
    yield env
    env.close()

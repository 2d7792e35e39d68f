"""Shared fixtures. Importing kinema.sim selects headless (EGL) rendering for every test."""

import gymnasium as gym
import pytest

import kinema.sim  # noqa: F401  (registers the environments, selects EGL rendering)
from kinema.sim.tasks import TASKS

TASK_NAMES = list(TASKS)


@pytest.fixture(params=TASK_NAMES)
def task_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def state_env(task_name: str):
    """A state-only environment of each task, as gymnasium.make returns it, closed after."""
    env = gym.make(f"kinema/{task_name}-v0")
    yield env
    env.close()

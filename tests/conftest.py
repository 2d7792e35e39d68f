"""Shared fixtures. Importing kinema selects headless (EGL) rendering for every test."""

import gymnasium as gym
import pytest
from recordings import record_expert_episodes

import kinema.sim  # noqa: F401  (registers the environments)
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


@pytest.fixture(scope="session")
def recorded_dataset(tmp_path_factory):
    """Two TransferCube expert episodes (seeds 0, 1; cam_high at 48 × 64) recorded into a
    dataset, and what was recorded, frame by frame."""
    root = tmp_path_factory.mktemp("recording") / "dataset"
    return root, record_expert_episodes(root, [0, 1])

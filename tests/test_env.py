"""The gymnasium environments: registration, seeding, spaces, stepping, bad actions."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from kinema.aloha import ACTION_HIGH, ACTION_LOW, HOME_POSE
from kinema.sim import env_id
from kinema.sim.env import ENV_STATE_KEY, STATE_KEY
from kinema.sim.simulation import ActionError
from kinema.sim.tasks import TASKS
from kinema.types import Subtask


def test_every_task_is_registered():
    for name, task in TASKS.items():
        spec = gym.spec(env_id(name))
        assert spec.max_episode_steps == task.max_episode_steps


# gymnasium recommends a normalised [-1, 1] action box and finite observation bounds; ours state
# the truth instead: joint limits in radians, and object positions that are unbounded (an object
# can fall off the table).
@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")
@pytest.mark.filterwarnings("ignore:.*observation space (minimum|maximum) value is")
def test_gymnasium_env_checker_passes(task_name):
    env = gym.make(env_id(task_name), cameras=["cam_high"], image_size=(48, 64))
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_reset_is_deterministic_for_a_seed(state_env):
    first, first_info = state_env.reset(seed=7)
    again, again_info = state_env.reset(seed=7)
    other, _ = state_env.reset(seed=8)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert first_info["instruction"] == again_info["instruction"]
    assert first_info["subtasks"] == again_info["subtasks"]
    assert not np.array_equal(first[ENV_STATE_KEY], other[ENV_STATE_KEY])


def test_stepping_is_deterministic_for_a_seed(state_env):
    rng = np.random.default_rng(0)
    actions = [HOME_POSE + rng.normal(0, 0.05, HOME_POSE.shape) for _ in range(10)]
    runs = []
    for _ in range(2):
        state_env.reset(seed=3)
        runs.append([state_env.step(a)[0][STATE_KEY] for a in actions])
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))


def test_observations_and_actions_match_their_spaces(state_env):
    obs, info = state_env.reset(seed=0)
    assert state_env.observation_space.contains(obs)
    assert set(obs) == {STATE_KEY, ENV_STATE_KEY}  # no cameras asked for, no images
    np.testing.assert_array_equal(state_env.action_space.low, ACTION_LOW)
    np.testing.assert_array_equal(state_env.action_space.high, ACTION_HIGH)
    for _ in range(5):
        obs, reward, terminated, truncated, info = state_env.step(state_env.action_space.sample())
        assert state_env.observation_space.contains(obs)
        assert 0 <= reward <= info["max_stage"]
        assert isinstance(terminated, bool) and isinstance(truncated, bool)


def test_info_holds_the_plan_and_its_progress(state_env):
    _, info = state_env.reset(seed=0)
    assert info["instruction"]
    assert all(isinstance(s, Subtask) for s in info["subtasks"])
    assert info["subtasks_done"] == (False,) * len(info["subtasks"])
    assert info["stage"] == 0 and not info["is_success"]


def test_holding_home_changes_nothing_in_the_scene(state_env):
    obs, info = state_env.reset(seed=1)
    for _ in range(25):
        next_obs, *_, info = state_env.step(HOME_POSE)
    np.testing.assert_allclose(next_obs[ENV_STATE_KEY], obs[ENV_STATE_KEY], atol=1e-3)
    assert info["stage"] == 0


def test_long_horizon_tasks_need_three_or_more_subtasks():
    for name in ("SortCubes", "StackBlocks"):
        env = gym.make(env_id(name))
        counts = {len(env.reset(seed=seed)[1]["subtasks"]) for seed in range(20)}
        assert min(counts) >= 3
        env.close()


@pytest.mark.parametrize(
    "action", [np.zeros(13), np.zeros(15), np.where(np.arange(14) == 6, np.nan, HOME_POSE)]
)
def test_invalid_actions_raise_through_the_env(action):
    env = gym.make("kinema/TransferCube-v0")
    env.reset(seed=0)
    with pytest.raises(ActionError):
        env.step(action)
    env.close()


def test_step_before_reset_is_an_error():
    env = gym.make("kinema/TransferCube-v0", disable_env_checker=True).unwrapped
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(HOME_POSE)


def test_episode_is_truncated_at_the_task_length():
    env = gym.make("kinema/TransferCube-v0", max_episode_steps=3)
    env.reset(seed=0)
    truncations = [env.step(HOME_POSE)[3] for _ in range(3)]
    assert truncations == [False, False, True]

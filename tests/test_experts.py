"""The scripted experts solve every task through the cerebellum, within the servo limits."""

import json

import gymnasium as gym
import numpy as np
import pytest
from scenes import decode

from kinema.aloha import ACTION_HIGH, ACTION_LOW, MAX_VELOCITY
from kinema.cli import main
from kinema.sim.experts import ExpertDriver, run_expert_episode
from kinema.sim.experts.base import ExpertTiming
from kinema.video import CAPTION_HEIGHT_PX

CONTROL_DT_S = 0.02


def run(task: str, seed: int, **env_options):
    env = gym.make(f"kinema/{task}-v0", **env_options).unwrapped
    try:
        return run_expert_episode(env, task, seed), env
    finally:
        env.close()


def test_expert_solves_the_task_with_actions_inside_the_limits(task_name):
    episode, env = run(task_name, seed=3)
    assert episode.success
    assert episode.fallbacks == 0
    assert episode.frames <= env.task.max_episode_steps
    actions = episode.actions
    assert actions.shape == (episode.frames, 14)
    assert np.all(np.isfinite(actions))
    assert np.all(actions >= ACTION_LOW - 1e-9) and np.all(actions <= ACTION_HIGH + 1e-9)
    # Successive 50 Hz actions never move faster than the servos' velocity limits.
    speed = np.abs(np.diff(actions, axis=0)) / CONTROL_DT_S
    assert np.all(speed <= MAX_VELOCITY + 1e-6)


def test_transfer_cube_expert_completes_the_handover_when_the_episode_goes_on():
    _, env = run("TransferCube", seed=5, terminate_on_success=False)
    # The right gripper has let go and withdrawn; the left holds the cube in the air.
    assert env.task.stage(env.sim) == 4
    assert not env.sim.gripper_touches("right", env.sim.body_geoms("cube"))


def test_sort_cubes_expert_never_twists_a_wrist_onto_its_mirror_solution():
    # Seed 0 returned the left arm from its bin to forearm roll -π, wrist rotate +π before the
    # idle arm rested pointing down (kinema.sim.experts.sort_cubes).
    episode, _ = run("SortCubes", seed=0)
    assert episode.success
    forearm_roll_and_wrist_rotate = episode.actions[:, [3, 5, 10, 12]]
    assert np.abs(forearm_roll_and_wrist_rotate).max() < 1.0


def test_stack_blocks_expert_recovers_from_the_mistakes_it_makes_on_purpose():
    # Every subtask's first attempt goes wrong (a grasp beside the block, or a release off the
    # tower's axis); the expert then does the subtask again from where the block lies.
    env = gym.make("kinema/StackBlocks-v0", terminate_on_success=False).unwrapped
    driver = ExpertDriver("StackBlocks", timing=ExpertTiming(mistake_rate=1.0))
    driver.start(env, seed=2)
    flags, stages = [], []
    while not stages or stages[-1] == 0:
        env.step_ticks(driver.next_frame())
        flags.append(driver.frame_is_mistake)
        stages.append(env.task.stage(env.sim))
        assert len(stages) < env.task.max_episode_steps
    env.close()
    edges = np.diff(np.array([False, *flags, False], dtype=int))
    (mistake_starts,), (mistake_ends,) = np.nonzero(edges == 1), np.nonzero(edges == -1)
    assert mistake_ends[0] - mistake_starts[0] > 50
    assert stages[mistake_ends[0]] == 0, "the mistake did not do the first subtask"
    assert stages[-1] == 1  # the retry did (the loop ran until it was done)


def test_a_mistake_rate_is_refused_where_the_expert_cannot_err_on_purpose():
    with pytest.raises(ValueError, match=r"cannot make deliberate mistakes.*StackBlocks"):
        ExpertDriver("TransferCube", timing=ExpertTiming(mistake_rate=0.2))
    with pytest.raises(ValueError, match=r"mistake_rate must be in \[0, 1\]"):
        ExpertTiming(mistake_rate=1.5)


def test_demonstrations_are_reproducible_per_seed_and_vary_across_seeds():
    first, _ = run("TransferCube", seed=11)
    again, _ = run("TransferCube", seed=11)
    other, _ = run("TransferCube", seed=12)
    np.testing.assert_array_equal(first.actions, again.actions)
    assert first.frames != other.frames or not np.allclose(first.actions, other.actions)


def test_expert_command_prints_success_rate_and_writes_video(tmp_path, capsys):
    out = tmp_path / "expert.mp4"
    main(
        [
            "expert",
            "--task",
            "Insertion",
            "--episodes",
            "2",
            "--workers",
            "1",
            "--video",
            str(out),
            "--image-size",
            "48",
            "64",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task"] == "Insertion"
    assert summary["episodes"] == 2
    assert summary["success_rate"] == 1.0
    frames = decode(out)
    assert frames[0].shape == (CAPTION_HEIGHT_PX + 96, 128, 3)
    assert 100 < len(frames) <= 400

"""Task predicates: success and every subtask are false at reset and true in hand-built states
where they hold (and false in near misses)."""

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from scenes import hold_in_gripper

from kinema.sim import env_id
from kinema.sim.env import AlohaEnv
from kinema.sim.tasks.objects import SOCKET_INNER_HALF_M
from kinema.sim.tasks.sort_cubes import CUBE_HALF_M
from kinema.sim.tasks.stack_blocks import BLOCK_HALF_M
from kinema.types import Subtask

# Peg and socket are held with their long axis (body x) along the gripper's z axis.
LONG_AXIS_ALONG_GRIPPER_Z = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
SEEDS = range(3)


def make(task: str) -> AlohaEnv:
    return gym.make(env_id(task)).unwrapped


def done(env: AlohaEnv) -> list[bool]:
    return [env.task.subtask_done(env.sim, s) for s in env.episode.subtasks]


def check_each_subtask_in_turn(env: AlohaEnv, accomplish: Callable[[Subtask], None]) -> None:
    """Accomplish the plan's subtasks in order with ``accomplish``; after each, exactly those so
    far are done and the stage counts them; at the end the task succeeds."""
    subtasks = env.episode.subtasks
    for i, subtask in enumerate(subtasks):
        accomplish(subtask)
        assert done(env) == [j <= i for j in range(len(subtasks))]
        assert env.task.stage(env.sim) == i + 1
    assert env.task.is_success(env.sim)


@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_is_done_at_reset(task_name, seed):
    env = make(task_name)
    env.reset(seed=seed)
    assert not env.task.is_success(env.sim)
    assert env.task.stage(env.sim) == 0
    assert done(env) == [False] * len(env.episode.subtasks)
    env.close()


# -- TransferCube ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("arm", "expected_done", "expected_stage"),
    [("right", [True, False], 2), ("left", [False, True], 4)],
    ids=["picked-by-right", "handed-to-left"],
)
def test_transfer_cube_held_in_the_air(seed, arm, expected_done, expected_stage):
    """Held by the right arm: picked (stage 2). Held by the left arm: handed over (success)."""
    env = make("TransferCube")
    env.reset(seed=seed)
    hold_in_gripper(env.sim, arm, "cube", half_width_m=0.02)
    assert done(env) == expected_done
    assert env.task.stage(env.sim) == expected_stage
    assert env.task.is_success(env.sim) == (expected_stage == 4)


# -- Insertion ------------------------------------------------------------------------------


def insertion_holding_both(env: AlohaEnv) -> None:
    hold_in_gripper(env.sim, "right", "peg", 0.01, body_rotation=LONG_AXIS_ALONG_GRIPPER_Z)
    hold_in_gripper(env.sim, "left", "socket", 0.022, body_rotation=LONG_AXIS_ALONG_GRIPPER_Z)


@pytest.mark.parametrize("seed", SEEDS)
def test_insertion_both_picked(seed):
    env = make("Insertion")
    env.reset(seed=seed)
    insertion_holding_both(env)
    assert done(env) == [True, True, False]
    assert env.task.stage(env.sim) == 2


def place_peg_in_socket(env: AlohaEnv, depth_past_pin_face_m: float) -> None:
    """Socket in the air at (0, 0, 0.3) along x; the peg inside it from +x, its tip
    ``depth_past_pin_face_m`` past the pin's face (negative: short of it)."""
    pin_face = 0.004
    env.sim.set_free_body_pose("socket", np.array([0.0, 0.0, 0.3]))
    env.sim.set_free_body_pose("peg", np.array([pin_face + 0.06 - depth_past_pin_face_m, 0, 0.3]))
    env.sim.forward()


@pytest.mark.parametrize("seed", SEEDS)
def test_insertion_peg_touching_the_pin_in_the_air_is_success(seed):
    env = make("Insertion")
    env.reset(seed=seed)
    place_peg_in_socket(env, depth_past_pin_face_m=0.001)
    assert done(env)[2] and env.task.stage(env.sim) == 4 and env.task.is_success(env.sim)


def test_insertion_peg_short_of_the_pin_is_not_success():
    env = make("Insertion")
    env.reset(seed=0)
    place_peg_in_socket(env, depth_past_pin_face_m=-0.01)
    assert not done(env)[2] and not env.task.is_success(env.sim)
    assert SOCKET_INNER_HALF_M > 0.01  # the peg fits the tube without touching its walls


def test_insertion_on_the_table_is_not_success():
    env = make("Insertion")
    env.reset(seed=0)
    place_peg_in_socket(env, depth_past_pin_face_m=0.001)
    env.sim.set_free_body_pose("socket", np.array([0.0, 0.0, 0.022]))
    env.sim.set_free_body_pose("peg", np.array([0.063, 0, 0.022]))
    env.sim.forward()
    assert not env.task.is_success(env.sim)


# -- SortCubes ------------------------------------------------------------------------------


def put_cube_in_bin(env: AlohaEnv, cube_color: str, bin_color: str) -> None:
    task = env.task
    center = env.sim.body_position(task.bins.slot(bin_color))
    resting = np.array([center[0], center[1], 0.008 + CUBE_HALF_M + 0.0005])
    env.sim.set_free_body_pose(task.cubes.slot(cube_color), resting)
    env.sim.forward()


@pytest.mark.parametrize("seed", SEEDS)
def test_sort_cubes_each_subtask_alone_then_all_is_success(seed):
    env = make("SortCubes")
    env.reset(seed=seed)

    def put_away(subtask: Subtask) -> None:
        color = subtask.object.removesuffix(" cube")
        put_cube_in_bin(env, color, color)

    check_each_subtask_in_turn(env, put_away)


def test_sort_cubes_wrong_bin_does_not_count():
    env = make("SortCubes")
    env.reset(seed=0)
    first, second = (s.object.removesuffix(" cube") for s in env.episode.subtasks[:2])
    put_cube_in_bin(env, first, second)
    assert done(env)[0] is False


def test_sort_cubes_held_in_the_bin_does_not_count():
    env = make("SortCubes")
    env.reset(seed=0)
    color = env.episode.subtasks[0].object.removesuffix(" cube")
    cube = env.task.cubes.slot(color)
    hold_in_gripper(env.sim, "left", cube, half_width_m=CUBE_HALF_M)
    held_at = env.sim.body_position(cube)
    bin_body = env.task.bins.slot(color)
    env.sim.set_mocap_position(bin_body, np.array([held_at[0], held_at[1], held_at[2] - 0.03]))
    env.sim.forward()
    assert not env.task.subtask_done(env.sim, env.episode.subtasks[0])


def test_sort_cubes_draws_varied_object_sets():
    env = make("SortCubes")
    sets = {tuple(s.object for s in env.reset(seed=seed)[1]["subtasks"]) for seed in range(15)}
    assert len(sets) > 5
    assert {len(s) for s in sets} == {3, 4}


# -- StackBlocks ----------------------------------------------------------------------------


def stack(env: AlohaEnv, upper: str, lower: str, offset_m: float = 0.0) -> None:
    base = env.sim.body_position(env.task.blocks.slot(lower))
    on_top = base + np.array([offset_m, 0.0, 2 * BLOCK_HALF_M + 0.0005])
    env.sim.set_free_body_pose(env.task.blocks.slot(upper), on_top)
    env.sim.forward()


def colors(subtask: Subtask) -> tuple[str, str]:
    return subtask.object.removesuffix(" block"), subtask.target.removesuffix(" block")


@pytest.mark.parametrize("seed", SEEDS)
def test_stack_blocks_each_subtask_in_order_then_success(seed):
    env = make("StackBlocks")
    env.reset(seed=seed)
    check_each_subtask_in_turn(env, lambda subtask: stack(env, *colors(subtask)))


def test_stack_blocks_subtask_predicates_are_independent():
    env = make("StackBlocks")
    env.reset(seed=0)
    last = env.episode.subtasks[-1]
    stack(env, *colors(last))
    assert done(env) == [False, False, True]
    assert env.task.stage(env.sim) == 0  # the tower is built from the bottom


def test_stack_blocks_off_centre_block_does_not_count():
    env = make("StackBlocks")
    env.reset(seed=0)
    stack(env, *colors(env.episode.subtasks[0]), offset_m=0.03)
    assert done(env)[0] is False


def test_stack_blocks_instruction_names_every_block_of_the_plan():
    env = make("StackBlocks")
    for seed in range(10):
        _, info = env.reset(seed=seed)
        plan = [colors(info["subtasks"][0])[1]] + [colors(s)[0] for s in info["subtasks"]]
        assert len(set(plan)) == 4
        assert all(color in info["instruction"] for color in plan)

"""OraclePlanner on a real environment's info: it plans the ground truth, checks with the task's
predicates and replans the subtasks not done; scene_objects lists what a plan names."""

import gymnasium as gym
import numpy as np
import pytest

import kinema.sim  # noqa: F401  (registers the environments)
from kinema.policies.brain.oracle import OraclePlanner, scene_objects
from kinema.policies.brain.planner import PlanHistory
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask

SEEN = BrainObservation({"cam_high": np.zeros((4, 4, 3), np.uint8)})


@pytest.fixture(scope="module")
def sort_cubes_info() -> dict:
    env = gym.make("kinema/SortCubes-v0")
    _, info = env.reset(seed=3)
    env.close()
    return info


def test_the_oracle_plans_the_ground_truth_and_checks_with_the_predicates(sort_cubes_info):
    latest = {"info": sort_cubes_info}
    oracle = OraclePlanner(lambda: latest["info"])
    plan = oracle.plan(sort_cubes_info["instruction"], SEEN)
    assert plan == list(sort_cubes_info["subtasks"])
    assert all(oracle.check(s, SEEN).status == "not_yet" for s in plan)  # nothing sorted yet

    first_done = (True,) + (False,) * (len(plan) - 1)
    latest["info"] = {**sort_cubes_info, "subtasks_done": first_done}
    assert oracle.check(plan[0], SEEN) == Verdict("done", 1.0, "the task's predicate holds")
    history = PlanHistory(sort_cubes_info["instruction"], ((plan[0], oracle.check(plan[0], SEEN)),))
    assert oracle.replan(history, SEEN) == plan[1:]


def test_the_oracle_refuses_a_subtask_outside_the_plan(sort_cubes_info):
    oracle = OraclePlanner(lambda: sort_cubes_info)
    stranger = Subtask("pick up the peg with the right arm", "pick", "right", "peg", None, 4.0)
    with pytest.raises(ValueError, match="expected a subtask of the episode's plan"):
        oracle.check(stranger, SEEN)


def test_scene_objects_lists_objects_and_targets_once(sort_cubes_info):
    objects = scene_objects(sort_cubes_info["subtasks"])
    colors = [s.object.removesuffix(" cube") for s in sort_cubes_info["subtasks"]]
    assert objects == tuple(name for c in colors for name in (f"{c} cube", f"{c} bin"))

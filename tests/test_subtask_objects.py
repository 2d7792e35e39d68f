"""The objects a subtask text names: its phrases come back from every skill's template, and on
the long-horizon tasks' own states they mark exactly the slots of the named object and target."""

import gymnasium as gym
import pytest
import torch

from kinema.policies.dit.subtask_objects import ACTED_ON, OTHER, TARGET, SubtaskObjects
from kinema.sim import env_id
from kinema.skills import SKILLS, make_subtask, named_objects


def test_every_skill_template_gives_back_the_object_and_target_it_was_worded_with():
    for skill, spec in SKILLS.items():
        for arm in spec.arms:
            target = "green block" if spec.has_target else None
            subtask = make_subtask(skill, arm, "small red cube", target)
            assert named_objects(subtask.text) == ("small red cube", target)
    assert named_objects("tidy up the table") is None
    assert named_objects("put down everything") is None


@pytest.mark.parametrize("task", ["SortCubes", "StackBlocks"])
def test_each_subtask_marks_the_slot_of_its_object_and_of_its_target(task):
    env = gym.make(env_id(task)).unwrapped
    objects = SubtaskObjects(env.task.environment_state_names)
    for seed in range(4):
        env.reset(seed=seed)
        state = torch.as_tensor(env.task.environment_state(env.sim))[None]
        subtasks = env.episode.subtasks
        roles = objects.roles([s.text for s in subtasks], state.expand(len(subtasks), -1))
        for subtask, row in zip(subtasks, roles.tolist(), strict=True):
            acted_on, target = row.index(ACTED_ON), row.index(TARGET)
            assert row.count(ACTED_ON) == 1 and row.count(TARGET) == 1
            assert row.count(OTHER) == len(row) - 2
            # the marked slots are the bodies that hold the named colours in this episode
            slots = env.task.cubes if task == "SortCubes" else env.task.blocks
            target_slots = env.task.bins if task == "SortCubes" else env.task.blocks
            assert objects.objects[acted_on] == slots.slot(subtask.object.split()[0])
            assert objects.objects[target] == target_slots.slot(subtask.target.split()[0])
    env.close()


def test_free_text_and_absent_objects_mark_nothing_and_bad_names_are_refused():
    names = ("cube_0.x", "cube_0.red", "cube_1.x", "cube_1.red", "bin_0.x", "bin_0.red")
    objects = SubtaskObjects(names)
    state = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0, 1.0]])  # cube_1 and bin_0 are red
    texts = ["tidy up", "put the blue cube in the red bin", "put the red cube in the red bin"]
    roles = objects.roles(texts, state.expand(3, -1)).tolist()
    assert roles == [[OTHER] * 3, [OTHER, OTHER, TARGET], [OTHER, ACTED_ON, TARGET]]
    with pytest.raises(ValueError, match=r"<object>\.<field>"):
        SubtaskObjects(("x", "y"))
    with pytest.raises(ValueError, match="not consecutive"):
        SubtaskObjects(("a.x", "b.x", "a.y"))

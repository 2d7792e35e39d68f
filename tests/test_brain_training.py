"""Training the embedded brain: rendered scenes round-trip through their .npz and hold the
expert's ground truth; plan and check examples carry the labels of the scenes they come from;
``train_brain`` saves a checkpoint the planner loads and uses."""

from pathlib import Path

import numpy as np
import pytest

from kinema.policies.brain.embedded import EmbeddedConfig, EmbeddedPlanner
from kinema.policies.brain.examples import BrainExamples, ExamplesConfig
from kinema.policies.brain.scenes import CAMERAS, Scenes, ScenesConfig, generate_scenes
from kinema.policies.brain.train_brain import TrainBrainConfig, train_brain
from kinema.policies.brain.types import BrainObservation
from kinema.policies.brain.vocabulary import END, plan_labels, step_index

TINY = EmbeddedConfig(patch_channels=8, hidden_dim=16, heads=2)


@pytest.fixture(scope="module")
def scenes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ScenesConfig(
        expert_episodes={"TransferCube": 1},
        reset_scenes={"TransferCube": 3},
        perturbed_fraction=0.0,
        frame_every_s=0.5,
        workers=1,
    )
    path = tmp_path_factory.mktemp("scenes") / "scenes.npz"
    generate_scenes(config).save(path)
    return path


def test_scenes_round_trip_and_hold_the_experts_ground_truth(scenes_file):
    scenes = Scenes.load(scenes_file)
    assert scenes.tasks == ("TransferCube",) * 4
    assert scenes.perturbations == ("none", "reset", "reset", "reset")
    assert scenes.cameras == CAMERAS
    assert scenes.first_images.shape == (4, 96, 128, 3)
    frames = len(scenes.frame_episode)
    assert scenes.frame_images.shape == (frames, 3, 96, 128, 3) and frames > 10
    assert np.all(scenes.frame_episode == 0)
    assert np.all(np.diff(scenes.frame_time_s) > 0)
    subtasks = len(scenes.plans[0])
    done = scenes.frame_done[:, :subtasks]
    assert np.all(scenes.frame_done[:, subtasks:] == -1)
    assert np.all(done[0] == 0)  # nothing done at reset
    assert done[-1, -1] == 1  # the last step done at the end (the pick is not: the cube left it)
    again = scenes_file.with_name("again.npz")
    scenes.save(again)
    reloaded = Scenes.load(again)
    assert reloaded.plans == scenes.plans
    assert np.array_equal(reloaded.frame_images, scenes.frame_images)


def test_examples_carry_the_labels_of_their_scenes(scenes_file):
    scenes = Scenes.load(scenes_file)
    examples = BrainExamples(scenes, TINY, ExamplesConfig(mid_episode_fraction=0.5))
    plan = scenes.plans[0]
    full = plan_labels(plan, TINY.plan_slots)
    batch = examples.plan_batch(16)
    assert batch["images"].shape == (16, 1, 3, 96, 128)
    assert batch["images"].min() >= 0.0 and batch["images"].max() <= 1.0
    for labels in batch["labels"].tolist():  # the plan, or its steps not done mid-episode
        steps = [label for label in labels if label != END]
        assert steps == [label for label in full if label in steps]
        assert labels[len(steps) :] == [END] * (len(labels) - len(steps))
    check = examples.check_batch(16)
    assert check["images"].shape == (16, 2, 3, 96, 128)
    assert set(check["steps"].tolist()) <= {step_index(s) for s in plan}
    assert set(check["done"].tolist()) <= {0, 1}
    assert check["text"].shape[0] == 16


def test_train_brain_saves_a_checkpoint_the_planner_uses(scenes_file, tmp_path):
    config = TrainBrainConfig(
        scenes=scenes_file,
        out=tmp_path / "brain",
        steps=3,
        batch_size=4,
        check_batch_size=4,
        model=TINY,
    )
    summary = train_brain(config)
    assert summary["steps"] == 3 and summary["episodes"] == 4
    assert np.isfinite(summary["train_loss"])
    planner = EmbeddedPlanner.from_pretrained(config.out)
    assert planner.config == TINY
    scenes = Scenes.load(scenes_file)
    images = {c: scenes.frame_images[-1, i] for i, c in enumerate(scenes.cameras)}
    verdict = planner.check(scenes.plans[0][0], BrainObservation(images))
    assert verdict.status in ("done", "not_yet") and 0.5 <= verdict.confidence <= 1.0

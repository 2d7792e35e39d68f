"""Training examples for the embedded brain, drawn from rendered ``Scenes``.

Plan examples: the overview image, an instruction worded from a training template
(``phrasings.TRAINING``, with ``phrasings.vary``), and the plan slots' classes
(``vocabulary.plan_labels``):

- at reset (share 1 − ``mid_episode_fraction``): the episode's plan. For StackBlocks the three
  upper blocks are also put in a random order — the instruction names the new tower and each
  step keeps the arm on its block's side — so that the order has to be read from the words;
- within an expert episode (share ``mid_episode_fraction``): the subtasks not done at that
  frame, in order (what a replan should give), worded from the episode's whole plan.

Check examples: a (frame, subtask) pair of an expert episode, uniformly, with the overview and
the wrist camera of the subtask's arm, the subtask's text and step class
(``vocabulary.step_index``), and its predicate at that frame.

Images are shifted by up to ``shift_px`` pixels (edges repeated) and scaled in brightness by a
factor in [1 − brightness, 1 + brightness].

Example:
    examples = BrainExamples(Scenes.load(path), EmbeddedConfig(), ExamplesConfig())
    plan = examples.plan_batch(32)     # images (32, 1, 3, H, W), camera_ids, text, labels
    check = examples.check_batch(32)   # images (32, 2, 3, H, W), camera_ids, text, steps, done
"""

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

from kinema.policies.brain.embedded import EmbeddedConfig, text_bytes
from kinema.policies.brain.phrasings import phrase, templates, tower_colors, vary
from kinema.policies.brain.scenes import Scenes
from kinema.policies.brain.vocabulary import plan_labels, step_index
from kinema.skills import subtask_text
from kinema.types import Subtask


@dataclass(frozen=True)
class ExamplesConfig:
    """How examples are drawn.

    Attributes:
        plan_task_weights: how often each task's scenes are drawn for plan examples.
        mid_episode_fraction: the share of plan examples taken within expert episodes.
        shift_px: largest image shift, pixels.
        brightness: largest relative brightness change.
        seed: seed of the random draws.
    """

    plan_task_weights: dict[str, float] = field(
        default_factory=lambda: {
            "TransferCube": 0.1,
            "Insertion": 0.1,
            "SortCubes": 0.4,
            "StackBlocks": 0.4,
        }
    )
    mid_episode_fraction: float = 0.15
    shift_px: int = 4
    brightness: float = 0.15
    seed: int = 0


def reorder_tower(plan: tuple[Subtask, ...], order: list[int]) -> tuple[Subtask, ...]:
    """A StackBlocks plan with the upper blocks stacked in ``order`` (a permutation of 0, 1, 2
    over the plan's upper blocks); each block keeps the arm on its side."""
    colors = tower_colors(plan)
    arms = {s.object: s.arm for s in plan}
    tower = [colors[0]] + [colors[1 + i] for i in order]
    steps = []
    for lower, upper in pairwise(tower):
        obj, target = f"{upper} block", f"{lower} block"
        arm = arms[obj]
        text = subtask_text("stack_on", arm, obj, target)
        steps.append(Subtask(text, "stack_on", arm, obj, target, plan[0].time_budget_s))
    return tuple(steps)


class BrainExamples:
    """Draws plan and check batches from ``scenes`` (see the module docstring)."""

    def __init__(self, scenes: Scenes, model: EmbeddedConfig, config: ExamplesConfig):
        self.scenes = scenes
        self.model = model
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        tasks = np.array(scenes.tasks)
        self.task_names = sorted(set(scenes.tasks))
        self.episodes = {t: np.flatnonzero(tasks == t) for t in self.task_names}
        frame_tasks = tasks[scenes.frame_episode]
        self.frames = {t: np.flatnonzero(frame_tasks == t) for t in self.task_names}
        frames, subtasks = np.nonzero(scenes.frame_done >= 0)
        pairs = np.stack([frames, subtasks], 1)
        self.pairs = {t: pairs[frame_tasks[frames] == t] for t in self.task_names}
        weights = np.array([config.plan_task_weights.get(t, 0.0) for t in self.task_names])
        if weights.sum() <= 0:
            raise ValueError(
                f"ExamplesConfig.plan_task_weights gives no weight to the scenes' tasks "
                f"{self.task_names}"
            )
        self.plan_weights = weights / weights.sum()
        self.check_tasks = [t for t in self.task_names if len(self.pairs[t])]
        if not self.check_tasks:
            raise ValueError("BrainExamples: the scenes hold no expert frames to check")

    def _instruction(self, task: str, plan: tuple[Subtask, ...]) -> str:
        options = templates(task, "training")
        return vary(phrase(task, options[self.rng.integers(len(options))], plan), self.rng)

    def _plan_example(self) -> tuple[np.ndarray, str, list[int]]:
        task = self.task_names[self.rng.choice(len(self.task_names), p=self.plan_weights)]
        within = len(self.frames[task]) and self.rng.random() < self.config.mid_episode_fraction
        if within:
            frame = self.rng.choice(self.frames[task])
            plan = self.scenes.plans[self.scenes.frame_episode[frame]]
            done = self.scenes.frame_done[frame]
            remaining = [s for k, s in enumerate(plan) if done[k] == 0]
            image = self.scenes.frame_images[frame, 0]
            return (
                image,
                self._instruction(task, plan),
                plan_labels(remaining, self.model.plan_slots),
            )
        episode = self.rng.choice(self.episodes[task])
        plan = self.scenes.plans[episode]
        if task == "StackBlocks":
            plan = reorder_tower(plan, list(self.rng.permutation(len(plan))))
        labels = plan_labels(plan, self.model.plan_slots)
        return self.scenes.first_images[episode], self._instruction(task, plan), labels

    def plan_batch(self, size: int) -> dict[str, torch.Tensor]:
        """``size`` plan examples: images (B, 1, 3, H, W), camera_ids (B, 1), text (B, L),
        labels (B, plan_slots)."""
        images, texts, labels = zip(*(self._plan_example() for _ in range(size)), strict=True)
        return {
            "images": self._augment(np.stack(images)[:, None]),
            "camera_ids": torch.zeros(size, 1, dtype=torch.long),
            "text": text_bytes(texts, self.model.max_text_bytes),
            "labels": torch.tensor(labels, dtype=torch.long),
        }

    def check_batch(self, size: int) -> dict[str, torch.Tensor]:
        """``size`` check examples: images (B, 2, 3, H, W), camera_ids (B, 2), text (B, L),
        steps (B,), done (B,)."""
        tasks = self.rng.choice(len(self.check_tasks), size=size)
        images, ids, texts, steps, done = [], [], [], [], []
        for task in tasks:
            pairs = self.pairs[self.check_tasks[task]]
            frame, k = pairs[self.rng.integers(len(pairs))]
            subtask = self.scenes.plans[self.scenes.frame_episode[frame]][k]
            views = [self.scenes.cameras.index(c) for c in self.model.check_cameras(subtask.arm)]
            images.append(self.scenes.frame_images[frame, views])
            ids.append([self.model.cameras.index(self.scenes.cameras[v]) for v in views])
            texts.append(subtask.text)
            steps.append(step_index(subtask))
            done.append(int(self.scenes.frame_done[frame, k]))
        return {
            "images": self._augment(np.stack(images)),
            "camera_ids": torch.tensor(ids, dtype=torch.long),
            "text": text_bytes(texts, self.model.max_text_bytes),
            "steps": torch.tensor(steps, dtype=torch.long),
            "done": torch.tensor(done, dtype=torch.long),
        }

    def _augment(self, images: np.ndarray) -> torch.Tensor:
        """(B, V, H, W, 3) uint8 → (B, V, 3, H, W) float in 0..1, shifted and brightened."""
        batch = torch.from_numpy(images).permute(0, 1, 4, 2, 3).float() / 255.0
        b, v, c, h, w = batch.shape
        flat = batch.reshape(b * v, c, h, w)
        shift = self.config.shift_px
        if shift:
            padded = F.pad(flat, (shift, shift, shift, shift), mode="replicate")
            offsets = self.rng.integers(0, 2 * shift + 1, size=(b * v, 2))
            flat = torch.stack(
                [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets)]
            )
        gains = 1.0 + self.rng.uniform(-self.config.brightness, self.config.brightness, b * v)
        flat = (flat * torch.from_numpy(gains).float()[:, None, None, None]).clamp(0.0, 1.0)
        return flat.reshape(b, v, c, h, w)

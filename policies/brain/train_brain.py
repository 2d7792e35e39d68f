"""``kinema train-brain``: train the embedded brain on rendered scenes and save it.

Each step draws a batch of plan examples and one of check examples (``examples``); the loss is
the sum of the plan slots' cross-entropy (teacher forcing) and the check's cross-entropy. AdamW
with a linear warm-up then cosine decay to 10 % of the peak rate, gradients clipped to norm 1.
The scenes are rendered first (``scenes.generate_scenes``) when ``scenes`` does not exist yet.
The model is written with ``EmbeddedPlanner.save_pretrained``; ``init`` continues training a
saved one (e.g. the shipped weights) instead of starting from scratch.

Example:
    summary = train_brain(TrainBrainConfig(out=Path("outputs/brain/embedded"), steps=2000))
    planner = EmbeddedPlanner.from_pretrained(Path("outputs/brain/embedded"))
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kinema.policies.brain.embedded import BrainModel, EmbeddedConfig, EmbeddedPlanner
from kinema.policies.brain.examples import BrainExamples, ExamplesConfig
from kinema.policies.brain.scenes import Scenes, ScenesConfig, generate_scenes


@dataclass(frozen=True)
class TrainBrainConfig:
    """A training run of the embedded brain.

    Attributes:
        scenes: the rendered scenes (``.npz``); rendered with ``scenes_config`` if missing.
        out: where the trained model is saved (``save_pretrained``).
        steps: optimiser steps.
        batch_size: plan examples per step.
        check_batch_size: check examples per step.
        learning_rate: peak AdamW learning rate.
        warmup_steps: steps of linear warm-up.
        weight_decay: AdamW weight decay.
        seed: seed of the weights' initialisation and the example draws.
        init: a ``save_pretrained`` directory to start from (to train on); None: from scratch.
        model: the architecture (of a model trained from scratch).
        scenes_config: how scenes are rendered when ``scenes`` is missing.
    """

    scenes: Path = Path("outputs/brain/scenes.npz")
    out: Path = Path("outputs/brain/embedded")
    steps: int = 3000
    batch_size: int = 32
    check_batch_size: int = 24
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    init: Path | None = None
    model: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    scenes_config: ScenesConfig = field(default_factory=ScenesConfig)


def learning_rate_factor(step: int, warmup_steps: int, steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1 at ``steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def load_or_render(config: TrainBrainConfig) -> Scenes:
    """The scenes at ``config.scenes``, rendered and saved there first if missing."""
    if not config.scenes.exists():
        generate_scenes(config.scenes_config).save(config.scenes)
    return Scenes.load(config.scenes)


def train_brain(config: TrainBrainConfig) -> dict[str, Any]:
    """Train (see the module docstring); returns a summary of the run."""
    scenes = load_or_render(config)
    torch.manual_seed(config.seed)
    if config.init is None:
        model = BrainModel(config.model)
    else:
        model = EmbeddedPlanner.from_pretrained(config.init).model
    model.train()
    examples = BrainExamples(scenes, model.config, ExamplesConfig(seed=config.seed))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config.warmup_steps, config.steps)
    )
    start = time.perf_counter()
    recent: dict[str, list[float]] = {"loss": [], "plan": [], "check": []}
    progress = tqdm(range(config.steps), desc="train brain", unit="step")
    for _ in progress:
        plan = examples.plan_batch(config.batch_size)
        check = examples.check_batch(config.check_batch_size)
        plan_loss, plan_exact = model.plan_loss(**plan)
        check_loss, check_correct = model.check_loss(**check)
        loss = plan_loss + check_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        for name, value in (
            ("loss", loss.item()),
            ("plan", plan_exact.float().mean().item()),
            ("check", check_correct.float().mean().item()),
        ):
            recent[name] = (recent[name] + [value])[-50:]
        progress.set_postfix({name: f"{np.mean(values):.3f}" for name, values in recent.items()})
    EmbeddedPlanner(model).save_pretrained(config.out)
    return {
        "out": str(config.out.resolve()),
        "steps": config.steps,
        "minutes": round((time.perf_counter() - start) / 60, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_loss": round(float(np.mean(recent["loss"])), 4),
        "train_plan_exact_match": round(float(np.mean(recent["plan"])), 4),
        "train_check_accuracy": round(float(np.mean(recent["check"])), 4),
        "episodes": len(scenes.tasks),
        "frames": len(scenes.frame_episode),
    }

"""``kinema train``: fit a DiT policy to a LeRobotDataset v3 directory.

AdamW with a linear warm-up then a cosine decay of the learning rate, gradient clipping, an
exponential moving average of the weights (the weights saved for inference), mixed precision on
a GPU (bf16), tqdm progress and TensorBoard scalars, a PNG of the loss curve at the end.

Runs on one device as it is and on several GPUs or machines through Hugging Face accelerate,
unchanged: ``PYTHONSAFEPATH=1 accelerate launch -m kinema.cli train ...`` (the safe path keeps
the checkout's ``datasets/`` folder from shadowing Hugging Face ``datasets``). Each process reads
its own share of the episodes (``WindowLoader(process_index, process_count)``) and all step
together.

Output directory:

    train_config.json, policy_config.json   what was asked
    checkpoints/step-XXXXXXX/               accelerate state (weights, optimiser, schedule,
                                            every process's random state, EMA) + progress.json
    checkpoints/latest                      the name of the newest complete checkpoint
    policy/                                 the EMA policy (``DiTPolicy.from_pretrained``)
    tensorboard/, loss.png

Checkpoints are written to a temporary directory and renamed when complete, so a run killed at
any moment resumes (``resume=True``) from the last complete one: the same weights, optimiser
state, random state and data stream, hence the same loss curve as a run never interrupted.

Example:
    summary = train(TrainConfig(dataset=Path("outputs/sort"), output=Path("outputs/dit"),
                                steps=20_000), {"chunk_steps": 50})
"""

import copy
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers.optimization import get_cosine_schedule_with_warmup
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from kinema.datasets.augment import AugmentConfig
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.features import END_EFFECTOR_ACTION
from kinema.datasets.info import read_info
from kinema.datasets.loader import WindowConfig, WindowLoader
from kinema.datasets.table import EpisodeTable
from kinema.policies.dit.config import ACTION, ENVIRONMENT_STATE, IMAGE_PREFIX, STATE, DiTConfig
from kinema.policies.dit.ema import EmaWeights
from kinema.policies.dit.loss_plot import save_loss_plot
from kinema.policies.dit.policy import DiTPolicy

CHECKPOINTS = "checkpoints"
LATEST = "latest"
PROGRESS = "progress.json"


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        dataset: the LeRobotDataset v3 directory.
        output: the run directory (see the module docstring).
        steps: optimiser steps in all.
        batch_size: windows per step and process.
        learning_rate: peak AdamW learning rate, reached after ``warmup_steps``.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps, then cosine decay to 0 at ``steps``.
        grad_clip_norm: largest gradient norm (clipped above).
        ema_decay: the EMA's largest decay.
        save_every: steps between checkpoints (and at the end).
        keep_checkpoints: how many checkpoints to keep on disk.
        log_every: steps between TensorBoard points and progress updates.
        workers: decoding worker processes per training process.
        augment: random shift and colour jitter on images.
        feature_map: ``TARGET=SOURCE[...]`` rules for datasets with other feature names.
        use_environment_state: condition on ``observation.environment_state`` if present.
        mixed_precision: "auto" (bf16 on a GPU, none on a CPU), "no", "bf16" or "fp16".
        seed: seeds the weights, the data stream and the noise.
        resume: continue the run in ``output`` from its latest checkpoint.
    """

    dataset: Path
    output: Path
    steps: int = 20_000
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    grad_clip_norm: float = 1.0
    ema_decay: float = 0.999
    save_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 20
    workers: int = 2
    augment: bool = False
    feature_map: tuple[str, ...] = field(default_factory=tuple)
    use_environment_state: bool = True
    mixed_precision: str = "auto"
    seed: int = 0
    resume: bool = False


def policy_config_for(
    table: EpisodeTable, use_environment_state: bool, overrides: dict[str, Any]
) -> DiTConfig:
    """The policy configuration that fits the dataset (cameras, image size, state sizes),
    with ``overrides`` (any ``DiTConfig`` field) applied."""
    shapes = table.shapes()
    cameras = tuple(name.removeprefix(IMAGE_PREFIX) for name in table.cameras)
    derived: dict[str, Any] = {
        "cameras": cameras,
        "state_dim": shapes[STATE][0],
        "environment_state_dim": (
            shapes[ENVIRONMENT_STATE][0]
            if use_environment_state and ENVIRONMENT_STATE in shapes
            else 0
        ),
        "fps": table.fps,
    }
    if cameras:
        derived["image_size"] = tuple(shapes[table.cameras[0]][1:])
    return DiTConfig.from_dict({**asdict(DiTConfig()), **derived, **overrides})


def _served_features(
    dataset: Path, feature_map: FeatureMap, cameras: list[str] | None
) -> list[str] | None:
    """The features to load: every observation and the action, with only ``cameras`` of the
    dataset's cameras when they are given (an empty list trains a state-only policy and
    decodes no video); None loads every feature."""
    if cameras is None:
        return None
    wanted = {IMAGE_PREFIX + camera for camera in cameras}
    served = feature_map.served_names(list(read_info(dataset)["features"]))
    return [
        name
        for name in served
        if name == ACTION
        or (name.startswith("observation.") and not name.startswith(IMAGE_PREFIX))
        or name in wanted
    ]


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        key: value.to(device, non_blocking=True) if torch.is_tensor(value) else value
        for key, value in batch.items()
    }


def _latest_checkpoint(output: Path) -> Path | None:
    pointer = output / CHECKPOINTS / LATEST
    return output / CHECKPOINTS / pointer.read_text().strip() if pointer.exists() else None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


class _Run:
    """One training run's state and its checkpointing."""

    def __init__(self, config: TrainConfig, overrides: dict[str, Any]):
        self.config = config
        precision = config.mixed_precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_available() else "no"
        self.accelerator = Accelerator(mixed_precision=precision)
        accelerator = self.accelerator
        torch.manual_seed(config.seed)  # the same initial weights in every process
        # What the policy does not derive from the dataset is known before reading it.
        asked = {**asdict(DiTConfig()), **overrides}
        feature_map = FeatureMap.parse(list(config.feature_map))
        if asked["action_space"] == "end_effector" and ACTION not in feature_map.rules:
            # our recordings hold both action spaces; the end-effector one is the action here
            rules = [*config.feature_map, f"{ACTION}={END_EFFECTOR_ACTION}"]
            feature_map = FeatureMap.parse(rules)
        window = WindowConfig(
            observation_steps=asked["observation_steps"],
            action_steps=asked["chunk_steps"],
            batch_size=config.batch_size,
            workers=config.workers,
            augment=AugmentConfig() if config.augment else None,
            seed=config.seed,
        )
        self.loader = WindowLoader(
            config.dataset,
            window,
            feature_map,
            _served_features(config.dataset, feature_map, overrides.get("cameras")),
            process_index=accelerator.process_index,
            process_count=accelerator.num_processes,
        )
        self.policy_config = policy_config_for(
            self.loader.table, config.use_environment_state, overrides
        )
        self.loader.table.require(self.policy_config.input_shapes())
        policy = DiTPolicy(self.policy_config, self.loader.stats)
        if self.policy_config.image_encoder_weights:
            policy.load_image_encoders(Path(self.policy_config.image_encoder_weights))
        self.ema = EmaWeights(policy, config.ema_decay)
        optimiser = torch.optim.AdamW(
            policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.schedule = get_cosine_schedule_with_warmup(
            optimiser, config.warmup_steps, config.steps
        )
        self.policy, self.optimiser = accelerator.prepare(policy, optimiser)
        accelerator.register_for_checkpointing(self.schedule, self.ema)
        self.step = 0
        self.losses: list[float] = []
        # differs per process: each draws its own noise (set after the weights are made)
        torch.manual_seed(config.seed * 1000 + 1 + accelerator.process_index)

    def restore(self) -> None:
        checkpoint = _latest_checkpoint(self.config.output)
        if checkpoint is None:
            raise FileNotFoundError(f"{self.config.output}: no checkpoint to resume from")
        self.accelerator.load_state(str(checkpoint))
        progress = json.loads((checkpoint / PROGRESS).read_text())
        self.step, self.losses = progress["step"], progress["losses"]

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current step (all processes call this)."""
        accelerator = self.accelerator
        directory = self.config.output / CHECKPOINTS
        name = f"step-{self.step:07d}"
        staging = directory / f"{name}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (staging / PROGRESS).write_text(json.dumps({"step": self.step, "losses": self.losses}))
            shutil.rmtree(directory / name, ignore_errors=True)
            os.replace(staging, directory / name)
            _write_atomically(directory / LATEST, name)
            kept = sorted(p for p in directory.glob("step-*") if not p.name.endswith(".tmp"))
            for old in kept[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
            self.export_policy()
        accelerator.wait_for_everyone()
        return directory / name

    def export_policy(self) -> None:
        """Save the EMA weights as the run's inference policy (``output/policy``); a copy, so
        no random number is drawn (a resumed run must draw the same ones)."""
        policy = copy.deepcopy(self.accelerator.unwrap_model(self.policy))
        self.ema.copy_to(policy)
        policy.save_pretrained(self.config.output / "policy")


def train(config: TrainConfig, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) training; the summary of the run."""
    if config.resume and not (config.output / "policy_config.json").exists():
        raise FileNotFoundError(f"{config.output}: nothing to resume (no policy_config.json)")
    if config.resume:
        overrides = json.loads((config.output / "policy_config.json").read_text())
    run = _Run(config, overrides or {})
    accelerator = run.accelerator
    if config.resume:
        run.restore()
    elif accelerator.is_main_process:
        config.output.mkdir(parents=True, exist_ok=True)
        (config.output / "train_config.json").write_text(json.dumps(asdict(config), default=str))
        (config.output / "policy_config.json").write_text(run.policy_config.to_json())
    writer = (
        SummaryWriter(str(config.output / "tensorboard")) if accelerator.is_main_process else None
    )
    progress = tqdm(
        total=config.steps,
        initial=run.step,
        desc="train",
        unit="step",
        disable=not accelerator.is_main_process,
    )
    run.policy.train()
    batches = run.loader.stream(start_batch=run.step)
    while run.step < config.steps:
        batch = _to_device(next(batches), accelerator.device)
        with accelerator.autocast():
            loss = run.policy(batch)
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(run.policy.parameters(), config.grad_clip_norm)
        run.optimiser.step()
        run.schedule.step()
        run.optimiser.zero_grad(set_to_none=True)
        run.ema.update(accelerator.unwrap_model(run.policy))
        run.step += 1
        mean_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"the loss became {mean_loss} at step {run.step}")
        run.losses.append(mean_loss)
        progress.update()
        if run.step % config.log_every == 0 and writer is not None:
            writer.add_scalar("train/loss", mean_loss, run.step)
            writer.add_scalar("train/learning_rate", run.schedule.get_last_lr()[0], run.step)
            writer.add_scalar("train/grad_norm", float(grad_norm), run.step)
            progress.set_postfix(loss=f"{mean_loss:.4f}")
        if run.step % config.save_every == 0 or run.step == config.steps:
            run.save_checkpoint()
    progress.close()
    if writer is not None:
        writer.close()
        save_loss_plot(run.losses, config.output / "loss.png")
    return {
        "output": str(config.output.resolve()),
        "steps": run.step,
        "processes": accelerator.num_processes,
        "final_loss": round(sum(run.losses[-20:]) / max(len(run.losses[-20:]), 1), 5),
        "policy": str((config.output / "policy").resolve()),
    }

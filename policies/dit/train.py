"""``kinema train``: fit a DiT policy to a LeRobotDataset v3 directory.

AdamW with a linear warm-up then a cosine decay of the learning rate, gradient clipping, an
exponential moving average of the weights (the weights saved for inference), mixed precision on
a GPU (bf16), tqdm progress and TensorBoard scalars, a PNG of the loss curve at the end.

Runs on one device as it is and on several GPUs or machines through Hugging Face accelerate,
unchanged: ``PYTHONSAFEPATH=1 accelerate launch -m kinema.cli train ...`` (the safe path keeps
the checkout's ``datasets/`` folder from shadowing Hugging Face ``datasets``).

Shards: each optimiser step's global batch is ``shards`` shards of ``batch_size`` windows
(``shards`` defaults to the number of processes P). Shard r reads its own share of the episodes
(``WindowLoader(process_index=r, process_count=shards)``); each process plays m = shards / P of
them, shards p·m … p·m + m − 1, and accumulates their gradients. With L_r the loss of shard r
(the mean over its non-padding actions), every process ends the step with the gradient of

    L = (1 / shards) Σ_r L_r

(DDP averages the P processes' gradients; each process adds (1 / m) ∇L_r of its own m
shards), so the step, and the run, depend on ``shards`` but not on P. The diffusion noise and
timesteps and the dropout masks of shard r at step k come from torch's generator seeded by
(seed, r, k) just before the shard's forward pass (``shard_seed``), not from a stream that
depends on the process. Hence a run of S shards on P processes is reproduced, up to float
rounding, by one of S shards on any other P' dividing S (with the same batch size, workers and
seed): one GPU with ``shards=8`` retraces an 8-GPU run, or gives a small GPU the larger
effective batch. ``step_log=True`` has every process write its view of every step (the losses
of all shards, gathered), which shows the processes stepping together.

Output directory:

    train_config.json, policy_config.json   what was asked
    checkpoints/step-XXXXXXX/               accelerate state (weights, optimiser, schedule,
                                            every process's random state, EMA) + progress.json
    checkpoints/latest                      the name of the newest complete checkpoint
    policy/                                 the EMA policy (``DiTPolicy.from_pretrained``)
    steps/process-N.jsonl                   with ``step_log``: process N's record of each step
    tensorboard/, loss.png

Checkpoints are written to a temporary directory and renamed when complete, so a run killed at
any moment resumes (``resume=True``) from the last complete one: the same weights, optimiser
state, schedule and data stream, and the same noise (seeded per shard and step), hence the same
loss curve as a run never interrupted. A run resumes on any number of processes dividing its
``shards`` (an 8-GPU run on one GPU with ``shards=8``).

Example:
    summary = train(TrainConfig(dataset=Path("outputs/sort"), output=Path("outputs/dit"),
                                steps=20_000), {"chunk_steps": 50})
"""

import contextlib
import copy
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.optimization import get_cosine_schedule_with_warmup
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from kinema.datasets.augment import AugmentConfig
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.features import END_EFFECTOR_ACTION, object_lengths
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
STEP_LOG = "steps"


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        dataset: the LeRobotDataset v3 directory.
        output: the run directory (see the module docstring).
        steps: optimiser steps in all.
        batch_size: windows per step and shard (the global batch is ``shards × batch_size``).
        learning_rate: peak AdamW learning rate, reached after ``warmup_steps``.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps, then cosine decay to 0 at ``steps``.
        grad_clip_norm: largest gradient norm (clipped above).
        ema_decay: the EMA's largest decay.
        save_every: steps between checkpoints (and at the end).
        keep_checkpoints: how many checkpoints to keep on disk.
        log_every: steps between TensorBoard points and progress updates.
        workers: decoding worker processes per shard (they split the shard's episodes, so a
            run is reproduced only with the same number).
        augment: random shift and colour jitter on images.
        feature_map: ``TARGET=SOURCE[...]`` rules for datasets with other feature names.
        use_environment_state: condition on ``observation.environment_state`` if present.
        mixed_precision: "auto" (bf16 on a GPU, none on a CPU), "no", "bf16" or "fp16".
        seed: seeds the weights, the data stream and the noise (≥ 0).
        resume: continue the run in ``output`` from its latest checkpoint.
        shards: the shards each step's global batch is split into (see the module docstring);
            a multiple of the number of processes, each playing ``shards / processes`` of them
            with gradient accumulation. None: one per process.
        step_log: every process writes ``steps/process-N.jsonl``, one JSON line per step: the
            step, the mean loss, every shard's loss, the gradient norm and the learning rate,
            all the same in every process of a run.
        init_from: a saved policy (``save_pretrained`` folder) whose network weights start the
            run instead of random ones (fine-tuning; ``DiTPolicy.start_from``): it must have
            this run's configuration, and the normalisation statistics are this dataset's.
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
    shards: int | None = None
    step_log: bool = False
    init_from: Path | None = None

    def __post_init__(self) -> None:
        if self.shards is not None and self.shards < 1:
            raise ValueError(f"TrainConfig.shards must be ≥ 1 or None, got {self.shards}")
        if self.seed < 0:
            raise ValueError(f"TrainConfig.seed must be ≥ 0, got {self.seed}")


def policy_config_for(
    table: EpisodeTable,
    use_environment_state: bool,
    overrides: dict[str, Any],
    feature_map: FeatureMap | None = None,
) -> DiTConfig:
    """The policy configuration that fits the dataset (cameras, image size, state sizes, the
    objects of the environment state and their entries' names, when the dataset names at least
    two objects), with ``overrides`` (any ``DiTConfig`` field) applied."""
    shapes = table.shapes()
    cameras = tuple(name.removeprefix(IMAGE_PREFIX) for name in table.cameras)
    use_environment_state = use_environment_state and ENVIRONMENT_STATE in shapes
    names = (
        environment_state_names(table.root, feature_map or FeatureMap())
        if use_environment_state
        else ()
    )
    objects = object_lengths(list(names))
    derived: dict[str, Any] = {
        "cameras": cameras,
        "state_dim": shapes[STATE][0],
        "environment_state_dim": shapes[ENVIRONMENT_STATE][0] if use_environment_state else 0,
        "environment_objects": objects,
        "environment_state_names": names if objects else (),  # mark_subtask_objects reads them
        "fps": table.fps,
    }
    if cameras:
        derived["image_size"] = tuple(shapes[table.cameras[0]][1:])
    return DiTConfig.from_dict({**asdict(DiTConfig()), **derived, **overrides})


def environment_state_names(dataset: Path, feature_map: FeatureMap) -> tuple[str, ...]:
    """The names of the served ``observation.environment_state``'s entries, from those
    ``meta/info.json`` gives its source's (``--map`` slices pick theirs); empty when the
    dataset does not name them (or names them in lerobot's older dict form)."""
    source = read_info(dataset)["features"].get(feature_map.source_of(ENVIRONMENT_STATE), {})
    names = source.get("names")
    indices = feature_map.indices_of(ENVIRONMENT_STATE)
    if isinstance(names, list) and indices is not None:
        names = [names[i] for i in indices] if max(indices) < len(names) else None
    return tuple(names) if isinstance(names, list) else ()


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


def shard_seed(seed: int, shard: int, step: int) -> int:
    """The seed of torch's generator for the forward pass of ``shard`` at optimiser step
    ``step`` (counted from 0): a 64-bit hash of (seed, shard, step) by numpy's ``SeedSequence``,
    so that nearby triples give unrelated streams."""
    return int(np.random.SeedSequence([seed, shard, step]).generate_state(1, np.uint64)[0])


def _open_step_log(path: Path, last_step: int) -> TextIO:
    """The step log at ``path`` opened for appending line by line, keeping the complete records
    of steps up to ``last_step`` (a resumed run's checkpoint; later ones are run again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().split("\n")[:-1] if path.exists() else []  # complete lines
    kept = [line for line in lines if json.loads(line)["step"] <= last_step]
    _write_atomically(path, "".join(f"{line}\n" for line in kept))
    return path.open("a", buffering=1)


class _Run:
    """One training run's state and its checkpointing."""

    def __init__(self, config: TrainConfig, overrides: dict[str, Any]):
        self.config = config
        precision = config.mixed_precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_available() else "no"
        self.accelerator = Accelerator(mixed_precision=precision)
        accelerator = self.accelerator
        processes = accelerator.num_processes
        self.shards = config.shards or processes
        if self.shards % processes:
            raise ValueError(
                f"TrainConfig.shards ({self.shards}) must be a multiple of the number of "
                f"processes ({processes}): each process plays the same number of shards"
            )
        per_process = self.shards // processes
        # the shards this process plays: p·m … p·m + m − 1
        self.shard_indices = range(
            accelerator.process_index * per_process, (accelerator.process_index + 1) * per_process
        )
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
            process_index=self.shard_indices[0],
            process_count=self.shards,
        )
        # one loader per shard played, sharing the episode table and the statistics
        self.shard_loaders = [
            self.loader,
            *(self.loader.for_process(shard) for shard in self.shard_indices[1:]),
        ]
        self.policy_config = policy_config_for(
            self.loader.table, config.use_environment_state, overrides, feature_map
        )
        self.loader.table.require(self.policy_config.input_shapes())
        policy = DiTPolicy(self.policy_config, self.loader.stats)
        if self.policy_config.image_encoder_weights:
            policy.load_image_encoders(Path(self.policy_config.image_encoder_weights))
        if config.init_from is not None:
            policy.start_from(config.init_from)
        optimiser = torch.optim.AdamW(
            policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.schedule = get_cosine_schedule_with_warmup(
            optimiser, config.warmup_steps, config.steps
        )
        self.policy, self.optimiser = accelerator.prepare(policy, optimiser)
        # the average lives where the weights do (on the GPU once prepared)
        self.ema = EmaWeights(accelerator.unwrap_model(self.policy), config.ema_decay)
        accelerator.register_for_checkpointing(self.schedule, self.ema)
        self.step = 0
        self.losses: list[float] = []

    def accumulate_gradients(self, batches: list[dict[str, Any]]) -> torch.Tensor:
        """Backpropagate (1 / m) L_r for each of this process's m shards r, batch by batch
        (``batches`` in the order of ``shard_indices``), each forward pass drawing from torch's
        generator seeded by ``shard_seed``; the gradients are summed, and averaged over the
        processes by the last backward pass (the earlier ones skip DDP's all-reduce). The
        shards' losses, (m,)."""
        accelerator = self.accelerator
        losses = []
        for number, (shard, batch) in enumerate(zip(self.shard_indices, batches, strict=True)):
            torch.manual_seed(shard_seed(self.config.seed, shard, self.step))
            last = number == len(batches) - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(self.policy):
                with accelerator.autocast():
                    loss = self.policy(_to_device(batch, accelerator.device))
                accelerator.backward(loss / len(batches))
            losses.append(loss.detach().float())
        return torch.stack(losses)

    def restore(self) -> None:
        checkpoint = _latest_checkpoint(self.config.output)
        if checkpoint is None:
            raise FileNotFoundError(f"{self.config.output}: no checkpoint to resume from")
        progress = json.loads((checkpoint / PROGRESS).read_text())
        # checkpoints written before shards were recorded: one shard per process
        shards = progress.get("shards", self.shards)
        if shards != self.shards:
            raise ValueError(
                f"{checkpoint} was trained with {shards} shards, not {self.shards}: resume with "
                f"shards={shards} (--shards {shards}) on a number of processes dividing it"
            )
        self.accelerator.load_state(str(checkpoint))
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
            progress = {"step": self.step, "shards": self.shards, "losses": self.losses}
            (staging / PROGRESS).write_text(json.dumps(progress))
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
    step_log = (
        _open_step_log(
            config.output / STEP_LOG / f"process-{accelerator.process_index}.jsonl", run.step
        )
        if config.step_log
        else None
    )
    run.policy.train()
    streams = [loader.stream(start_batch=run.step) for loader in run.shard_loaders]
    while run.step < config.steps:
        shard_losses = run.accumulate_gradients([next(stream) for stream in streams])
        grad_norm = accelerator.clip_grad_norm_(run.policy.parameters(), config.grad_clip_norm)
        learning_rate = run.schedule.get_last_lr()[0]
        run.optimiser.step()
        run.schedule.step()
        run.optimiser.zero_grad(set_to_none=True)
        run.ema.update(accelerator.unwrap_model(run.policy))
        run.step += 1
        every_shard = accelerator.gather(shard_losses).tolist()  # in shard order
        mean_loss = sum(every_shard) / len(every_shard)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"the loss became {mean_loss} at step {run.step}")
        run.losses.append(mean_loss)
        progress.update()
        if step_log is not None:
            record = {
                "step": run.step,
                "loss": mean_loss,
                "shard_losses": every_shard,
                "grad_norm": float(grad_norm),
                "learning_rate": learning_rate,
            }
            step_log.write(json.dumps(record) + "\n")
        if run.step % config.log_every == 0 and writer is not None:
            writer.add_scalar("train/loss", mean_loss, run.step)
            writer.add_scalar("train/learning_rate", learning_rate, run.step)
            writer.add_scalar("train/grad_norm", float(grad_norm), run.step)
            progress.set_postfix(loss=f"{mean_loss:.4f}")
        if run.step % config.save_every == 0 or run.step == config.steps:
            run.save_checkpoint()
    if step_log is not None:
        step_log.close()
    progress.close()
    if writer is not None:
        writer.close()
        save_loss_plot(run.losses, config.output / "loss.png")
    return {
        "output": str(config.output.resolve()),
        "steps": run.step,
        "processes": accelerator.num_processes,
        "shards": run.shards,
        "final_loss": round(sum(run.losses[-20:]) / max(len(run.losses[-20:]), 1), 5),
        "policy": str((config.output / "policy").resolve()),
    }

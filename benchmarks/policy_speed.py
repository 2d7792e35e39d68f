"""Policy speed on the CPU: our DiT policy against lerobot's Diffusion Policy and ACT, measured in
one run with the same inputs (cameras cam_high and cam_left_wrist at 96×128, 14-dim joint state,
14-dim joint actions), random weights, batch 1 for inference, on every CPU core (torch threads =
``os.cpu_count()``).

Figures:
  dit_ms_per_chunk                 median (and p90) time of ``DiTPolicy.predict_chunk``: H = 50,
                                   10 DDIM steps, the configuration we train and ship (hidden 128,
                                   4 layers, 4 heads, image channels 16-32-64-128, no dropout).
                                   Numpy observation in, normalisation, image and text encoding,
                                   sampling, unnormalisation, numpy chunk out: all included.
  dit_default_ms_per_chunk         the same with the ``DiTConfig`` network defaults.
  lerobot_act_ms_per_chunk         lerobot 0.6.1 ``ACTPolicy.predict_action_chunk``: chunk 50, 50
                                   actions executed (no temporal ensembling), defaults otherwise.
  lerobot_diffusion_10step_ms_per_chunk  lerobot ``DiffusionPolicy.predict_action_chunk`` with its
                                   defaults (horizon 64, 2 observation steps, n_action_steps 32,
                                   a ResNet-18 per camera, U-Net 512-1024-2048), centre crop 84×112,
                                   DDIM with ``num_inference_steps=10``.
  lerobot_diffusion_ms_per_chunk   the same with 100 DDPM steps, as its users get it. One such
                                   chunk takes minutes on 2 cores, so by default it is the 10-step
                                   chunk plus 90 denoising steps at the median time of the U-Net
                                   calls measured inside the 10-step chunks (forward hooks; the
                                   scheduler's own step, well under 1 ms, left out);
                                   ``--direct-100`` times the 100-step call itself
                                   (``lerobot_diffusion_100step_measured`` says which).
  *_actions_per_s                  actions executed per chunk / time per chunk: DiT 35 of 50
                                   (``executed_steps``), ACT 50, Diffusion ``n_action_steps``.
  *_train_samples_per_s            32 / median time of one training step on a batch of 32 random
                                   but valid inputs (for the DiT, 8 distinct subtask texts, 4 rows
                                   each): the policy's own loss (forward), backward,
                                   gradient clipping at norm 1, AdamW step. Our DiT takes uint8
                                   images and scales them itself; lerobot's get floats in [0, 1]
                                   through their preprocessor (below).
  diffusion_over_dit_ms ≥ 50, act_over_dit_ms ≥ 1, dit_over_diffusion_train ≥ 5: the goals.

lerobot's policies get no pretrained backbone weights (nothing is downloaded). In lerobot 0.6.x
normalisation lives in processor pipelines outside the model: its inputs are passed once through
the policy's own preprocessor (``make_default_pre_post_processors`` with statistics made from the
same ``FeatureStats`` as the DiT's, ImageNet mean and std for the cameras), and the model's call is
timed on the normalised tensors, pre- and postprocessor not included. Inference runs under
``torch.inference_mode()``.

Each figure times up to ``--calls`` chunks (``--train-steps`` steps) after up to ``--warmup``
(``--train-warmup``) untimed ones, fewer for slow policies: see ``Budget`` and ``--budget-s``.

Usage:  nice -n 5 .venv/bin/python -P benchmarks/policy_speed.py [--calls 30] [--budget-s 30]
            [--direct-100] [--dit-only]
``--dit-only`` times only our DiT's chunks (both configurations; no training steps, no lerobot
policies), in seconds rather than minutes. Ends with one JSON line of the figures.
"""

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lerobot.configs import FeatureType, PolicyFeature, PreTrainedConfig
from lerobot.policies.act import ACTConfig, ACTPolicy
from lerobot.policies.diffusion import DiffusionConfig, DiffusionPolicy
from lerobot.processor import make_default_pre_post_processors
from torch import Tensor, nn
from tqdm import tqdm

from kinema.datasets.stats import FeatureStats
from kinema.policies.dit.config import ACTION, IMAGE_PREFIX, STATE, DiTConfig
from kinema.policies.dit.policy import DiTPolicy

CAMERAS = ("cam_high", "cam_left_wrist")
IMAGE_SIZE = (96, 128)
STATE_DIM = ACTION_DIM = 14
CHUNK_STEPS = 50
TRAIN_BATCH = 32
CROP_SHAPE = (84, 112)
TASK = "pick up the red cube with the right arm"
# a training batch's subtask texts: a handful of distinct ones, each held by several rows, as in
# a batch of our recordings (SortCubes' batches of 64 hold 5)
TRAIN_TASKS = (
    TASK,
    "put the blue cube in the blue bin",
    "stack the green block on the red block",
    "hand the cube from the right arm to the left arm",
    "insert the peg into the socket",
    "pick up the yellow cube with the left arm",
    "put the purple cube in the purple bin",
    "stack the blue block on the yellow block",
)
SHIPPED = {
    "hidden_dim": 128,
    "layers": 4,
    "heads": 4,
    "image_channels": (16, 32, 64, 128),
    "dropout": 0.0,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GOALS = {"diffusion_over_dit_ms": 50.0, "act_over_dit_ms": 1.0, "dit_over_diffusion_train": 5.0}
TABLE = (
    "dit_ms_per_chunk",
    "dit_default_ms_per_chunk",
    "lerobot_act_ms_per_chunk",
    "lerobot_diffusion_ms_per_chunk",
    "lerobot_diffusion_10step_ms_per_chunk",
    "dit_actions_per_s",
    "dit_default_actions_per_s",
    "lerobot_act_actions_per_s",
    "lerobot_diffusion_actions_per_s",
    "lerobot_diffusion_10step_actions_per_s",
    "dit_train_samples_per_s",
    "lerobot_act_train_samples_per_s",
    "lerobot_diffusion_train_samples_per_s",
    "diffusion_over_dit_ms",
    "diffusion_10step_over_dit_ms",
    "act_over_dit_ms",
    "dit_over_diffusion_train",
    "dit_over_act_train",
)


# --- inputs ------------------------------------------------------------------------------------


def feature_stats(size: int) -> FeatureStats:
    """Plausible statistics of a normalised joint vector: mean 0, std 1, range ±3."""
    ones = np.ones(size, dtype=np.float32)
    return FeatureStats(0 * ones, ones, -3 * ones, 3 * ones, -2.5 * ones, 2.5 * ones)


STATS = {STATE: feature_stats(STATE_DIM), ACTION: feature_stats(ACTION_DIM)}


def lerobot_stats() -> dict[str, dict[str, Tensor]]:
    """``STATS`` in lerobot's form, plus ImageNet mean and std for every camera."""
    stats = {
        name: {key: torch.from_numpy(value) for key, value in vars(feature).items()}
        for name, feature in STATS.items()
    }
    for camera in CAMERAS:
        stats[IMAGE_PREFIX + camera] = {
            "mean": torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
            "std": torch.tensor(IMAGENET_STD).view(3, 1, 1),
        }
    return stats


def random_images(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """uint8 images of ``shape`` (…, 3, H, W)."""
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)


def random_vectors(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Values inside the statistics' range (dataset units)."""
    return torch.randn(shape, generator=generator).clamp(-3.0, 3.0)


def dit_observation(generator: torch.Generator) -> dict[str, np.ndarray]:
    """One observation as ``DiTPolicy.predict_chunk`` takes it: (H, W, 3) uint8 images."""
    observation = {STATE: random_vectors((STATE_DIM,), generator).numpy()}
    for camera in CAMERAS:
        images = random_images((*IMAGE_SIZE, 3), generator)
        observation[IMAGE_PREFIX + camera] = images.numpy()
    return observation


def dit_train_batch(config: DiTConfig, generator: torch.Generator) -> dict[str, Any]:
    """A ``WindowLoader``-style batch: uint8 images, states, action chunks, task texts."""
    steps = config.observation_steps
    batch: dict[str, Any] = {
        STATE: random_vectors((TRAIN_BATCH, steps, STATE_DIM), generator),
        ACTION: random_vectors((TRAIN_BATCH, CHUNK_STEPS, ACTION_DIM), generator),
        "action_is_pad": torch.zeros(TRAIN_BATCH, CHUNK_STEPS, dtype=torch.bool),
        "task": [TRAIN_TASKS[row % len(TRAIN_TASKS)] for row in range(TRAIN_BATCH)],
    }
    for feature in config.image_features():
        batch[feature] = random_images((TRAIN_BATCH, steps, 3, *IMAGE_SIZE), generator)
    return batch


def lerobot_batch(
    config: PreTrainedConfig,
    batch_size: int,
    observation_steps: int | None,
    horizon: int | None,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """A batch through the policy's own preprocessor (normalised): images as floats in [0, 1];
    ``observation_steps`` None leaves out the history axis, ``horizon`` None the actions."""
    history = () if observation_steps is None else (observation_steps,)
    raw: dict[str, Tensor] = {STATE: random_vectors((batch_size, *history, STATE_DIM), generator)}
    for camera in CAMERAS:
        images = random_images((batch_size, *history, 3, *IMAGE_SIZE), generator)
        raw[IMAGE_PREFIX + camera] = images.float() / 255.0
    if horizon is not None:
        raw[ACTION] = random_vectors((batch_size, horizon, ACTION_DIM), generator)
        raw["action_is_pad"] = torch.zeros(batch_size, horizon, dtype=torch.bool)
    preprocessor, _ = make_default_pre_post_processors(config, lerobot_stats())
    return preprocessor(raw)


# --- policies ----------------------------------------------------------------------------------


def dit_policy(overrides: dict[str, Any]) -> DiTPolicy:
    config = DiTConfig(
        cameras=CAMERAS,
        image_size=IMAGE_SIZE,
        state_dim=STATE_DIM,
        chunk_steps=CHUNK_STEPS,
        **overrides,
    )
    return DiTPolicy(config, STATS)


def lerobot_features() -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """lerobot's input and output features for our cameras, state and actions."""
    inputs = {STATE: PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))}
    for camera in CAMERAS:
        inputs[IMAGE_PREFIX + camera] = PolicyFeature(
            type=FeatureType.VISUAL, shape=(3, *IMAGE_SIZE)
        )
    outputs = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    return inputs, outputs


def diffusion_policy(inference_steps: int | None = None) -> DiffusionPolicy:
    """lerobot's Diffusion Policy with its defaults; ``inference_steps`` switches to DDIM."""
    inputs, outputs = lerobot_features()
    sampler = {} if inference_steps is None else {"noise_scheduler_type": "DDIM"}
    config = DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        crop_shape=CROP_SHAPE,
        pretrained_backbone_weights=None,
        num_inference_steps=inference_steps,
        **sampler,
    )
    return DiffusionPolicy(config)


def act_policy() -> ACTPolicy:
    """lerobot's ACT with 50-action chunks, all executed."""
    inputs, outputs = lerobot_features()
    config = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        chunk_size=CHUNK_STEPS,
        n_action_steps=CHUNK_STEPS,
        pretrained_backbone_weights=None,
    )
    return ACTPolicy(config)


# --- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Up to ``calls`` timed calls after up to ``warmup`` untimed ones; the warm-up stops once it
    has taken a quarter of ``seconds``, the timed calls once they have taken ``seconds`` (each
    phase after at least one call), so that slow policies get fewer calls."""

    calls: int
    warmup: int
    seconds: float


def time_ms(call: Callable[[], object], budget: Budget, desc: str) -> np.ndarray:
    """Milliseconds of each timed call of ``call`` (see ``Budget``)."""
    start = time.perf_counter()
    for _ in range(budget.warmup):
        call()
        if time.perf_counter() - start > budget.seconds / 4:
            break
    ms: list[float] = []
    for _ in tqdm(range(budget.calls), desc=desc, leave=False):
        start = time.perf_counter()
        call()
        ms.append(1e3 * (time.perf_counter() - start))
        if sum(ms) > 1e3 * budget.seconds:
            break
    return np.array(ms)


class CallTimer:
    """Milliseconds of every forward call of a module, through forward hooks."""

    def __init__(self, module: nn.Module):
        self.ms: list[float] = []
        self._start = 0.0
        module.register_forward_pre_hook(self._before)
        module.register_forward_hook(self._after)

    def _before(self, *_: object) -> None:
        self._start = time.perf_counter()

    def _after(self, *_: object) -> None:
        self.ms.append(1e3 * (time.perf_counter() - self._start))


def chunk_figures(
    name: str, call: Callable[[], object], executed: int, budget: Budget
) -> dict[str, float]:
    """Median and p90 ms per chunk, the actions per second that feeds, and the timed calls."""
    with torch.inference_mode():
        ms = time_ms(call, budget, name)
    median = float(np.median(ms))
    return {
        f"{name}_ms_per_chunk": median,
        f"{name}_p90_ms_per_chunk": float(np.percentile(ms, 90)),
        f"{name}_actions_per_s": executed / (median / 1e3),
        f"{name}_timed_calls": len(ms),
    }


def train_samples_per_s(
    model: nn.Module, loss: Callable[[], Tensor], budget: Budget, desc: str
) -> float:
    """Batch size / median time of forward, backward, clipping and an AdamW step."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    model.train()

    def step() -> None:
        loss().backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    return TRAIN_BATCH / (float(np.median(time_ms(step, budget, desc))) / 1e3)


def parameters_m(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


# --- benchmarks --------------------------------------------------------------------------------


def bench_dit(
    name: str, overrides: dict[str, Any], inference: Budget, training: Budget | None
) -> dict[str, float]:
    """Chunks of a DiT policy built with ``overrides``; training steps unless ``training`` is
    None."""
    generator = torch.Generator().manual_seed(0)
    policy = dit_policy(overrides).eval()
    observation = dit_observation(generator)
    figures = chunk_figures(
        name,
        lambda: policy.predict_chunk(observation, TASK),
        policy.config.executed_steps,
        inference,
    )
    figures[f"{name}_parameters_m"] = parameters_m(policy)
    if training is not None:
        batch = dit_train_batch(policy.config, generator)
        figures[f"{name}_train_samples_per_s"] = train_samples_per_s(
            policy, lambda: policy.loss(batch), training, f"{name} train"
        )
    return figures


def bench_diffusion_10step(inference: Budget) -> tuple[dict[str, float], float]:
    """Chunks of lerobot Diffusion with 10 DDIM steps, and the median ms of its U-Net calls."""
    policy = diffusion_policy(inference_steps=10).eval()
    config = policy.config
    batch = lerobot_batch(config, 1, config.n_obs_steps, None, torch.Generator().manual_seed(0))
    unet = CallTimer(policy.diffusion.unet)
    figures = chunk_figures(
        "lerobot_diffusion_10step",
        lambda: policy.predict_action_chunk(batch),
        config.n_action_steps,
        inference,
    )
    return figures, float(np.median(unet.ms))


def bench_diffusion(inference: Budget, training: Budget, direct_100: bool) -> dict[str, float]:
    """lerobot Diffusion as its users get it: 100-step DDPM chunks and training steps.

    Unless ``direct_100``, the 100-step time is the 10-step chunk's plus 90 more denoising steps
    at the median time of the U-Net calls inside the 10-step chunks (the scheduler's own step,
    well under 1 ms, left out); with it, the 100-step ``predict_action_chunk`` itself is timed.
    """
    figures, step_ms = bench_diffusion_10step(inference)
    generator = torch.Generator().manual_seed(1)
    policy = diffusion_policy().eval()
    config = policy.config
    steps = policy.diffusion.num_inference_steps
    if direct_100:
        batch = lerobot_batch(config, 1, config.n_obs_steps, None, generator)
        figures |= chunk_figures(
            "lerobot_diffusion",
            lambda: policy.predict_action_chunk(batch),
            config.n_action_steps,
            Budget(inference.calls, 0, inference.seconds),
        )
    else:
        ms = figures["lerobot_diffusion_10step_ms_per_chunk"] + (steps - 10) * step_ms
        figures["lerobot_diffusion_ms_per_chunk"] = ms
        figures["lerobot_diffusion_actions_per_s"] = config.n_action_steps / (ms / 1e3)
    figures["lerobot_diffusion_unet_ms_per_step"] = step_ms
    figures["lerobot_diffusion_inference_steps"] = steps
    figures["lerobot_diffusion_100step_measured"] = int(direct_100)
    figures["lerobot_diffusion_parameters_m"] = parameters_m(policy)
    train_batch = lerobot_batch(config, TRAIN_BATCH, config.n_obs_steps, config.horizon, generator)
    figures["lerobot_diffusion_train_samples_per_s"] = train_samples_per_s(
        policy, lambda: policy(train_batch)[0], training, "diffusion train"
    )
    return figures


def bench_act(inference: Budget, training: Budget) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    policy = act_policy().eval()
    config = policy.config
    batch = lerobot_batch(config, 1, None, None, generator)
    figures = chunk_figures(
        "lerobot_act",
        lambda: policy.predict_action_chunk(batch),
        config.n_action_steps,
        inference,
    )
    figures["lerobot_act_parameters_m"] = parameters_m(policy)
    train_batch = lerobot_batch(config, TRAIN_BATCH, None, config.chunk_size, generator)
    figures["lerobot_act_train_samples_per_s"] = train_samples_per_s(
        policy, lambda: policy(train_batch)[0], training, "act train"
    )
    return figures


def ratios(figures: dict[str, float]) -> dict[str, float]:
    dit_ms = figures["dit_ms_per_chunk"]
    dit_train = figures["dit_train_samples_per_s"]
    return {
        "diffusion_over_dit_ms": figures["lerobot_diffusion_ms_per_chunk"] / dit_ms,
        "diffusion_10step_over_dit_ms": figures["lerobot_diffusion_10step_ms_per_chunk"] / dit_ms,
        "act_over_dit_ms": figures["lerobot_act_ms_per_chunk"] / dit_ms,
        "dit_over_diffusion_train": dit_train / figures["lerobot_diffusion_train_samples_per_s"],
        "dit_over_act_train": dit_train / figures["lerobot_act_train_samples_per_s"],
    }


def print_table(figures: dict[str, float]) -> None:
    """The headline figures: value, goal and whether it is met."""
    print(f"{'figure':40s} {'value':>11s} {'goal':>7s}  met?")
    for key in TABLE:
        goal = GOALS.get(key)
        goal_text, met = ("—", "—") if goal is None else (f"≥ {goal:g}", figures[key] >= goal)
        met_text = met if isinstance(met, str) else ("yes" if met else "NO")
        print(f"{key:40s} {figures[key]:11.2f} {goal_text:>7s}  {met_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30, help="most timed chunks per policy")
    parser.add_argument("--warmup", type=int, default=3, help="most untimed chunks before them")
    parser.add_argument("--train-steps", type=int, default=10, help="most timed training steps")
    parser.add_argument("--train-warmup", type=int, default=3, help="most untimed steps before")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=30.0,
        help="seconds of timed calls per figure (see Budget)",
    )
    parser.add_argument(
        "--direct-100",
        action="store_true",
        help="time lerobot Diffusion's 100-step chunk itself (minutes on 2 cores)",
    )
    parser.add_argument(
        "--dit-only",
        action="store_true",
        help="time only our DiT's chunks (both configurations), nothing else",
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    inference = Budget(args.calls, args.warmup, args.budget_s)
    training = Budget(args.train_steps, args.train_warmup, args.budget_s)

    if args.dit_only:
        figures = bench_dit("dit", SHIPPED, inference, None)
        figures |= bench_dit("dit_default", {}, inference, None)
        for key in ("dit_ms_per_chunk", "dit_default_ms_per_chunk"):
            print(f"{key:40s} {figures[key]:11.2f}")
        print(json.dumps({key: round(value, 4) for key, value in figures.items()}))
        return
    figures = bench_dit("dit", SHIPPED, inference, training)
    figures |= bench_dit("dit_default", {}, inference, None)
    figures |= bench_act(inference, training)
    figures |= bench_diffusion(inference, training, args.direct_100)
    figures |= ratios(figures)
    print_table(figures)
    summary = {key: round(value, 4) for key, value in figures.items()}
    summary["torch_threads"] = torch.get_num_threads()
    summary["cpu_count"] = os.cpu_count() or 1
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""The DiT policy: normalisation, observation tokens, the generative objective, sampling, and
the ``save_pretrained`` / ``from_pretrained`` checkpoint format.

Normalisation (statistics from the training data, stored with the weights): joint and object
states ``(x - mean) / max(std, 0.01)``; actions to [-1, 1] by their range,
``2 (a - min) / (max - min) - 1``, and back after sampling.

Objectives, with x0 the normalised chunk and ε standard normal noise:

- **diffusion** (DDPM): t uniform in 0..T-1, x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε (diffusers'
  ``DDPMScheduler.add_noise``); the network predicts x0 (``DiTConfig.prediction``, the
  default: far faster to learn) or ε, mean squared error over the actions that are not
  padding. Sampling starts from noise and runs ``inference_steps`` of DDIM or DPM-Solver++
  (diffusers schedulers).
- **flow** (rectified flow): s uniform in [0, 1], x_s = s x0 + (1 - s) ε; the network predicts
  the velocity x0 - ε; sampling integrates dx/ds from s = 0 (noise) to 1 with Euler steps.

Observation tokens: per history step and camera, the image encoder's patch tokens; per step one
joint-state token (and one object-state token, or one per object, when configured; with
``mark_subtask_objects``, those of the objects the subtask text names are marked and their mean
joins the summary, ``subtask_objects``; with ``hide_unnamed_objects``, the others are padding);
the subtask text's tokens (its bytes, or a frozen pretrained text model's tokens with
``DiTConfig.text_model``). Each token kind and history step gets a learned embedding added.
Their summary for adaLN (``DiTConfig.summary``) is by default the mean of the kinds' means:
(cameras' patch means + state + object state + text mean) / kinds.

Example:
    policy = DiTPolicy(DiTConfig(cameras=("cam_high",)), loader.stats)
    loss = policy.loss(batch)                       # a WindowLoader batch
    chunk = policy.predict_chunk(observation, "pick up the red cube with the right arm")
    policy.save_pretrained(Path("outputs/policy")); DiTPolicy.from_pretrained(Path(...))
"""

import os
import shutil
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from safetensors.torch import load_file, save_file
from torch import nn

from kinema.datasets.stats import FeatureStats, load_stats, save_stats
from kinema.policies.dit.config import ACTION, ENVIRONMENT_STATE, STATE, DiTConfig
from kinema.policies.dit.encoders import (
    ImageEncoder,
    ObjectEncoder,
    PretrainedTextEncoder,
    StackedImageEncoders,
    TextEncoder,
    VectorEncoder,
    encode_text_bytes,
)
from kinema.policies.dit.model import DiffusionTransformer, ObservationTokens, ParameterStamp
from kinema.policies.dit.subtask_objects import ROLES, SubtaskObjects
from kinema.types import ActionChunk, Subtask

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "stats.json"
CARD_FILE = "README.md"
_FLOW_TIME_SCALE = 1000.0  # flow times s in [0, 1] enter the timestep embedding as 1000 s
# States are divided by max(std, 0.01): an entry that hardly varies in the demonstrations (a
# cube's tilt, 1e-4 in quaternion units) would otherwise turn a small change at run time (the
# cube tipping in a fumbled grasp) into a huge input the network never saw.
_STD_FLOOR = 1e-2
_RANGE_FLOOR = 1e-3
_TEXT_CACHE_SIZE = 8  # batches of subtask texts whose tokens sampling keeps (_text_tokens)


class PolicyInputError(ValueError):
    """An observation the policy cannot use: missing features, wrong shapes, non-finite values."""


class DiTPolicy(nn.Module):
    """Diffusion transformer policy (see the module docstring)."""

    def __init__(self, config: DiTConfig, stats: dict[str, FeatureStats]):
        super().__init__()
        self.config = config
        self.stats = stats
        needed = [STATE, ACTION] + ([ENVIRONMENT_STATE] if config.environment_state_dim else [])
        missing = [name for name in needed if name not in stats]
        if missing:
            raise ValueError(f"DiTPolicy: normalisation statistics missing for {missing}")
        dim = config.hidden_dim
        self._normaliser("state", stats[STATE], config.state_dim)
        self._normaliser("action", stats[ACTION], config.action_dim)
        self.subtask_objects: SubtaskObjects | None = None
        if config.environment_state_dim:
            self._normaliser("environment", stats[ENVIRONMENT_STATE], config.environment_state_dim)
            if config.mark_subtask_objects or config.hide_unnamed_objects:
                self.subtask_objects = SubtaskObjects(config.environment_state_names)
            if self.subtask_objects and self.subtask_objects.lengths != config.environment_objects:
                raise ValueError(
                    f"DiTPolicy: environment_state_names give objects of lengths "
                    f"{self.subtask_objects.lengths}, environment_objects says "
                    f"{config.environment_objects}"
                )
            self.environment_encoder: VectorEncoder | ObjectEncoder = (
                ObjectEncoder(
                    config.environment_objects, dim, ROLES if config.mark_subtask_objects else 0
                )
                if config.environment_objects
                else VectorEncoder(config.environment_state_dim, dim)
            )
        self.image_encoders = nn.ModuleDict(
            {camera: ImageEncoder(dim, config.image_channels) for camera in config.cameras}
        )
        self.state_encoder = VectorEncoder(config.state_dim, dim)
        self.text_encoder: TextEncoder | PretrainedTextEncoder
        if config.text_model is None:
            self.text_encoder = TextEncoder(
                dim, config.heads, config.text_layers, config.text_max_bytes, config.dropout
            )
        else:
            self.text_encoder = PretrainedTextEncoder(
                config.text_model, dim, config.text_max_tokens
            )
        kinds = len(config.cameras) + 3  # cameras, state, object state, text
        self.kind_embedding = nn.Embedding(kinds, dim)
        self.step_embedding = nn.Embedding(config.observation_steps, dim)
        self.transformer = DiffusionTransformer(
            config.action_dim,
            config.chunk_steps,
            dim,
            config.layers,
            config.heads,
            config.mlp_ratio,
            config.dropout,
        )
        scheduler_config = {
            "num_train_timesteps": config.train_timesteps,
            "beta_schedule": config.beta_schedule,
            "prediction_type": config.prediction,
        }
        self.noise_scheduler = DDPMScheduler(**scheduler_config, clip_sample=True)
        if config.sampler == "ddim":
            self.sampler = DDIMScheduler(**scheduler_config, clip_sample=True)
        else:
            self.sampler = DPMSolverMultistepScheduler(
                **scheduler_config, algorithm_type="dpmsolver++"
            )
        self._stacked_encoders: tuple[ParameterStamp, StackedImageEncoders] | None = None
        # (texts, device) → (the text encoder's ParameterStamp, (tokens, padding)): _text_tokens
        self._text_cache: OrderedDict[tuple[Any, ...], tuple[ParameterStamp, Any]] = OrderedDict()

    def train(self, mode: bool = True) -> "DiTPolicy":
        """``nn.Module.train``; training mode also lets go of what sampling keeps from the weights
        (``_camera_patches``' stacked image encoders, ``_text_tokens``' tokens: memory), which
        the next chunk sampled in eval mode makes again."""
        if mode:
            self._stacked_encoders = None
            self._text_cache.clear()
        return super().train(mode)

    # --- normalisation -------------------------------------------------------------------------

    def _normaliser(self, name: str, stats: FeatureStats, size: int) -> None:
        if stats.mean.shape != (size,):
            raise ValueError(
                f"DiTPolicy: statistics of {name} have shape {stats.mean.shape}, the config "
                f"says ({size},)"
            )
        if name == "action":
            low = torch.from_numpy(stats.min)
            span = torch.from_numpy(np.maximum(stats.max - stats.min, _RANGE_FLOOR))
            self.register_buffer("action_low", low)
            self.register_buffer("action_span", span)
        else:
            self.register_buffer(f"{name}_mean", torch.from_numpy(stats.mean))
            self.register_buffer(f"{name}_std", torch.from_numpy(np.maximum(stats.std, _STD_FLOOR)))

    def normalise_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return 2.0 * (actions - self.action_low) / self.action_span - 1.0

    def unnormalise_actions(self, normalised: torch.Tensor) -> torch.Tensor:
        return (normalised + 1.0) / 2.0 * self.action_span + self.action_low

    # --- observation tokens --------------------------------------------------------------------

    def encode_observation(self, batch: dict[str, Any]) -> ObservationTokens:
        """Observation tokens (B, O, D), their padding mask (B, O) and their summary (B, D, see
        ``DiTConfig.summary``) from a batch holding ``observation.state`` (B, n, S), cameras
        (B, n, 3, H, W) uint8 or 0..1 floats, optional ``observation.environment_state``
        (B, n, E), and ``task`` (B texts)."""
        config = self.config
        state = batch[STATE]
        batch_size, steps = state.shape[:2]
        device = state.device
        step_codes = self.step_embedding(torch.arange(steps, device=device))  # (n, D)
        tokens = []
        for kind, patches in enumerate(self._camera_patches(batch)):
            patches = patches.view(batch_size, steps, -1, config.hidden_dim)
            patches = patches + step_codes[None, :, None, :] + self.kind_embedding.weight[kind]
            tokens.append(patches.flatten(1, 2))
        state_kind = len(config.cameras)
        normalised = (state - self.state_mean) / self.state_std
        state_tokens = self.state_encoder(normalised.flatten(0, 1)).view(batch_size, steps, -1)
        tokens.append(state_tokens + step_codes + self.kind_embedding.weight[state_kind])
        paddings: list[torch.Tensor | None] = [None] * len(tokens)  # per kind; None: none
        named_summary = None  # the mean of the tokens of the objects the subtask names
        if config.environment_state_dim:
            object_tokens, object_padding, named_summary = self._object_tokens(batch, steps)
            object_tokens = object_tokens + step_codes[None, :, None, :]
            tokens.append(object_tokens.flatten(1, 2) + self.kind_embedding.weight[state_kind + 1])
            paddings.append(None if object_padding is None else object_padding.flatten(1, 2))
        text_tokens, text_padding = self._text_tokens(list(batch["task"]), device)
        tokens.append(text_tokens + self.kind_embedding.weight[state_kind + 2])
        paddings.append(text_padding)
        observation = torch.cat(tokens, dim=1)
        padding = torch.cat(
            [
                torch.zeros(kind.shape[:2], dtype=torch.bool, device=device) if pad is None else pad
                for kind, pad in zip(tokens, paddings, strict=True)
            ],
            dim=1,
        )
        if config.summary == "tokens":
            summary = _masked_mean(observation, padding)
        else:
            kind_means = [
                kind.mean(dim=1) if pad is None else _masked_mean(kind, pad)
                for kind, pad in zip(tokens, paddings, strict=True)
            ]
            if named_summary is not None:
                kind_means.append(named_summary)
            summary = torch.stack(kind_means).mean(dim=0)
        return ObservationTokens(observation, padding, summary)

    def _object_tokens(
        self, batch: dict[str, Any], steps: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The object-state tokens (B, n, K, D) of ``batch``; with ``hide_unnamed_objects``
        their padding (B, n, K), True for an object the subtask text does not name (none
        where it names no object), else None; with ``mark_subtask_objects`` the mean of the
        named objects' tokens over objects and steps (B, D), else None."""
        config = self.config
        raw = batch[ENVIRONMENT_STATE].flatten(0, 1)  # (B·n, E)
        objects = (raw - self.environment_mean) / self.environment_std
        batch_size = raw.shape[0] // steps
        if self.subtask_objects is None:
            object_tokens = self.environment_encoder(objects)  # (B·n, K, D)
            return object_tokens.view(batch_size, steps, -1, config.hidden_dim), None, None
        texts = [text for text in batch["task"] for _ in range(steps)]
        roles = self.subtask_objects.roles(texts, raw)  # (B·n, K)
        named = roles > 0
        marks = roles if config.mark_subtask_objects else None
        object_tokens = self.environment_encoder(objects, marks)
        padding = named_summary = None
        if config.hide_unnamed_objects:
            padding = (~named & named.any(dim=1, keepdim=True)).view(batch_size, steps, -1)
        if config.mark_subtask_objects:
            named_mean = _masked_mean(object_tokens, ~named)
            named_summary = named_mean.view(batch_size, steps, -1).mean(dim=1)
        return object_tokens.view(batch_size, steps, -1, config.hidden_dim), padding, named_summary

    def _camera_patches(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """Per camera its images' patch tokens (B·n, P, D) from its image encoder. When sampling
        (eval mode, no gradients) with several cameras, all cameras at once
        (``StackedImageEncoders``: the same tokens up to float rounding, faster), made from the
        encoders' weights once and kept until they change (``ParameterStamp``)."""
        images = []
        for camera in self.config.cameras:
            frames = batch[f"observation.images.{camera}"].flatten(0, 1)
            images.append(frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float())
        cameras, encoders = self.config.cameras, self.image_encoders
        if len(images) < 2 or self.training or torch.is_grad_enabled():
            return [encoders[camera](x) for camera, x in zip(cameras, images, strict=True)]
        cached = self._stacked_encoders
        if cached is None or not cached[0].matches(encoders):
            stacked = StackedImageEncoders([encoders[camera] for camera in cameras])
            cached = self._stacked_encoders = (ParameterStamp.of(encoders), stacked)
        return cached[1](images)

    def _text_tokens(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, ...]:
        """The text encoder's tokens (B, L, D) and padding mask (B, L) for ``texts``.

        Cached when sampling (eval mode, no gradients): the subtask text changes rarely, so the
        tokens of the last ``_TEXT_CACHE_SIZE`` batches of texts are kept, each until the text
        encoder's parameters change (``ParameterStamp``). The tokens depend on nothing
        else: no dropout in eval mode."""
        encoder = self.text_encoder
        if encoder.training or torch.is_grad_enabled():
            return self._encode_texts(texts, device)
        key = (tuple(texts), str(device))
        cached = self._text_cache.get(key)
        if cached is None or not cached[0].matches(encoder):
            cached = (ParameterStamp.of(encoder), self._encode_texts(texts, device))
            self._text_cache[key] = cached
            while len(self._text_cache) > _TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)  # the least recently used
        self._text_cache.move_to_end(key)
        return cached[1]

    def _encode_texts(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, ...]:
        """``_text_tokens`` computed: each distinct text is encoded once and its tokens are
        shared by the batch rows that hold it (a batch of 64 windows holds a handful of
        subtask texts). The byte columns that pad every text are cut: under the padding mask
        they change no other token, and the DiT's cross-attention ignores them too. Both save
        compute only; with dropout, rows that share a text share its dropout draw."""
        distinct = list(dict.fromkeys(texts))
        if self.config.text_model is not None:
            tokens, padding = self.text_encoder(distinct)
        else:
            longest = max(len(text.encode("utf-8")) for text in distinct)
            length = max(1, min(longest, self.config.text_max_bytes))
            tokens, padding = self.text_encoder(encode_text_bytes(distinct, length).to(device))
        if len(distinct) == len(texts):
            return tokens, padding
        row_of = {text: row for row, text in enumerate(distinct)}
        rows = torch.tensor([row_of[text] for text in texts], device=tokens.device)
        return tokens[rows], padding[rows]

    # --- training ------------------------------------------------------------------------------

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """The training loss (so that distributed wrappers, which hook ``forward``, see it)."""
        return self.loss(batch)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mean squared error of the denoising target over the actions that are neither padding
        nor a demonstrator's deliberate mistake (``action_is_pad``, ``action_is_mistake``)."""
        target_chunk = self.normalise_actions(batch[ACTION])  # (B, H, A)
        observation = self.encode_observation(batch)
        noise = torch.randn_like(target_chunk)
        batch_size = target_chunk.shape[0]
        if self.config.objective == "flow":
            s = torch.rand(batch_size, device=target_chunk.device)
            noisy = s[:, None, None] * target_chunk + (1.0 - s[:, None, None]) * noise
            prediction = self.transformer(noisy, s * _FLOW_TIME_SCALE, observation)
            target = target_chunk - noise
        else:
            timesteps = torch.randint(
                0, self.config.train_timesteps, (batch_size,), device=target_chunk.device
            )
            noisy = self.noise_scheduler.add_noise(target_chunk, noise, timesteps)
            prediction = self.transformer(noisy, timesteps, observation)
            target = noise if self.config.prediction == "epsilon" else target_chunk
        errors = F.mse_loss(prediction, target, reduction="none").mean(dim=2)  # (B, H)
        kept = torch.ones_like(errors, dtype=torch.bool)
        for left_out in ("action_is_pad", "action_is_mistake"):
            if left_out in batch:
                kept &= ~batch[left_out]
        kept = kept.to(errors.dtype)
        return (errors * kept).sum() / kept.sum().clamp(min=1.0)

    # --- sampling ------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        batch: dict[str, Any],
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Action chunks (B, H, A) in the dataset's units for the observations in ``batch``.

        ``prefix`` (B, d, A), in the dataset's units, inpaints the first d actions: after every
        denoising step they are reset to the prefix noised to the current level, and the chunk
        starts with the prefix exactly, so the rest is generated to continue it (real-time
        chunking).
        """
        observation = self.encode_observation(batch)
        batch_size = observation.tokens.shape[0]
        shape = (batch_size, self.config.chunk_steps, self.config.action_dim)
        x = torch.randn(shape, generator=generator, device=observation.tokens.device)
        known = None if prefix is None else self.normalise_actions(prefix.to(x))
        width = 0 if known is None else known.shape[1]
        start_noise = x[:, :width].clone()
        steps = self.config.inference_steps
        if self.config.objective == "flow":
            times = [k / steps for k in range(steps)]
            timesteps = torch.tensor(times, device=x.device) * _FLOW_TIME_SCALE
        else:
            self.sampler.set_timesteps(steps, device=x.device)
            timesteps = self.sampler.timesteps
        network = self._denoiser(observation, timesteps)
        if self.config.objective == "flow":
            for k in range(steps):
                x = x + network(x, k) / steps
                if known is not None:  # on the straight path from its noise to the prefix
                    level = (k + 1) / steps
                    x[:, :width] = level * known + (1.0 - level) * start_noise
        else:
            ddim = self._ddim_coefficients(timesteps)
            for index in range(len(timesteps)):
                output = network(x, index)
                if ddim is None:
                    t = timesteps[index]
                    x = self.sampler.step(output, t, x, generator=generator).prev_sample
                else:
                    x = _ddim_step(x, output, ddim.roots[index], self.config.prediction, ddim.clip)
                if known is not None and index + 1 < len(timesteps):
                    level = timesteps[index + 1].reshape(1)
                    x[:, :width] = self.noise_scheduler.add_noise(known, start_noise, level)
        if known is not None:
            x[:, :width] = known
        return self.unnormalise_actions(x.clamp(-1.0, 1.0))

    def _denoiser(
        self, observation: ObservationTokens, timesteps: torch.Tensor
    ) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """The network as a function of the noisy chunk and the step's index into
        ``timesteps``. In eval mode what the steps share is worked out once
        (``DiffusionTransformer.prepare`` / ``denoise``); in training mode (dropout) every step
        runs the whole network."""
        batch_size = observation.tokens.shape[0]
        if self.training:

            def network(x: torch.Tensor, index: int) -> torch.Tensor:
                t = timesteps[index].expand(batch_size)
                return self.transformer(x, t, observation)

            return network
        context = self.transformer.prepare(observation, timesteps)
        return lambda x, index: self.transformer.denoise(x, index, context)

    def _ddim_coefficients(self, timesteps: torch.Tensor) -> "_DdimSteps | None":
        """Per step the coefficients of the DDIM update (eta 0) that ``DDIMScheduler.step``
        would compute, as floats (None where the sampler is not a plain DDIM one)."""
        sampler = self.sampler
        if (
            not isinstance(sampler, DDIMScheduler)
            or sampler.config.thresholding
            or self.config.prediction not in ("epsilon", "sample")
        ):
            return None
        stride = sampler.config.num_train_timesteps // sampler.num_inference_steps
        t = timesteps.cpu()
        previous = t - stride
        alpha = sampler.alphas_cumprod[t]
        alpha_previous = torch.where(
            previous >= 0,
            sampler.alphas_cumprod[previous.clamp(min=0)],
            sampler.final_alpha_cumprod,
        )
        roots = [alpha**0.5, (1 - alpha) ** 0.5, alpha_previous**0.5, (1 - alpha_previous) ** 0.5]
        clip = sampler.config.clip_sample_range if sampler.config.clip_sample else None
        return _DdimSteps([tuple(step) for step in torch.stack(roots, dim=1).tolist()], clip)

    def predict_chunk(
        self,
        observation: dict[str, np.ndarray],
        subtask: Subtask | str,
        time_s: float = 0.0,
        generator: torch.Generator | None = None,
        prefix: np.ndarray | None = None,
    ) -> ActionChunk:
        """One action chunk for one observation (``prefix``: (d, A) actions it must start with,
        see ``sample``).

        ``observation`` holds ``observation.state`` ((S,) or (n, S)), each camera as (H, W, 3)
        or (n, H, W, 3) uint8, and ``observation.environment_state`` when configured; a single
        frame is repeated to fill the history.
        """
        batch = self.observation_batch(observation)
        batch["task"] = [subtask.text if isinstance(subtask, Subtask) else subtask]
        known = None if prefix is None else torch.as_tensor(prefix, dtype=torch.float32)[None]
        with torch.inference_mode():
            actions = self.sample(batch, generator, known)[0].cpu().numpy().astype(np.float64)
        return ActionChunk(actions, time_s, 1.0 / self.config.fps, self.config.action_space)

    def observation_batch(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        """A batch of one from a single observation (see ``predict_chunk``), checked."""
        device = self.action_low.device
        batch: dict[str, Any] = {}
        for name, values in observation_arrays(self.config, observation).items():
            tensor = torch.from_numpy(values)
            if values.dtype == np.uint8:  # (n, H, W, 3) → (n, 3, H, W)
                tensor = tensor.permute(0, 3, 1, 2)
            batch[name] = tensor[None].to(device)
        return batch

    # --- checkpoints ---------------------------------------------------------------------------

    def save_pretrained(self, directory: Path) -> None:
        """Write config.json, model.safetensors, stats.json and a model card into ``directory``,
        atomically: a reader sees the old checkpoint or the new one, never a mix. A pretrained
        text model (``DiTConfig.text_model``) is not written: config.json records its path."""
        directory = Path(directory)
        staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / CONFIG_FILE).write_text(self.config.to_json())
        state = {
            name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()
        }
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        save_stats(self.stats, staging / STATS_FILE)
        (staging / CARD_FILE).write_text(model_card(self))
        previous = directory.with_name(f"{directory.name}.old-{os.getpid()}")
        if directory.exists():
            os.replace(directory, previous)
        os.replace(staging, directory)
        shutil.rmtree(previous, ignore_errors=True)

    def export_image_encoder(self, camera: str, path: Path) -> None:
        """Write the image encoder of ``camera`` as a safetensors file, to start another
        policy's encoders from (``DiTConfig.image_encoder_weights``)."""
        encoder = self.image_encoders[camera].state_dict()
        save_file({name: tensor.contiguous() for name, tensor in encoder.items()}, str(path))

    def load_image_encoders(self, path: Path) -> None:
        """Start every camera's image encoder from the weights in ``path``; a clear error when
        they were made for other encoder sizes."""
        weights = load_file(str(path))
        for camera, encoder in self.image_encoders.items():
            try:
                encoder.load_state_dict(weights, strict=True)
            except RuntimeError as error:
                raise ValueError(
                    f"{path}: not weights for this image encoder (image_channels "
                    f"{self.config.image_channels}, hidden_dim {self.config.hidden_dim}) of "
                    f"camera {camera}: {error}"
                ) from error

    def start_from(self, directory: Path) -> None:
        """Take the network weights of the policy saved in ``directory`` (to fine-tune it on
        this policy's dataset), keeping this policy's normalisation statistics; a clear error
        when that policy was configured otherwise."""
        directory = Path(directory)
        saved = DiTConfig.load(directory / CONFIG_FILE)
        if saved != self.config:
            differing = [
                f.name
                for f in fields(DiTConfig)
                if getattr(saved, f.name) != getattr(self.config, f.name)
            ]
            raise ValueError(
                f"{directory}: that policy differs from this one in {differing}; fine-tuning "
                "starts from a policy of the same configuration"
            )
        statistics = {name for name, _ in self.named_buffers(recurse=False)}
        weights = load_file(str(directory / WEIGHTS_FILE))
        network = {name: value for name, value in weights.items() if name not in statistics}
        self.load_state_dict({**self.state_dict(), **network}, strict=True)

    @classmethod
    def from_pretrained(cls, directory: Path, device: str | torch.device = "cpu") -> "DiTPolicy":
        """The policy saved in the local ``directory`` by ``save_pretrained`` (a pretrained text
        model is loaded again from the path config.json records)."""
        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE, STATS_FILE):
            if not (directory / name).exists():
                raise FileNotFoundError(f"{directory / name} is missing: not a DiT checkpoint")
        policy = cls(DiTConfig.load(directory / CONFIG_FILE), load_stats(directory / STATS_FILE))
        policy.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
        return policy.to(device).eval()


def _masked_mean(tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """(B, L, D) tokens → (B, D), the mean of those whose (B, L) ``padding`` is False."""
    kept = (~padding).unsqueeze(-1).to(tokens.dtype)
    return (tokens * kept).sum(dim=1) / kept.sum(dim=1).clamp(min=1.0)


def observation_arrays(
    config: DiTConfig, observation: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The inputs that a policy with ``config`` reads from one observation, checked, each with
    its history: (n, S) float32 joint state, (n, E) float32 environment state when configured,
    and (n, H, W, 3) uint8 images per camera (n = ``config.observation_steps``; a single frame is
    repeated). A missing input, a wrong shape, a non-finite value or non-uint8 images raise
    ``PolicyInputError``."""
    steps = config.observation_steps
    arrays: dict[str, np.ndarray] = {}
    vectors = {STATE: config.state_dim}
    if config.environment_state_dim:
        vectors[ENVIRONMENT_STATE] = config.environment_state_dim
    for name, size in vectors.items():
        values = np.asarray(_require(observation, name), dtype=np.float32)
        arrays[name] = _with_history(values, (size,), steps, name)
    for feature in config.image_features():
        images = _with_history(
            _require(observation, feature), (*config.image_size, 3), steps, feature
        )
        if images.dtype != np.uint8:
            raise PolicyInputError(f"{feature}: expected uint8 images, got {images.dtype}")
        arrays[feature] = images
    return arrays


def _require(observation: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in observation:
        raise PolicyInputError(f"the observation has no {name!r}; it has {sorted(observation)}")
    values = np.asarray(observation[name])
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise PolicyInputError(f"{name} holds non-finite values")
    return values


def _with_history(values: np.ndarray, frame: tuple[int, ...], steps: int, name: str) -> np.ndarray:
    """(steps, *frame) from one frame (repeated) or a full history."""
    if values.shape == frame:
        return np.broadcast_to(values, (steps, *frame)).copy()
    if values.shape == (steps, *frame):
        return values
    raise PolicyInputError(
        f"{name}: expected shape {frame} or {(steps, *frame)}, got {values.shape}"
    )


def model_card(policy: DiTPolicy) -> str:
    """A Hugging Face style model card: what the checkpoint is, its inputs, outputs and size."""
    config = policy.config
    parameters = sum(p.numel() for p in policy.parameters())  # a frozen text model is not one
    height, width = config.image_size
    cameras = (
        f"cameras {', '.join(config.cameras)} at {height}×{width}"
        if config.cameras
        else "no camera"
    )
    encoder = policy.text_encoder
    if isinstance(encoder, PretrainedTextEncoder):
        frozen = sum(p.numel() for p in encoder.text_model.parameters())
        text = (
            f"subtask text (up to {config.text_max_tokens} tokens) through the frozen pretrained "
            f"text model `{config.text_model}` ({frozen / 1e6:.2f} M parameters, not stored "
            "here; loaded from that path) and a trained projection"
        )
    else:
        text = f"subtask text (up to {config.text_max_bytes} UTF-8 bytes, a trained byte encoder)"
    objects = (
        f"a token per object ({len(config.environment_objects)})"
        if config.environment_objects
        else ("one token" if config.environment_state_dim else "not used")
    )
    if config.mark_subtask_objects:
        objects += ", the subtask's object and target marked"
    if config.hide_unnamed_objects:
        objects += ", only the objects the subtask names seen"
    predicted = {"epsilon": "the noise", "sample": "the clean chunk"}[config.prediction]
    prediction = f" (predicts {predicted})" if config.objective == "diffusion" else ""
    return f"""---
library_name: kinema
tags: [robotics, diffusion-policy, dit, aloha, action-chunking]
---
# kinema DiT policy

A diffusion transformer that turns camera images, joint state and a subtask text into chunks of
{config.chunk_steps} future actions ({config.action_space} space, {config.action_dim} values,
{config.fps:g} Hz) for an ALOHA-style bimanual robot.

- Objective: {config.objective}{prediction}; sampling with {config.inference_steps} steps
  ({config.sampler if config.objective == "diffusion" else "Euler"}).
- Inputs: {cameras},
  observation.state ({config.state_dim}), object state ({config.environment_state_dim} values;
  {objects}),
  {config.observation_steps} frame(s) of history, {text}.
- Network: {config.layers} DiT blocks, width {config.hidden_dim}, {config.heads} heads;
  adaLN-Zero (timestep + observation summary: mean over {config.summary}) and cross-attention
  to observation tokens.
- Parameters: {parameters / 1e6:.2f} M (trained, in `{WEIGHTS_FILE}`).

Load with `kinema.policies.dit.policy.DiTPolicy.from_pretrained(path)`; normalisation statistics
are in `{STATS_FILE}`, the configuration in `{CONFIG_FILE}`.
"""


@dataclass(frozen=True)
class _DdimSteps:
    """The DDIM updates of one chunk: per step (√ᾱ_t, √(1 - ᾱ_t), √ᾱ_prev, √(1 - ᾱ_prev)), and
    the range predicted clean chunks are clamped to (None: not clamped)."""

    roots: list[tuple[float, ...]]
    clip: float | None


def _ddim_step(
    x: torch.Tensor,
    output: torch.Tensor,
    coefficients: tuple[float, ...],
    prediction: str,
    clip: float | None,
) -> torch.Tensor:
    """``DDIMScheduler.step(output, t, x).prev_sample`` (eta 0), from precomputed
    coefficients: the same operations on the same float32 values, without its per-call
    overhead."""
    alpha_root, beta_root, alpha_previous_root, beta_previous_root = coefficients
    if prediction == "epsilon":
        clean = (x - beta_root * output) / alpha_root
        noise = output
    else:  # "sample"
        clean = output
        noise = (x - alpha_root * clean) / beta_root
    if clip is not None:
        clean = clean.clamp(-clip, clip)
    return alpha_previous_root * clean + beta_previous_root * noise

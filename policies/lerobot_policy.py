"""lerobot's policies (ACT, Diffusion Policy, …) in our control loop, to measure them beside ours.

A checkpoint that ``lerobot-train`` writes (``…/checkpoints/last/pretrained_model``: lerobot's
``config.json`` with its ``"type"``, ``model.safetensors`` and the saved pre- and post-processor
pipelines holding the dataset's normalisation statistics) is loaded with lerobot's own
``from_pretrained`` and processors, so it acts exactly as lerobot would run it:

    observation (uint8 (n, H, W, 3) images, (n, 14) state, optional (n, E) object poses)
      → images as floats in [0, 1], channels first → lerobot's preprocessor (normalise)
      → ``predict_action_chunk`` → lerobot's postprocessor (unnormalise) → (k, 14) actions

where k is the policy's ``n_action_steps`` (ACT: its chunk; Diffusion: the actions it executes
of its horizon). The chunk is in the joint space (rad, grippers 0..1) at the dataset's fps.

``config`` describes the checkpoint's observation and action interface as a ``DiTConfig`` (cameras,
image size, state size, object-pose size, observation history, chunk length), which is all the
control loop and ``kinema eval`` read of a policy; its network fields are unused. lerobot's
policies cannot start a chunk from given actions, so they run with the ``chunk`` or ``ensemble``
executor; ``rtc`` is a clear error. Inputs other than the joint state, cameras and
``observation.environment_state`` (object poses, as the state-based DiT reads them) are refused.

Example:
    policy = LerobotChunkPolicy.from_pretrained(Path("act/checkpoints/last/pretrained_model"))
    chunk = policy.predict_chunk({STATE: state, IMAGE_PREFIX + "cam_high": image}, "")
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.configs import FeatureType, PreTrainedConfig
from lerobot.policies.factory import get_policy_class, make_pre_post_processors

from kinema.policies.dit.config import ENVIRONMENT_STATE, IMAGE_PREFIX, STATE, DiTConfig
from kinema.policies.dit.policy import observation_arrays
from kinema.types import ActionChunk, Subtask

LEROBOT_CONFIG_FILE = "config.json"


def load_interface_config(directory: Path, fps: float = 50.0) -> DiTConfig:
    """``interface_config`` of the ``lerobot-train`` checkpoint in ``directory``, from its
    config.json alone (no weights are loaded)."""
    return interface_config(PreTrainedConfig.from_pretrained(Path(directory)), fps)


def is_lerobot_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds a lerobot policy (its config.json names the policy ``type``)."""
    config_file = Path(directory) / LEROBOT_CONFIG_FILE
    if not config_file.is_file():
        return False
    return "type" in json.loads(config_file.read_text())


def interface_config(lerobot_config: Any, fps: float = 50.0) -> DiTConfig:
    """The observation and action interface of a lerobot policy with ``lerobot_config`` as a
    ``DiTConfig`` (module docstring): its cameras and their image size, state and object-pose
    sizes, history, and ``n_action_steps`` as both chunk and executed steps, in the joint space.
    Inputs other than the joint state, object poses and cameras raise ``ValueError``."""
    inputs = lerobot_config.input_features
    unsupported = [
        key
        for key, feature in inputs.items()
        if not (
            (key == STATE and feature.type == FeatureType.STATE)
            or (key == ENVIRONMENT_STATE and feature.type == FeatureType.ENV)
            or (key.startswith(IMAGE_PREFIX) and feature.type == FeatureType.VISUAL)
        )
    ]
    if unsupported or STATE not in inputs:
        raise ValueError(
            f"lerobot policy inputs {sorted(inputs)}: {unsupported} are not supported: "
            f"only {STATE}, {ENVIRONMENT_STATE} and {IMAGE_PREFIX}<camera> images"
        )
    cameras = tuple(key.removeprefix(IMAGE_PREFIX) for key in lerobot_config.image_features)
    image_sizes = {tuple(inputs[key].shape[1:]) for key in lerobot_config.image_features}
    if len(image_sizes) > 1:
        raise ValueError(f"lerobot policy cameras differ in size: {sorted(image_sizes)}")
    steps = lerobot_config.n_action_steps
    return DiTConfig(
        cameras=cameras,
        image_size=image_sizes.pop() if image_sizes else (96, 128),
        state_dim=inputs[STATE].shape[0],
        environment_state_dim=inputs[ENVIRONMENT_STATE].shape[0]
        if ENVIRONMENT_STATE in inputs
        else 0,
        observation_steps=lerobot_config.n_obs_steps,
        action_space="joint",
        chunk_steps=steps,
        executed_steps=steps,
        fps=fps,
    )


class LerobotChunkPolicy:
    """A lerobot ``PreTrainedPolicy`` behind our ``ChunkPolicy`` interface (module docstring)."""

    def __init__(self, policy: Any, preprocessor: Any, postprocessor: Any, fps: float = 50.0):
        lerobot_config = policy.config
        self.config = interface_config(lerobot_config, fps)
        self.kind = lerobot_config.type
        self.policy = policy.eval()
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor

    @classmethod
    def from_pretrained(cls, directory: Path, fps: float = 50.0) -> "LerobotChunkPolicy":
        """Load a ``lerobot-train`` checkpoint folder on the CPU, with its processors."""
        directory = Path(directory)
        lerobot_config = PreTrainedConfig.from_pretrained(directory)
        lerobot_config.device = "cpu"
        policy = get_policy_class(lerobot_config.type).from_pretrained(
            directory, config=lerobot_config
        )
        preprocessor, postprocessor = make_pre_post_processors(
            lerobot_config,
            pretrained_path=str(directory),
            preprocessor_overrides={"device_processor": {"device": "cpu"}},
        )
        return cls(policy, preprocessor, postprocessor, fps)

    def predict_chunk(
        self,
        observation: dict[str, np.ndarray],
        subtask: Subtask | str,
        time_s: float = 0.0,
        generator: torch.Generator | None = None,
        prefix: np.ndarray | None = None,
    ) -> ActionChunk:
        """One chunk of ``n_action_steps`` joint actions for one observation (checked as
        ``observation_arrays`` checks a DiT's; see the module docstring). ``subtask`` is ignored
        (these policies read no text); ``generator`` seeds lerobot's sampling noise through
        torch's global generator."""
        if prefix is not None:
            raise ValueError(
                f"lerobot's {self.kind} policy cannot start a chunk from given actions: evaluate "
                "it with the chunk or ensemble executor, not rtc"
            )
        config = self.config
        batch = {}
        for name, values in observation_arrays(config, observation).items():
            tensor = torch.from_numpy(values)
            if values.dtype == np.uint8:  # (n, H, W, 3) in 0..255 → (n, 3, H, W) in [0, 1]
                tensor = tensor.permute(0, 3, 1, 2).float() / 255.0
            batch[name] = tensor[None]
        if config.observation_steps == 1:  # lerobot's single-step policies take (B, …) inputs
            batch = {key: value[:, 0] for key, value in batch.items()}
        if generator is not None:
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        with torch.inference_mode():
            actions = self.policy.predict_action_chunk(self.preprocessor(batch))
            actions = self.postprocessor(actions)
        actions = actions[0, : config.chunk_steps].cpu().numpy().astype(np.float64)
        return ActionChunk(actions, time_s, 1.0 / config.fps, config.action_space)

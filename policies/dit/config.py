"""The DiT policy's configuration: what it observes, what it outputs, its size and its objective.

Saved as ``config.json`` next to the weights; everything a checkpoint needs to be rebuilt.

Example:
    >>> config = DiTConfig(cameras=("cam_high",), chunk_steps=20, executed_steps=10)
    >>> config.action_dim, config.image_feature
    (14, 'observation.images.cam_high')
"""

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

STATE = "observation.state"
ENVIRONMENT_STATE = "observation.environment_state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."

ACTION_DIMS = {"joint": 14, "end_effector": 20}


@dataclass(frozen=True)
class DiTConfig:
    """Configuration of a ``DiTPolicy``.

    Observation and action:
        cameras: camera names (features ``observation.images.<name>``); may be empty.
        image_size: (height, width) of every camera image, pixels.
        state_dim: joint state entries (14: ALOHA joints in rad, grippers 0..1).
        environment_state_dim: entries of ``observation.environment_state`` (object poses in
            simulation); 0 leaves it out.
        environment_objects: the lengths of the consecutive objects the environment state
            holds (SortCubes: four cubes of position, quaternion and colour one-hot, then four
            bins of position and colour), summing to ``environment_state_dim``: one
            observation token per object, so that attention can pick the object the subtask
            text names. Empty: the whole environment state is one token.
        environment_state_names: a name per environment-state entry, ``<object>.<field>``
            (from the dataset's ``meta/info.json``; ``kinema train`` records them when they
            give at least two objects). Empty: not known (checkpoints made before them).
        mark_subtask_objects: with the names, mark the tokens of the objects the subtask text
            names: a learned code for the object acted on and one for its target is added to
            their tokens, and the mean of their tokens joins the adaLN summary as a kind of
            its own (``kinema.policies.dit.subtask_objects``), so the policy need not find
            the red cube among four by itself. Off by default: on SortCubes it has not yet
            measured better (README, "Where it stands").
        hide_unnamed_objects: with the names, the policy sees only the objects the subtask
            text names (the red cube and the red bin): the tokens of the others are padding to
            cross-attention and left out of the summary. A text that names no object shows
            them all. On SortCubes it made the policy's arm follow the named cube more closely
            (README, "Where it stands"); the shipped policy uses it.
        observation_steps: n, frames of observation history the policy sees.
        action_space: "joint" (14 values) or "end_effector" (20: per arm position in m, 6-D
            rotation, gripper); see ``kinema.controllers.action_spaces``.
        chunk_steps: H, actions predicted per chunk.
        executed_steps: actions of a chunk executed before the next is predicted: what the
            chunk executor does unless told otherwise (``ExecutorConfig.executed_steps``); 35 of
            50 measured best.
        fps: frames (actions) per second; one action every 1 / fps seconds.

    Network:
        hidden_dim, layers, heads, mlp_ratio, dropout: the transformer's width, depth, attention
            heads, MLP expansion and dropout.
        image_channels: channels of the image encoder's four residual stages (stride 16 in all).
        image_encoder_weights: a local safetensors file of image-encoder weights (as
            ``DiTPolicy.export_image_encoder`` writes them) that training starts every camera's
            encoder from; None trains them from scratch.
        text_layers, text_max_bytes: the byte-level subtask-text encoder's depth and its input
            length in UTF-8 bytes.
        text_model: a local directory holding a pretrained transformers text model and its
            tokenizer (what ``AutoModel`` / ``AutoTokenizer.from_pretrained`` load: a
            sentence-transformers model such as all-MiniLM-L6-v2 keeps one at its root, or any
            BERT-like model), used frozen instead of the byte-level encoder, its last hidden
            states projected by a trained linear layer. Its weights are not stored in the
            policy's checkpoint, which records this path and loads the model from it again.
            None uses the byte-level encoder.
        text_max_tokens: the pretrained text model's input length in tokens, its special tokens
            included (longer texts are truncated).
        summary: how the observation tokens are pooled into the vector that joins the timestep
            in adaLN's condition. "kinds": the mean over token kinds of each kind's mean (each
            camera's patches, the joint state, the object state, the text), so the one joint-state
            token weighs as much as all the text's tokens together; "tokens": the mean over all
            tokens, where 48 text bytes drown the state (checkpoints made before "kinds").

    Generative objective:
        objective: "diffusion" (DDPM training, few-step DDIM / DPM-Solver++ sampling) or "flow"
            (rectified flow, Euler sampling).
        train_timesteps, beta_schedule, prediction: the DDPM noise schedule and what the network
            predicts ("sample": the clean chunk, or "epsilon": the noise). "sample" is the
            default because it learns far faster on a CPU budget: 3 000 steps of 64 windows of
            50 TransferCube demonstrations (state-based, width 128 × 4) solve 20 of 20 held-out
            seeds predicting the chunk and 1 of 20 predicting the noise.
        sampler: "ddim" or "dpmsolver++" (diffusion only).
        inference_steps: denoising (or Euler) steps per chunk.
    """

    cameras: tuple[str, ...] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
    image_size: tuple[int, int] = (96, 128)
    state_dim: int = 14
    environment_state_dim: int = 0
    environment_objects: tuple[int, ...] = ()
    environment_state_names: tuple[str, ...] = ()
    mark_subtask_objects: bool = False
    hide_unnamed_objects: bool = False
    observation_steps: int = 1
    action_space: Literal["joint", "end_effector"] = "joint"
    chunk_steps: int = 50
    executed_steps: int = 35
    fps: float = 50.0

    hidden_dim: int = 256
    layers: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    image_channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    image_encoder_weights: str | None = None
    text_layers: int = 2
    text_max_bytes: int = 96
    text_model: str | None = None
    text_max_tokens: int = 32
    summary: Literal["kinds", "tokens"] = "kinds"

    objective: Literal["diffusion", "flow"] = "diffusion"
    train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction: Literal["epsilon", "sample"] = "sample"
    sampler: Literal["ddim", "dpmsolver++"] = "ddim"
    inference_steps: int = 10

    def __post_init__(self) -> None:
        if self.action_space not in ACTION_DIMS:
            raise ValueError(
                f"DiTConfig.action_space must be one of {list(ACTION_DIMS)}, got "
                f"{self.action_space!r}"
            )
        if self.objective not in ("diffusion", "flow"):
            raise ValueError(f"DiTConfig.objective must be diffusion or flow, got {self.objective}")
        if self.summary not in ("kinds", "tokens"):
            raise ValueError(f"DiTConfig.summary must be kinds or tokens, got {self.summary!r}")
        if not 1 <= self.executed_steps <= self.chunk_steps:
            raise ValueError(
                f"DiTConfig.executed_steps must be in 1..chunk_steps={self.chunk_steps}, got "
                f"{self.executed_steps}"
            )
        objects = self.environment_objects
        if objects and (sum(objects) != self.environment_state_dim or min(objects) < 1):
            raise ValueError(
                f"DiTConfig.environment_objects {objects} must be positive lengths summing to "
                f"environment_state_dim={self.environment_state_dim}"
            )
        names = self.environment_state_names
        if names and len(names) != self.environment_state_dim:
            raise ValueError(
                f"DiTConfig.environment_state_names must name the {self.environment_state_dim} "
                f"entries of the environment state, got {len(names)}"
            )
        for switch in ("mark_subtask_objects", "hide_unnamed_objects"):
            if getattr(self, switch) and not (names and objects):
                raise ValueError(
                    f"DiTConfig.{switch} needs environment_state_names and "
                    "environment_objects (a dataset that names its objects)"
                )
        if self.hidden_dim % self.heads:
            raise ValueError(
                f"DiTConfig.hidden_dim={self.hidden_dim} must be a multiple of heads={self.heads}"
            )
        if any(size % 16 for size in self.image_size):
            raise ValueError(
                f"DiTConfig.image_size {self.image_size} must be multiples of 16 (encoder stride)"
            )

    @property
    def action_dim(self) -> int:
        """Values per action: 14 (joint) or 20 (end-effector)."""
        return ACTION_DIMS[self.action_space]

    @property
    def image_feature(self) -> str:
        """The dataset feature of the first camera."""
        return IMAGE_PREFIX + self.cameras[0]

    def image_features(self) -> list[str]:
        """The dataset features of all cameras, in order."""
        return [IMAGE_PREFIX + camera for camera in self.cameras]

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Dataset feature → the per-frame shape this policy needs (for the loader's check)."""
        shapes: dict[str, tuple[int, ...]] = {
            STATE: (self.state_dim,),
            ACTION: (self.action_dim,),
        }
        if self.environment_state_dim:
            shapes[ENVIRONMENT_STATE] = (self.environment_state_dim,)
        for feature in self.image_features():
            shapes[feature] = (3, *self.image_size)
        return shapes

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DiTConfig":
        """From ``asdict`` output (lists back to tuples); unknown keys are an error."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"DiTConfig: unknown fields {unknown}")
        tuples = {
            "cameras",
            "image_size",
            "image_channels",
            "environment_objects",
            "environment_state_names",
        }
        return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})

    @classmethod
    def load(cls, path: Path) -> "DiTConfig":
        return cls.from_dict(json.loads(path.read_text()))

"""The embedded brain: a compact vision-language model the project trains on simulated scenes
(``scenes``, ``train_brain``) and ships in ``embedded_weights/``, and ``EmbeddedPlanner``, the
``Planner`` backend that runs it on the CPU.

Model (``BrainModel``, ~0.50 M parameters, ~2 MB in float32):

- images: each camera image (96 × 128, values 0..1) through one shared shallow patch encoder
  (``PatchEncoder``: 12 × 16 tokens of 8 × 8 pixels, 2-D sine positions) plus a learned
  embedding of its camera;
- text: UTF-8 bytes through a small transformer (``TextEncoder``; no vocabulary, any wording),
  plus a bidirectional GRU over it (word order: which colour was named first, second, …);
- grounding: one learned query per object name (``vocabulary.OBJECT_NAMES``, from its colour
  and kind) attends over the image tokens: a token per object saying how it looks, and where it
  is as the attention-weighted mean of the tokens' image coordinates (``Memory.located``: a
  soft argmax, finer than a token); the same queries attend over the text's tokens, and the
  weighted mean of the bytes' places in the text (0 first, 1 last) says where the object is
  named (``Memory.mentioned``). The plan head reads both directly, so "leftmost first", "the
  arm on the block's side" and "in the order named" are comparisons of numbers rather than of
  position codes;
- memory: text, image and grounded tokens (each with its object's image coordinates and place
  in the text embedded into it). Queries read it by cross-attention, so text and images meet
  in the heads (a Perceiver-style read-out, cheap on a CPU).

Two heads:

- plan: a transformer decoder over ``plan_slots`` = 4 slot queries, autoregressive (slot k sees
  the steps chosen for slots < k), each a classification over the closed vocabulary
  ``vocabulary.STEPS`` (55 (skill, arm, object, target) steps) plus END. A class's logit is a
  bias plus the slot state · the class's key, computed from the class's attributes (skill, arm,
  colours, kinds) and the grounded tokens, image coordinates and places in the text of the
  objects it names — so "the arm on the side of the blue block", "the leftmost cube not yet
  listed" or "the block named after this one" are one attention hop away. Decoding is
  greedy; classes chosen for earlier slots, and classes naming an object absent from
  ``BrainObservation.objects`` (when known), are masked out. The answer goes through
  ``schema.parse_plan`` like every backend's. A plan is made from the overview camera
  (``cameras[0]``) alone.
- check: a learned query plus an embedding of the checked step's description (the same
  attributes, grounded tokens, image coordinates and places in the text the plan head's keys are
  made from, for the step's object and target) goes through a transformer decoder to two
  logits; p(done) is their softmax. "done" when p ≥ 0.5, else "not_yet", with confidence
  max(p, 1 − p). The model never says "failed": the runner decides that from the time budget.
  A check sees the overview and the wrist camera of the subtask's arm (the left one for
  "both"), and the subtask's text; it checks only the steps of ``vocabulary.STEPS``.

``replan`` plans again from the scene seen now: the plan head is also trained, on frames from
within episodes, to give the subtasks not done yet, in order (what ``OraclePlanner.replan``
gives).

Example:
    planner = EmbeddedPlanner.from_pretrained()          # the shipped weights
    seen = BrainObservation.from_env(observation, objects=scene_objects(info["subtasks"]))
    planner.plan("hand the red cube from the right arm to the left", seen)[0].text
    # 'pick up the red cube with the right arm'
    planner.check(info["subtasks"][0], seen)
    # Verdict(status='not_yet', confidence=0.99, reason='embedded brain: p(done) = 0.010')
"""

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from kinema.policies.brain.planner import BrainError, PlanHistory
from kinema.policies.brain.schema import PlanError, parse_plan
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.policies.brain.vocabulary import (
    END,
    STEPS,
    name_features,
    step_features,
    step_index,
    step_name_indices,
    step_objects,
)
from kinema.policies.dit.encoders import TextEncoder, encode_text_bytes, sine_positions_2d
from kinema.types import Subtask, SubtaskArm

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DEFAULT_WEIGHTS = Path(__file__).parent / "embedded_weights"
"""The weights shipped with the package."""

_BEGIN = END + 1  # the decoder's input before the first slot


@dataclass(frozen=True)
class EmbeddedConfig:
    """The embedded brain's architecture (saved as config.json next to the weights).

    Attributes:
        cameras: the overview camera, then the left and right wrist cameras.
        image_size: (height, width) the images are resized to, pixels.
        patch_channels: channels of the image encoder's patch features.
        hidden_dim: token width.
        heads: attention heads of every transformer layer.
        text_layers, plan_layers, check_layers: layers of the text encoder and of the plan
            and check decoders.
        max_text_bytes: texts are cut to this many UTF-8 bytes.
        plan_slots: the longest plan, in steps.
        dropout: dropout of the transformer layers while training.
    """

    cameras: tuple[str, str, str] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
    image_size: tuple[int, int] = (96, 128)
    patch_channels: int = 32
    hidden_dim: int = 64
    heads: int = 4
    text_layers: int = 2
    plan_layers: int = 3
    check_layers: int = 3
    max_text_bytes: int = 112
    plan_slots: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if len(self.cameras) != 3:
            raise ValueError(
                f"EmbeddedConfig.cameras must name the overview, left wrist and right wrist "
                f"cameras, got {self.cameras}"
            )
        if self.hidden_dim % self.heads:
            raise ValueError(
                f"EmbeddedConfig.hidden_dim ({self.hidden_dim}) must be a multiple of heads "
                f"({self.heads})"
            )

    def check_cameras(self, arm: SubtaskArm) -> tuple[str, str]:
        """The cameras a check of a subtask done by ``arm`` looks through."""
        return self.cameras[0], self.cameras[2] if arm == "right" else self.cameras[1]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "EmbeddedConfig":
        """From ``to_json`` output; unknown fields are an error."""
        values: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"EmbeddedConfig: unknown fields {unknown}")
        lists = {"cameras", "image_size"}
        return cls(**{k: tuple(v) if k in lists else v for k, v in values.items()})


class PatchEncoder(nn.Module):
    """Images (B, 3, H, W), values 0..1, to (B, H/8 · W/8, hidden_dim) tokens: a 4 × 4 stride-4
    patch convolution, a 3 × 3 convolution mixing neighbouring patches, a 2 × 2 stride-2
    convolution to the token width, LayerNorm, plus fixed 2-D sine positions. Shallow on
    purpose: each token keeps the colours and the place of what lies in its 8 × 8 pixels, which
    is what plans and checks of small coloured objects read."""

    def __init__(self, hidden_dim: int, channels: int):
        super().__init__()
        self.patches = nn.Conv2d(3, channels, 4, 4)
        self.mix = nn.Conv2d(channels, channels, 3, 1, 1)
        self.tokens = nn.Conv2d(channels, hidden_dim, 2, 2)
        self.norm = nn.LayerNorm(hidden_dim)
        self.hidden_dim = hidden_dim
        self.stride = self.patches.stride[0] * self.tokens.stride[0]  # pixels per token side

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.patches((images - 0.5) / 0.25))
        x = self.tokens(F.gelu(x + self.mix(x)))
        _, _, height, width = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        return tokens + sine_positions_2d(height, width, self.hidden_dim).to(tokens)


class Memory(NamedTuple):
    """What the heads read.

    Attributes:
        tokens: (B, L + V·T + N, D): the text's tokens, each camera's, and one grounded token
            per object name (``vocabulary.OBJECT_NAMES``: a learned query per name, from its
            colour and kind, attending over the image tokens) plus an embedding of its
            ``located`` and ``mentioned``.
        padding: (B, L + V·T + N) True where ``tokens`` is padding.
        grounded: (B, N, D) the grounded object tokens.
        located: (B, N, 2) where each object name's grounding attention looks: the weighted
            mean of the image tokens' (row, column) centres, each scaled to [-1, 1] across its
            camera's image (a mean over the cameras when there are several).
        mentioned: (B, N, 1) where in the text each object name's text attention looks: the
            weighted mean of the bytes' places, 0 for the first byte and 1 for the last.
    """

    tokens: torch.Tensor
    padding: torch.Tensor
    grounded: torch.Tensor
    located: torch.Tensor
    mentioned: torch.Tensor


def _decoder_layer(config: EmbeddedConfig) -> nn.TransformerDecoderLayer:
    return nn.TransformerDecoderLayer(
        config.hidden_dim,
        config.heads,
        2 * config.hidden_dim,
        config.dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )


class BrainModel(nn.Module):
    """The embedded brain's network (see the module docstring).

    Shapes: images (B, V, 3, H, W) in 0..1, camera ids (B, V), text bytes (B, L) from
    ``text_bytes``; plan logits (B, plan_slots, len(STEPS) + 1); check logits (B, 2)
    (index 1: done).
    """

    def __init__(self, config: EmbeddedConfig = EmbeddedConfig()):
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        self.image_encoder = PatchEncoder(hidden, config.patch_channels)
        self.camera_embedding = nn.Embedding(len(config.cameras), hidden)
        self.text_encoder = TextEncoder(
            hidden, config.heads, config.text_layers, config.max_text_bytes, config.dropout
        )
        self.text_rnn = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        features = torch.from_numpy(step_features())  # (END + 1, F); the begin class: zeros
        self.register_buffer("features", F.pad(features, (0, 0, 0, 1)), persistent=False)
        self.register_buffer("names", torch.from_numpy(name_features()), persistent=False)
        step_objects, step_targets = step_name_indices()
        self.register_buffer("step_objects", torch.from_numpy(step_objects), persistent=False)
        self.register_buffer("step_targets", torch.from_numpy(step_targets), persistent=False)
        self.name_queries = nn.Linear(self.names.shape[1], hidden)
        self.grounding = nn.MultiheadAttention(hidden, config.heads, batch_first=True)
        self.text_grounding = nn.MultiheadAttention(hidden, config.heads, batch_first=True)
        self.place_embedding = nn.Linear(3, hidden)
        self.step_embedding = nn.Embedding(END + 2, hidden)  # steps, END, begin
        self.step_attributes = nn.Linear(features.shape[1], hidden, bias=False)
        self.slot_positions = nn.Parameter(torch.randn(config.plan_slots, hidden) * 0.02)
        self.plan_decoder = nn.TransformerDecoder(
            _decoder_layer(config), config.plan_layers, norm=nn.LayerNorm(hidden)
        )
        self.plan_head = nn.Linear(hidden, END + 1)
        description = features.shape[1] + 2 * (hidden + 3)  # see step_descriptions
        self.step_keys = nn.Sequential(
            nn.Linear(description, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        self.check_query = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.check_step = nn.Sequential(
            nn.Linear(description, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        self.check_decoder = nn.TransformerDecoder(
            _decoder_layer(config), config.check_layers, norm=nn.LayerNorm(hidden)
        )
        self.check_head = nn.Linear(hidden, 2)

    def encode(
        self, images: torch.Tensor, camera_ids: torch.Tensor, text_bytes: torch.Tensor
    ) -> "Memory":
        """The memory the heads read (see ``Memory``)."""
        batch, views = images.shape[:2]
        image_tokens = self.image_encoder(images.flatten(0, 1))  # (B·V, T, D)
        height, width = (size // self.image_encoder.stride for size in images.shape[-2:])
        coordinates = token_coordinates(height, width).to(image_tokens).repeat(views, 1)
        image_tokens = image_tokens.unflatten(0, (batch, views))
        image_tokens = image_tokens + self.camera_embedding(camera_ids)[:, :, None, :]
        image_tokens = image_tokens.flatten(1, 2)
        text_tokens, text_padding = self.text_encoder(text_bytes)
        text_tokens = text_tokens + self._in_order(text_tokens, text_padding)
        queries = self.name_queries(self.names).expand(batch, -1, -1)
        grounded, image_weights = self.grounding(queries, image_tokens, image_tokens)
        located = image_weights @ coordinates  # (B, N, V·T), heads averaged → (B, N, 2)
        _, text_weights = self.text_grounding(
            queries, text_tokens, text_tokens, key_padding_mask=text_padding
        )
        mentioned = text_weights @ text_places(text_padding)[:, :, None]  # (B, N, 1)
        places = self.place_embedding(torch.cat([located, mentioned], dim=2))
        tokens = torch.cat([text_tokens, image_tokens, grounded + places], dim=1)
        seen = torch.zeros(batch, tokens.shape[1] - text_tokens.shape[1], dtype=torch.bool)
        padding = torch.cat([text_padding, seen.to(text_padding.device)], dim=1)
        return Memory(tokens, padding, grounded, located, mentioned)

    def _in_order(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """The bidirectional GRU's states over the unpadded tokens (zeros on padding): what
        came before and after each byte, e.g. how many colours were named so far."""
        lengths = (~padding).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            tokens, lengths, batch_first=True, enforce_sorted=False
        )
        states, _ = self.text_rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(
            states, batch_first=True, total_length=tokens.shape[1]
        )[0]

    def plan_logits(self, memory: "Memory", previous: torch.Tensor) -> torch.Tensor:
        """(B, S, len(STEPS) + 1) logits of slots 0 … S − 1, given ``previous`` (B, S): the
        begin class, then the steps of slots 0 … S − 2. A class's logit is its bias plus the
        slot's state dotted with the class's key, made from the class's attributes and the
        grounded features of the objects it names; classes chosen for earlier slots are out."""
        slots = previous.shape[1]
        queries = self.step_embedding(previous) + self.step_attributes(self.features[previous])
        queries = queries + self.slot_positions[:slots]
        causal = nn.Transformer.generate_square_subsequent_mask(slots, device=previous.device)
        decoded = self.plan_decoder(
            queries,
            memory.tokens,
            tgt_mask=causal,
            memory_key_padding_mask=memory.padding,
            tgt_is_causal=True,
        )
        classes = torch.arange(END + 1, device=previous.device).expand(decoded.shape[0], -1)
        keys = self.step_keys(self.step_descriptions(memory, classes))
        logits = self.plan_head(decoded) + decoded @ keys.transpose(1, 2) / keys.shape[2] ** 0.5
        chosen = F.one_hot(previous[:, 1:], END + 2)[..., : END + 1].cumsum(1).bool()
        chosen[..., END] = False
        return logits.masked_fill(F.pad(chosen, (0, 0, 1, 0)), float("-inf"))

    def step_descriptions(self, memory: "Memory", classes: torch.Tensor) -> torch.Tensor:
        """(B, K, F + 2 (D + 3)) what the heads know of the (B, K) ``classes``: their
        attributes (``vocabulary.step_features``), then for the object and for the target each
        names its grounded token, image coordinates and place in the text (zeros for none)."""
        named = torch.cat([memory.grounded, memory.located, memory.mentioned], dim=2)
        objects = F.pad(named, (0, 0, 0, 1))  # the last row: no object
        rows = torch.arange(classes.shape[0], device=classes.device)[:, None]
        return torch.cat(
            [
                self.features[classes],
                objects[rows, self.step_objects[classes]],
                objects[rows, self.step_targets[classes]],
            ],
            dim=2,
        )

    def check_logits(self, memory: "Memory", steps: torch.Tensor) -> torch.Tensor:
        """(B, 2) logits of not yet / done of the (B,) checked ``steps`` (class indices): the
        query is a learned one plus an embedding of the step's description, so the decoder
        starts from where the step's object and target are and how they look."""
        description = self.step_descriptions(memory, steps[:, None])
        query = self.check_query + self.check_step(description)
        decoded = self.check_decoder(query, memory.tokens, memory_key_padding_mask=memory.padding)
        return self.check_head(decoded[:, 0])

    def plan_loss(
        self,
        images: torch.Tensor,
        camera_ids: torch.Tensor,
        text: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the plan slots (teacher forcing) and the (B,) exact-match flags."""
        memory = self.encode(images, camera_ids, text)
        begin = torch.full_like(labels[:, :1], _BEGIN)
        logits = self.plan_logits(memory, torch.cat([begin, labels[:, :-1]], dim=1))
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return loss, (logits.argmax(-1) == labels).all(dim=1)

    def check_loss(
        self,
        images: torch.Tensor,
        camera_ids: torch.Tensor,
        text: torch.Tensor,
        steps: torch.Tensor,
        done: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of done / not yet and the (B,) correct flags."""
        logits = self.check_logits(self.encode(images, camera_ids, text), steps)
        return nn.functional.cross_entropy(logits, done), logits.argmax(-1) == done

    @torch.no_grad()
    def decode_plan(self, memory: "Memory", allowed: torch.Tensor) -> list[list[int]]:
        """Greedy plans (step indices, END left out) for a batch; ``allowed`` (B, END + 1)
        masks out classes (END is always allowed)."""
        batch = memory.tokens.shape[0]
        previous = torch.full((batch, 1), _BEGIN, dtype=torch.long, device=allowed.device)
        for slot in range(self.config.plan_slots):
            logits = self.plan_logits(memory, previous)[:, slot]
            choice = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
            previous = torch.cat([previous, choice[:, None]], dim=1)
        rows = previous[:, 1:].tolist()
        return [row[: row.index(END)] if END in row else row for row in rows]


def token_coordinates(height: int, width: int) -> torch.Tensor:
    """(height · width, 2) (row, column) centres of a row-major grid of image tokens, each
    scaled to [-1, 1] from the image's top (left) edge to its bottom (right) edge."""
    rows = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2.0 - 1.0
    cols = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2.0 - 1.0
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=2).reshape(-1, 2)


def text_places(padding: torch.Tensor) -> torch.Tensor:
    """(B, L) place of every byte in its text, from 0 (the first) to 1 (the last), for a (B, L)
    padding mask (True: padding; padding bytes get places beyond 1, and no attention)."""
    lengths = (~padding).sum(1, keepdim=True).clamp(min=2)
    return torch.arange(padding.shape[1], device=padding.device) / (lengths - 1.0)


def text_bytes(texts: Sequence[str], max_bytes: int) -> torch.Tensor:
    """(B, L) byte ids of ``texts`` (``encode_text_bytes``), L the longest text's length (at
    most ``max_bytes``): no column is padding only."""
    longest = max(len(text.encode("utf-8")) for text in texts)
    return encode_text_bytes(list(texts), max(1, min(longest, max_bytes)))


def image_tensor(images: Sequence[np.ndarray], image_size: tuple[int, int]) -> torch.Tensor:
    """(V, 3, H, W) float tensor in 0..1 of uint8 (h, w, 3) images, resized to ``image_size``
    (H, W) with area averaging when their size differs."""
    height, width = image_size
    arrays = [
        image
        if image.shape[:2] == (height, width)
        else cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        for image in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


class EmbeddedPlanner:
    """The ``Planner`` backend running ``BrainModel`` (see the module docstring)."""

    def __init__(self, model: BrainModel):
        self.model = model.eval()
        self.config = model.config

    # ---- the Planner protocol ----

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        """The subtasks for ``instruction`` in the scene seen now.

        Raises:
            BrainError: if the model plans no step, or a plan ``parse_plan`` rejects.
        """
        subtasks = self._plan(instruction, observation)
        if not subtasks:
            raise BrainError(f"the embedded brain planned no subtask for {instruction!r}")
        return subtasks

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        """done or not_yet with the model's probability (never failed).

        Raises:
            BrainError: if the subtask's (skill, arm, object, target) is not a step of
                ``vocabulary.STEPS``: the model has never seen it done.
        """
        try:
            step = torch.tensor([step_index(subtask)])
        except KeyError as error:
            raise BrainError(
                f"the embedded brain cannot check {subtask.text!r}: {error}"
            ) from error
        cameras = self.config.check_cameras(subtask.arm)
        images = self._images(observation, cameras)
        ids = torch.tensor([[self.config.cameras.index(c) for c in cameras]])
        text = text_bytes([subtask.text], self.config.max_text_bytes)
        with torch.inference_mode():
            memory = self.model.encode(images[None], ids, text)
            p_done = float(self.model.check_logits(memory, step).softmax(-1)[0, 1])
        status = "done" if p_done >= 0.5 else "not_yet"
        return Verdict(status, max(p_done, 1.0 - p_done), f"embedded brain: p(done) = {p_done:.3f}")

    def replan(self, history: PlanHistory, observation: BrainObservation) -> list[Subtask]:
        """The subtasks of ``history.instruction`` not done yet, planned from the scene seen
        now (empty when the model finds nothing left to do)."""
        return self._plan(history.instruction, observation)

    # ---- checkpoints ----

    def save_pretrained(self, directory: Path) -> None:
        """Write config.json and model.safetensors into ``directory``, atomically: a reader
        sees the old checkpoint or the new one, never a mix."""
        directory = Path(directory)
        staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / CONFIG_FILE).write_text(self.config.to_json())
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        previous = directory.with_name(f"{directory.name}.old-{os.getpid()}")
        if directory.exists():
            os.replace(directory, previous)
        os.replace(staging, directory)
        shutil.rmtree(previous, ignore_errors=True)

    @classmethod
    def from_pretrained(cls, directory: Path = DEFAULT_WEIGHTS) -> "EmbeddedPlanner":
        """The planner saved in ``directory`` by ``save_pretrained`` (default: the shipped
        weights), on the CPU, in eval mode.

        Raises:
            FileNotFoundError: if ``directory`` lacks config.json or model.safetensors.
            ValueError: if the weights do not fit the configuration.
        """
        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"{directory / name} is missing: not an embedded brain checkpoint "
                    f"(expected {CONFIG_FILE} and {WEIGHTS_FILE} from save_pretrained)"
                )
        model = BrainModel(EmbeddedConfig.from_json((directory / CONFIG_FILE).read_text()))
        try:
            model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"{directory / WEIGHTS_FILE}: weights do not fit {directory / CONFIG_FILE}: {error}"
            ) from error
        return cls(model)

    # ---- helpers ----

    def _images(self, observation: BrainObservation, cameras: Sequence[str]) -> torch.Tensor:
        missing = [c for c in cameras if c not in observation.images]
        if missing:
            raise ValueError(
                f"EmbeddedPlanner: the observation lacks camera(s) {missing}; it needs "
                f"{list(cameras)}, got {list(observation.images)}"
            )
        return image_tensor([observation.images[c] for c in cameras], self.config.image_size)

    def _plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        images = self._images(observation, self.config.cameras[:1])
        text = text_bytes([instruction], self.config.max_text_bytes)
        allowed = torch.ones(1, END + 1, dtype=torch.bool)
        if observation.objects is not None:
            present = set(observation.objects)
            for index, step in enumerate(STEPS):
                allowed[0, index] = set(step_objects(step)) <= present
        with torch.inference_mode():
            memory = self.model.encode(images[None], torch.zeros(1, 1, dtype=torch.long), text)
            steps = self.model.decode_plan(memory, allowed)[0]
        if not steps:
            return []
        answer = {"subtasks": [STEPS[i]._asdict() for i in steps]}
        try:
            return parse_plan(answer, observation.objects)
        except PlanError as error:
            raise BrainError(f"the embedded brain's plan was rejected: {error}") from error

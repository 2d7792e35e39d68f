"""Observation encoders: camera images, joint state and subtask text into transformer tokens.

Every encoder maps its input to tokens of width ``hidden_dim``:

- ``ImageEncoder`` (one per camera, trained from scratch): a small ResNet (a stride-2 stem, four
  residual stages of which three halve the resolution, GroupNorm) gives a feature map at 1/16 of
  the image size, e.g. 6 × 8 for 96 × 128; each cell becomes a token, with a fixed 2-D sine
  position code added.
- ``VectorEncoder``: a two-layer MLP from a normalised vector (joint state, object poses) to one
  token.
- ``ObjectEncoder``: a normalised environment state of consecutive objects to one token per
  object (objects of the same length share the first layer; a learned code marks each place).
- ``TextEncoder``: the subtask text as UTF-8 bytes (no vocabulary to download; any phrasing is
  representable), byte embeddings plus positions, then a small transformer encoder. Its tokens
  come with a padding mask.
- ``PretrainedTextEncoder``: the subtask text through a frozen pretrained transformers text model
  (e.g. a sentence-transformers model) from a local directory, its last hidden states projected
  by a trainable linear layer; the same output as ``TextEncoder``.

Example:
    >>> import torch
    >>> encoder = ImageEncoder(hidden_dim=64, channels=(8, 16, 32, 64))
    >>> encoder(torch.zeros(2, 3, 96, 128)).shape
    torch.Size([2, 48, 64])
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_PAD_BYTE = 256  # byte values are 0..255; 256 pads


def sine_positions_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """(height × width, dim) fixed position codes: half the channels code the row, half the
    column, each as sines and cosines of geometrically spaced frequencies."""
    quarter = dim // 4
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(quarter) / quarter)
    rows = torch.arange(height, dtype=torch.float32)[:, None] * frequencies
    cols = torch.arange(width, dtype=torch.float32)[:, None] * frequencies
    row_code = torch.cat([rows.sin(), rows.cos()], dim=1)  # (height, dim / 2)
    col_code = torch.cat([cols.sin(), cols.cos()], dim=1)  # (width, dim / 2)
    grid = torch.cat(
        [
            row_code[:, None, :].expand(height, width, -1),
            col_code[None, :, :].expand(height, width, -1),
        ],
        dim=2,
    )
    return F.pad(grid.reshape(height * width, -1), (0, dim - 4 * quarter))


@functools.lru_cache(maxsize=8)
def _sine_positions_cached(height: int, width: int, dim: int) -> torch.Tensor:
    """``sine_positions_2d``, made once per size (a constant: no weights in it), as an ordinary
    tensor even when first asked for under ``torch.inference_mode``; never modified in place."""
    with torch.inference_mode(False), torch.no_grad():
        return sine_positions_2d(height, width, dim)


class ResidualBlock(nn.Module):
    """Two 3 × 3 convolutions with GroupNorm and a skip connection (strided when downsampling)."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(min(8, outputs // 4), outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(min(8, outputs // 4), outputs)
        self.skip = (
            nn.Identity()
            if stride == 1 and inputs == outputs
            else nn.Conv2d(inputs, outputs, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self._skip(x))

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip
        if isinstance(skip, nn.Conv2d) and skip.stride != (1, 1) and not torch.is_grad_enabled():
            # the same numbers: a strided 1 × 1 convolution is a 1 × 1 convolution of every
            # stride-th pixel, which, small, PyTorch's CPU convolution runs several times faster
            rows, cols = skip.stride
            return F.conv2d(x[:, :, ::rows, ::cols], skip.weight, skip.bias)
        return skip(x)


class ImageEncoder(nn.Module):
    """Images (B, 3, H, W), values 0..1, to (B, H/16 · W/16, hidden_dim) tokens."""

    def __init__(self, hidden_dim: int, channels: tuple[int, int, int, int]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels[0], 3, 2, 1, bias=False),
            nn.GroupNorm(min(8, channels[0] // 4), channels[0]),
            nn.ReLU(),
        )
        strides = (1, 2, 2, 2)
        inputs = (channels[0], *channels[:-1])
        self.stages = nn.Sequential(
            *(ResidualBlock(i, o, s) for i, o, s in zip(inputs, channels, strides, strict=True))
        )
        self.project = nn.Conv2d(channels[-1], hidden_dim, 1)
        self.hidden_dim = hidden_dim
        # ImageNet-like centring: inputs arrive in 0..1
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.project(self.stages(self.stem((images - self.mean) / self.std)))
        _, _, height, width = features.shape
        tokens = features.flatten(2).transpose(1, 2)  # (B, h·w, hidden)
        positions = _sine_positions_cached(height, width, self.hidden_dim).to(tokens)
        return tokens + positions


class StackedImageEncoders:
    """Several cameras' ``ImageEncoder``s of the same sizes as one network, for inference (no
    gradients): each convolution is one grouped convolution whose groups are the cameras, each
    GroupNorm one GroupNorm whose groups are the cameras' groups in turn, so every camera's
    numbers go through its own weights only: the same tokens as the separate encoders, up to
    float rounding, in a fraction of the operations, which at batch 1 (small convolutions)
    is markedly faster. Made from the encoders' current weights (concatenated copies): its
    owner makes it anew when they change."""

    def __init__(self, encoders: list[ImageEncoder]):
        self.cameras = len(encoders)
        self.hidden_dim = encoders[0].hidden_dim
        with torch.inference_mode(False), torch.no_grad():
            self.mean = torch.cat([encoder.mean for encoder in encoders], dim=1)
            self.std = torch.cat([encoder.std for encoder in encoders], dim=1)
            stems = [encoder.stem for encoder in encoders]
            self.stem = _stacked_conv([stem[0] for stem in stems])
            self.stem_norm = _stacked_norm([stem[1] for stem in stems])
            self.stages = [
                _StackedBlock(
                    conv1=_stacked_conv([block.conv1 for block in blocks]),
                    norm1=_stacked_norm([block.norm1 for block in blocks]),
                    conv2=_stacked_conv([block.conv2 for block in blocks]),
                    norm2=_stacked_norm([block.norm2 for block in blocks]),
                    skip=(
                        None
                        if isinstance(blocks[0].skip, nn.Identity)
                        else _stacked_conv([block.skip for block in blocks])
                    ),
                )
                for blocks in zip(*(encoder.stages for encoder in encoders), strict=True)
            ]
            self.project = _stacked_conv([encoder.project for encoder in encoders])

    def __call__(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each camera's images (B, 3, H, W), values 0..1, to its (B, H/16 · W/16, hidden_dim)
        tokens, as its ``ImageEncoder`` gives them."""
        groups = self.cameras
        x = (torch.cat(images, dim=1) - self.mean) / self.std
        x = F.relu(self.stem_norm(self.stem(x, groups), groups))
        for block in self.stages:
            y = F.relu(block.norm1(block.conv1(x, groups), groups))
            y = block.norm2(block.conv2(y, groups), groups)
            x = F.relu(y + (x if block.skip is None else block.skip(x, groups)))
        features = self.project(x, groups)  # (B, cameras · hidden, h, w)
        batch, _, height, width = features.shape
        tokens = features.view(batch, groups, self.hidden_dim, height * width).transpose(2, 3)
        positions = _sine_positions_cached(height, width, self.hidden_dim).to(tokens)
        return list((tokens + positions).unbind(1))


@dataclass(frozen=True)
class _StackedConv:
    """The cameras' ``Conv2d`` layers of one place as one grouped convolution; a strided 1 × 1
    one on every stride-th pixel, as ``ResidualBlock._skip``."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: int
    padding: int

    def __call__(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        if self.weight.shape[-1] == 1 and self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
            return F.conv2d(x, self.weight, self.bias, groups=groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, groups=groups)


@dataclass(frozen=True)
class _StackedNorm:
    """The cameras' ``GroupNorm`` layers of one place as one."""

    groups_per_camera: int
    weight: torch.Tensor
    bias: torch.Tensor
    eps: float

    def __call__(self, x: torch.Tensor, cameras: int) -> torch.Tensor:
        groups = self.groups_per_camera * cameras
        return F.group_norm(x, groups, self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class _StackedBlock:
    """The cameras' ``ResidualBlock`` of one place as one (``skip`` None: the identity)."""

    conv1: _StackedConv
    norm1: _StackedNorm
    conv2: _StackedConv
    norm2: _StackedNorm
    skip: _StackedConv | None


def _stacked_conv(convs: list[Any]) -> _StackedConv:
    """The ``nn.Conv2d`` layers ``convs`` (one per camera, same sizes) as one."""
    first = convs[0]
    bias = None if first.bias is None else torch.cat([conv.bias for conv in convs])
    return _StackedConv(
        torch.cat([conv.weight for conv in convs]), bias, first.stride[0], first.padding[0]
    )


def _stacked_norm(norms: list[Any]) -> _StackedNorm:
    """The ``nn.GroupNorm`` layers ``norms`` (one per camera, same sizes) as one."""
    return _StackedNorm(
        norms[0].num_groups,
        torch.cat([norm.weight for norm in norms]),
        torch.cat([norm.bias for norm in norms]),
        norms[0].eps,
    )


class VectorEncoder(nn.Module):
    """A (B, D) normalised vector to one (B, 1, hidden_dim) token."""

    def __init__(self, inputs: int, hidden_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(inputs, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim)
        )

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.mlp(values)[:, None, :]


class ObjectEncoder(nn.Module):
    """A (B, E) normalised environment state of consecutive objects of ``lengths`` (Σ = E) to
    one token per object, (B, K, hidden_dim) for K objects.

    Object k's entries x_k (length L_k) give t_k = W₂ GELU(A_{L_k} x_k + p_k + r_k) + b₂: A_L
    is a linear layer shared by every object of length L (the cube slots share one, the bin
    slots another, so what is learnt about one cube holds for all), p_k a learned code of the
    object's place in the state, r_k a learned code of its role in the subtask (with
    ``roles``: not named, acted on, target; ``subtask_objects``), and W₂, b₂ are shared by all.
    """

    def __init__(self, lengths: tuple[int, ...], hidden_dim: int, roles: int = 0):
        super().__init__()
        self.lengths = tuple(lengths)
        self.inputs = nn.ModuleDict(
            {str(length): nn.Linear(length, hidden_dim) for length in sorted(set(lengths))}
        )
        self.places = nn.Parameter(torch.zeros(len(lengths), hidden_dim))
        nn.init.normal_(self.places, std=0.02)
        self.roles = nn.Embedding(roles, hidden_dim) if roles else None
        if self.roles is not None:
            nn.init.normal_(self.roles.weight, std=0.02)
        self.output = nn.Sequential(nn.GELU(), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, values: torch.Tensor, roles: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, K, hidden_dim) of ``values`` (B, E); ``roles`` (B, K) int64 when the
        encoder was built with roles, else None."""
        if (roles is None) != (self.roles is None):
            raise ValueError("ObjectEncoder: roles must be given exactly when built with roles")
        parts = torch.split(values, self.lengths, dim=-1)
        hidden = torch.stack([self.inputs[str(part.shape[-1])](part) for part in parts], dim=1)
        hidden = hidden + self.places
        if self.roles is not None and roles is not None:
            hidden = hidden + self.roles(roles)
        return self.output(hidden)


def encode_text_bytes(texts: list[str], max_bytes: int) -> torch.Tensor:
    """(B, max_bytes) int64 UTF-8 byte values of each text, truncated or padded with 256."""
    rows = []
    for text in texts:
        data = list(text.encode("utf-8")[:max_bytes])
        rows.append(data + [_PAD_BYTE] * (max_bytes - len(data)))
    return torch.tensor(rows, dtype=torch.long)


class TextEncoder(nn.Module):
    """Byte ids (B, L) to tokens (B, L, hidden_dim) and a padding mask (B, L), True = padding."""

    def __init__(self, hidden_dim: int, heads: int, layers: int, max_bytes: int, dropout: float):
        super().__init__()
        self.bytes = nn.Embedding(_PAD_BYTE + 1, hidden_dim)
        self.positions = nn.Parameter(torch.zeros(max_bytes, hidden_dim))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(
            hidden_dim,
            heads,
            2 * hidden_dim,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, byte_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padding = byte_ids == _PAD_BYTE
        padding[:, 0] = False  # an empty text still has one token to attend to
        tokens = self.bytes(byte_ids) + self.positions[: byte_ids.shape[1]]
        # in eval mode, no padding at all (one text, cut to its length) skips the masked path
        mask = padding if self.training or padding.any() else None
        return self.encoder(tokens, src_key_padding_mask=mask), padding


def load_text_model(path: str) -> tuple[Any, nn.Module]:
    """The tokenizer and the model that transformers' ``AutoTokenizer`` / ``AutoModel`` load from
    the local directory ``path`` (``DiTConfig.text_model``); a clear error when they cannot."""
    if not Path(path).is_dir():
        raise FileNotFoundError(
            f"DiTConfig.text_model: {path!r} is not a directory; it must be a local directory "
            "holding a transformers text model (config.json, weights, tokenizer files)"
        )
    try:
        from transformers import AutoModel, AutoTokenizer  # only this option needs transformers
    except ImportError as error:
        raise ImportError(
            f"DiTConfig.text_model={path!r} needs the transformers package "
            "(pip install 'lerobot[transformers-dep]')"
        ) from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"DiTConfig.text_model: could not load a transformers tokenizer and text model "
            f"from {path!r}: {error}"
        ) from error
    return tokenizer, model


class PretrainedTextEncoder(nn.Module):
    """Texts (B strings) to tokens (B, L, hidden_dim) and a padding mask (B, L), True = padding,
    through a frozen pretrained text model (``load_text_model``) and a trainable linear layer.

    Each text is tokenised on its own (at most ``max_tokens`` tokens, the model's special tokens
    included) and run through the model on its own, in the model's dtype (float32 as loaded), so
    its last hidden states (tokens, model width) never depend on the other texts of the batch or
    on autocast. Being
    frozen, the model gives the same states for the same text every time: they are cached per
    text (at most ``cache_size`` texts, the oldest forgotten first). The projected states are
    right-padded to the longest text of the batch, so the padding mask is the tokenizer's
    ``~attention_mask`` for the batch.

    The model is a plain attribute, not a registered submodule: it is in neither
    ``parameters()`` (optimiser, gradient clipping) nor ``state_dict()`` (checkpoints, EMA,
    accelerate states), and ``train()`` leaves it in eval mode; ``to(device)`` and other casts
    still reach it (``_apply``).
    """

    def __init__(self, path: str, hidden_dim: int, max_tokens: int, cache_size: int = 256):
        super().__init__()
        self.tokenizer, model = load_text_model(path)
        object.__setattr__(self, "text_model", model.eval().requires_grad_(False))
        self.project = nn.Linear(model.config.hidden_size, hidden_dim)
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        self.cached_states: dict[str, torch.Tensor] = {}

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> "PretrainedTextEncoder":
        """Move or cast the frozen model with the module; cached states start anew."""
        self.text_model._apply(fn)
        self.cached_states.clear()
        return super()._apply(fn, recurse)

    def text_states(self, text: str) -> torch.Tensor:
        """(tokens, model width) last hidden states of the frozen model for ``text``."""
        states = self.cached_states.get(text)
        # states made under torch.inference_mode cannot take part in a backward pass later
        if states is not None and not (states.is_inference() and torch.is_grad_enabled()):
            return states
        device = self.project.weight.device
        inputs = self.tokenizer(
            text, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            output = self.text_model(**{name: ids.to(device) for name, ids in inputs.items()})
        states = output.last_hidden_state[0]
        if text not in self.cached_states and len(self.cached_states) >= self.cache_size:
            del self.cached_states[next(iter(self.cached_states))]  # the oldest
        self.cached_states[text] = states
        return states

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states = [self.text_states(text) for text in texts]
        padded = nn.utils.rnn.pad_sequence(states, batch_first=True)  # (B, L, model width)
        lengths = torch.tensor([len(s) for s in states], device=padded.device)
        positions = torch.arange(padded.shape[1], device=padded.device)
        padding = positions[None, :] >= lengths[:, None]
        return self.project(padded.to(self.project.weight.dtype)), padding

"""Observation encoders: camera images, joint state and subtask text into transformer tokens.

Every encoder maps its input to tokens of width ``hidden_dim``:

- ``ImageEncoder`` (one per camera, trained from scratch): a small ResNet (a stride-2 stem, four
  residual stages of which three halve the resolution, GroupNorm) gives a feature map at 1/16 of
  the image size, e.g. 6 × 8 for 96 × 128; each cell becomes a token, with a fixed 2-D sine
  position code added.
- ``VectorEncoder``: a two-layer MLP from a normalised vector (joint state, object poses) to one
  token.
- ``TextEncoder``: the subtask text as UTF-8 bytes (no vocabulary to download; any phrasing is
  representable), byte embeddings plus positions, then a small transformer encoder. Its tokens
  come with a padding mask.

Example:
    >>> import torch
    >>> encoder = ImageEncoder(hidden_dim=64, channels=(8, 16, 32, 64))
    >>> encoder(torch.zeros(2, 3, 96, 128)).shape
    torch.Size([2, 48, 64])
"""

import math

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
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


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
        positions = sine_positions_2d(height, width, self.hidden_dim).to(tokens)
        return tokens + positions


class VectorEncoder(nn.Module):
    """A (B, D) normalised vector to one (B, 1, hidden_dim) token."""

    def __init__(self, inputs: int, hidden_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(inputs, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim)
        )

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.mlp(values)[:, None, :]


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
        return self.encoder(tokens, src_key_padding_mask=padding), padding

"""The diffusion transformer: a noisy action chunk, a timestep and observation tokens in, the
denoising target out. Reads top to bottom: embeddings, one block, the network.

Shapes: B chunks, H actions per chunk, A values per action, O observation tokens, D = hidden_dim.

Conditioning, and why two mechanisms:

- **adaLN-Zero** (Peebles & Xie, DiT) carries the *global* condition c = timestep embedding +
  mean of the observation tokens: every block's LayerNorms get a per-channel shift and scale
  from c, and every residual branch a gate from c. The modulation layers start at zero, so each
  block starts as the identity and training is stable from step one. It is cheap (one small
  MLP per block) and tells every layer how much noise remains.
- **Cross-attention** carries the *detail*: each action token attends to all observation tokens
  (image patches of every camera, joint state, subtask-text bytes), so where the cube is in the
  image and which arm the text names reach the actions directly, which a pooled vector would
  blur. (lerobot's multi_task_dit conditions with adaLN only; RDT and GR00T's action head use
  cross-attention.)

Example:
    >>> import torch
    >>> net = DiffusionTransformer(action_dim=14, chunk_steps=8, hidden_dim=32, layers=2, heads=2,
    ...                            mlp_ratio=2.0, dropout=0.0)
    >>> out = net(torch.zeros(3, 8, 14), torch.tensor([1, 5, 9]), torch.zeros(3, 4, 32),
    ...           torch.zeros(3, 4, dtype=torch.bool))
    >>> out.shape
    torch.Size([3, 8, 14])
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps (any real values, e.g. 0..999) to (B, dim) sine/cosine codes with
    geometrically spaced frequencies from 1 to 1/10000."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(10_000.0) * torch.arange(half, device=timesteps.device) / half
    )
    angles = timesteps.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, H, D) normalised, then x (1 + scale) + shift with (B, D) shift and scale."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class Attention(nn.Module):
    """Multi-head attention of queries (B, Q, D) over keys/values (B, K, D); ``padding`` (B, K)
    True marks keys to ignore."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, padding: torch.Tensor | None = None
    ) -> torch.Tensor:
        batch, queries, dim = x.shape
        split = dim // self.heads
        q = self.query(x).view(batch, queries, self.heads, split).transpose(1, 2)
        k, v = self.key_value(context).view(batch, -1, 2, self.heads, split).unbind(dim=2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        mask = None if padding is None else ~padding[:, None, None, :]  # True = attend
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(batch, queries, dim))


class DiTBlock(nn.Module):
    """Self-attention over the chunk, cross-attention to the observation, MLP; the first and the
    last modulated and gated by adaLN-Zero from the condition c."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.self_attention = Attention(dim, heads, dropout)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attention = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)  # adaLN-Zero: the block starts as identity
        nn.init.zeros_(self.modulation[1].bias)

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor,
        observation: torch.Tensor,
        observation_padding: torch.Tensor,
    ) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(condition).chunk(6, dim=1)
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1[:, None, :] * self.self_attention(h, h)
        x = x + self.cross_attention(self.norm_cross(x), observation, observation_padding)
        h = modulate(self.norm2(x), shift2, scale2)
        return x + gate2[:, None, :] * self.mlp(h)


class DiffusionTransformer(nn.Module):
    """The denoiser: (B, H, A) noisy chunk, (B,) timesteps, (B, O, D) observation tokens with
    (B, O) padding → (B, H, A) prediction (noise, clean chunk or velocity, per the objective)."""

    def __init__(
        self,
        action_dim: int,
        chunk_steps: int,
        hidden_dim: int,
        layers: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.action_in = nn.Linear(action_dim, hidden_dim)
        self.positions = nn.Parameter(torch.zeros(chunk_steps, hidden_dim))
        nn.init.normal_(self.positions, std=0.02)
        self.timestep_mlp = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_dim, heads, mlp_ratio, dropout) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 2 * hidden_dim))
        self.action_out = nn.Linear(hidden_dim, action_dim)
        for layer in (self.final_modulation[1], self.action_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        noisy_actions: torch.Tensor,
        timesteps: torch.Tensor,
        observation: torch.Tensor,
        observation_padding: torch.Tensor,
    ) -> torch.Tensor:
        x = self.action_in(noisy_actions) + self.positions[: noisy_actions.shape[1]]
        kept = (~observation_padding).unsqueeze(-1).to(observation.dtype)
        pooled = (observation * kept).sum(dim=1) / kept.sum(dim=1).clamp(min=1.0)
        condition = self.timestep_mlp(timestep_embedding(timesteps, self.hidden_dim)) + pooled
        for block in self.blocks:
            x = block(x, condition, observation, observation_padding)
        shift, scale = self.final_modulation(condition).chunk(2, dim=1)
        return self.action_out(modulate(self.final_norm(x), shift, scale))

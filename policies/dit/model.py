"""The diffusion transformer: a noisy action chunk, a timestep and observation tokens in, the
denoising target out. Reads top to bottom: embeddings, one block, the network.

Shapes: B chunks, H actions per chunk, A values per action, O observation tokens, D = hidden_dim.

Conditioning, and why two mechanisms:

- **adaLN-Zero** (Peebles & Xie, DiT) carries the *global* condition c = timestep embedding +
  the observation's summary vector (``ObservationTokens.summary``): every block's LayerNorms
  get a per-channel shift and scale from c, and every residual branch a gate from c. The
  modulation layers start at zero, so each block starts as the identity and training is stable
  from step one. It is cheap (one small MLP per block) and tells every layer how much noise
  remains and what the robot's state is.
- **Cross-attention** carries the *detail*: each action token attends to all observation tokens
  (image patches of every camera, joint state, subtask-text bytes), so where the cube is in the
  image and which arm the text names reach the actions directly, which a pooled vector would
  blur. (lerobot's multi_task_dit conditions with adaLN only; RDT and GR00T's action head use
  cross-attention.)

Sampling runs the network ``inference_steps`` times on the same observation: ``prepare`` works
out once per chunk everything that does not depend on the noisy chunk (the cross-attention keys
and values, the condition and every block's modulation for every step), and ``denoise`` is then
one step of the same network with only what remains (see ``DenoisingContext``). Both use the
weights laid out for them once, until the parameters change (``inference_weights``).

Example:
    >>> import torch
    >>> net = DiffusionTransformer(action_dim=14, chunk_steps=8, hidden_dim=32, layers=2, heads=2,
    ...                            mlp_ratio=2.0, dropout=0.0)
    >>> observation = ObservationTokens(
    ...     torch.zeros(3, 4, 32), torch.zeros(3, 4, dtype=torch.bool), torch.zeros(3, 32))
    >>> out = net(torch.zeros(3, 8, 14), torch.tensor([1, 5, 9]), observation)
    >>> out.shape
    torch.Size([3, 8, 14])
"""

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ObservationTokens:
    """What the transformer is conditioned on: ``tokens`` (B, O, D) that the actions
    cross-attend to, their ``padding`` (B, O) (True: a key to ignore), and ``summary`` (B, D),
    the one vector that joins the timestep embedding in adaLN's condition."""

    tokens: torch.Tensor
    padding: torch.Tensor
    summary: torch.Tensor


@dataclass(frozen=True)
class ParameterStamp:
    """The parameters (and buffers) that values cached from a module (laid-out weights, text
    tokens) were computed from: each one's storage address and version counter, which change
    when it is replaced or moved (``to``, ``load_state_dict(assign=True)``) or modified in place
    (an optimiser step, ``load_state_dict``, ``EmaWeights.copy_to``), so ``matches`` tells
    whether the cache still holds. The tensors themselves are kept (detached) so that no other
    tensor can take their addresses while the stamp lives. A change made behind autograd's back
    (``parameter.data``) is not seen."""

    key: tuple[tuple[int, int], ...]
    kept: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, module: nn.Module) -> "ParameterStamp":
        parameters = _parameters_of(module)
        key = tuple((p.data_ptr(), p._version) for p in parameters)
        return cls(key, tuple(p.detach() for p in parameters))

    def matches(self, module: nn.Module) -> bool:
        """Whether ``module``'s parameters are still those the stamp was made of (checked at
        every chunk: a plain walk, a few tens of microseconds)."""
        return self.key == tuple((p.data_ptr(), p._version) for p in _parameters_of(module))


def _parameters_of(module: nn.Module) -> list[torch.Tensor]:
    """``module``'s parameters and buffers in the order ``ParameterStamp.matches`` walks
    them."""
    parameters = []
    modules = [module]
    for current in modules:  # the list grows as the walk goes on
        if current is not None:
            for tensors in (current._parameters, current._buffers):
                parameters.extend(p for p in tensors.values() if p is not None)
            modules.extend(current._modules.values())
    return parameters


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
    """The denoiser: (B, H, A) noisy chunk, (B,) timesteps and the observation
    (``ObservationTokens``) → (B, H, A) prediction (noise, clean chunk or velocity, per the
    objective)."""

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
        self._inference_weights: InferenceWeights | None = None  # see inference_weights
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
        observation: ObservationTokens,
    ) -> torch.Tensor:
        x = self.action_in(noisy_actions) + self.positions[: noisy_actions.shape[1]]
        embedded = timestep_embedding(timesteps, self.hidden_dim)
        condition = self.timestep_mlp(embedded) + observation.summary
        for block in self.blocks:
            x = block(x, condition, observation.tokens, observation.padding)
        shift, scale = self.final_modulation(condition).chunk(2, dim=1)
        return self.action_out(modulate(self.final_norm(x), shift, scale))

    # --- sampling: the same network, split into per-chunk and per-step work --------------------

    def train(self, mode: bool = True) -> "DiffusionTransformer":
        """``nn.Module.train``; training mode also lets go of the laid-out inference weights
        (``inference_weights``: memory), which the next chunk sampled in eval mode lays out
        again."""
        if mode:
            self._inference_weights = None
        return super().train(mode)

    def inference_weights(self) -> "InferenceWeights":
        """The layers' weights as ``prepare`` and ``denoise`` use them (``InferenceWeights``).

        Cached: laid out on the first call and kept, for every later chunk, until a parameter
        changes (``ParameterStamp``). Laying out costs as much as a few denoising
        steps (transposed copies of every matrix), hence once per set of weights rather than
        once per chunk. Ordinary tensors, even when first asked for under
        ``torch.inference_mode``."""
        cached = getattr(self, "_inference_weights", None)
        if cached is None or not cached.stamp.matches(self):
            with torch.inference_mode(False), torch.no_grad():
                cached = self._lay_out_weights()
            self._inference_weights = cached
        return cached

    def _lay_out_weights(self) -> "InferenceWeights":
        """``InferenceWeights`` of the current parameters. Linear layers' weights become
        contiguous (in, out) matrices, which ``torch.addmm`` multiplies by markedly faster than
        by the transposed views ``F.linear`` uses; layers applied to the same input become one
        matrix: self-attention's query and key/value layers, and, for ``prepare``, every block's
        cross-attention key/value layer and every modulation layer."""
        blocks = []
        for block in self.blocks:
            self_attention, cross = block.self_attention, block.cross_attention
            blocks.append(
                _BlockWeights(
                    heads=cross.heads,
                    qkv_weight=_in_out(self_attention.query, self_attention.key_value),
                    qkv_bias=torch.cat([self_attention.query.bias, self_attention.key_value.bias]),
                    self_out_weight=_in_out(self_attention.out),
                    self_out_bias=self_attention.out.bias.detach(),
                    cross_norm_weight=block.norm_cross.weight.detach(),
                    cross_norm_bias=block.norm_cross.bias.detach(),
                    cross_query_weight=_in_out(cross.query),
                    cross_query_bias=cross.query.bias.detach(),
                    cross_out_weight=_in_out(cross.out),
                    cross_out_bias=cross.out.bias.detach(),
                    mlp_in_weight=_in_out(block.mlp[0]),
                    mlp_in_bias=block.mlp[0].bias.detach(),
                    mlp_out_weight=_in_out(block.mlp[3]),
                    mlp_out_bias=block.mlp[3].bias.detach(),
                )
            )
        key_value = [block.cross_attention.key_value for block in self.blocks]
        modulation = [block.modulation[1] for block in self.blocks] + [self.final_modulation[1]]
        return InferenceWeights(
            stamp=ParameterStamp.of(self),
            blocks=blocks,
            key_value_weight=_in_out(*key_value),
            key_value_bias=torch.cat([layer.bias for layer in key_value]),
            modulation_weight=_in_out(*modulation),
            modulation_bias=torch.cat([layer.bias for layer in modulation]),
            action_in_weight=_in_out(self.action_in),
            action_out_weight=_in_out(self.action_out),
        )

    @torch.no_grad()
    def prepare(
        self, observation_tokens: ObservationTokens, timesteps: torch.Tensor
    ) -> "DenoisingContext":
        """What the denoising steps of one chunk share, for ``denoise``: the observation and the
        (S, B) or (S,) ``timesteps`` of the S steps in order."""
        weights = self.inference_weights()
        observation, observation_padding = observation_tokens.tokens, observation_tokens.padding
        batch, _, dim = observation.shape
        timesteps = timesteps.reshape(timesteps.shape[0], -1).expand(-1, batch)
        steps = timesteps.shape[0]
        embedded = timestep_embedding(timesteps.reshape(-1), self.hidden_dim)
        summary = observation_tokens.summary
        condition = self.timestep_mlp(embedded).view(steps, batch, dim) + summary  # (S, B, D)
        # every block's modulation and the final one, for every step: one matrix product
        modulations = torch.addmm(
            weights.modulation_bias, F.silu(condition.view(-1, dim)), weights.modulation_weight
        )
        per_step = _step_modulations(modulations.view(steps, batch, -1), len(self.blocks))

        mask = None
        if observation_padding.any():
            if batch == 1:  # padded keys are left out rather than masked
                observation = observation[:, ~observation_padding[0]]
            else:  # an additive mask, -inf for the padding, made once
                mask = torch.zeros_like(observation_padding, dtype=observation.dtype)
                mask = mask.masked_fill(observation_padding, -math.inf)[:, None, None, :]
        # every block's cross-attention keys and values: one matrix product, viewed as
        # (blocks, keys or values, B, heads, O, D / heads) (attention reads them in place)
        heads = weights.blocks[0].heads
        key_values = torch.addmm(
            weights.key_value_bias, observation.reshape(-1, dim), weights.key_value_weight
        )
        key_values = key_values.view(batch, -1, len(self.blocks), 2, heads, dim // heads)
        key_values = key_values.permute(2, 3, 0, 4, 1, 5)
        cross = [tuple(block.unbind(0)) for block in key_values.unbind(0)]
        return DenoisingContext(weights, cross, mask, per_step)

    def denoise(
        self, noisy_actions: torch.Tensor, step: int, context: "DenoisingContext"
    ) -> torch.Tensor:
        """``forward`` for step ``step`` of the chunk ``context`` was prepared for (``prepare``):
        (B, H, A) noisy chunk → (B, H, A) prediction, equal up to float rounding. Inference
        only: no dropout. The chunk's B·H tokens are the rows of one (B·H, D) matrix throughout,
        the linear layers ``torch.addmm`` on it."""
        batch, length, actions = noisy_actions.shape
        dim = self.hidden_dim
        rows = batch * length
        weights = context.weights
        x = torch.addmm(
            self.action_in.bias, noisy_actions.reshape(rows, actions), weights.action_in_weight
        )
        x = (x.view(batch, length, dim) + self.positions[:length]).view(rows, dim)
        block_modulations, (shift, scale) = context.per_step[step]
        for block, (keys, values), modulation in zip(
            weights.blocks, context.cross_keys_values, block_modulations, strict=True
        ):
            shift1, scale1, gate1, shift2, scale2, gate2 = modulation
            heads = block.heads
            split = dim // heads
            h = _modulated_norm(x, shift1, scale1, batch)
            qkv = torch.addmm(block.qkv_bias, h, block.qkv_weight)
            q, k, v = qkv.view(batch, length, 3, heads, split).permute(2, 0, 3, 1, 4).unbind(0)
            y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(rows, dim)
            y = torch.addmm(block.self_out_bias, y, block.self_out_weight)
            x = _gated_add(x, gate1, y, batch)
            h = torch.layer_norm(x, (dim,), block.cross_norm_weight, block.cross_norm_bias, 1e-6)
            q = torch.addmm(block.cross_query_bias, h, block.cross_query_weight)
            q = q.view(batch, length, heads, split).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=context.cross_mask)
            y = y.transpose(1, 2).reshape(rows, dim)
            x = x + torch.addmm(block.cross_out_bias, y, block.cross_out_weight)
            h = _modulated_norm(x, shift2, scale2, batch)
            h = F.gelu(torch.addmm(block.mlp_in_bias, h, block.mlp_in_weight), approximate="tanh")
            y = torch.addmm(block.mlp_out_bias, h, block.mlp_out_weight)
            x = _gated_add(x, gate2, y, batch)
        h = _modulated_norm(x, shift, scale, batch)
        out = torch.addmm(self.action_out.bias, h, weights.action_out_weight)
        return out.view(batch, length, actions)


@dataclass(frozen=True)
class _BlockWeights:
    """One block's tensors for ``DiffusionTransformer.denoise``: its linear layers' weights as
    contiguous (in, out) matrices (self-attention's query and key/value layers as one) and
    biases, and its cross-attention LayerNorm's affine."""

    heads: int
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    self_out_weight: torch.Tensor
    self_out_bias: torch.Tensor
    cross_norm_weight: torch.Tensor
    cross_norm_bias: torch.Tensor
    cross_query_weight: torch.Tensor
    cross_query_bias: torch.Tensor
    cross_out_weight: torch.Tensor
    cross_out_bias: torch.Tensor
    mlp_in_weight: torch.Tensor
    mlp_in_bias: torch.Tensor
    mlp_out_weight: torch.Tensor
    mlp_out_bias: torch.Tensor


@dataclass(frozen=True)
class InferenceWeights:
    """``DiffusionTransformer.inference_weights``: the weights of one set of parameters (told
    apart by ``stamp``) laid out for sampling. Per block its ``_BlockWeights``; for ``prepare``
    every block's cross-attention key/value layer side by side, (D, blocks · 2D), and every
    block's modulation layer then the final one, (D, (6 · blocks + 2) D); the action input and
    output layers as (in, out)."""

    stamp: ParameterStamp
    blocks: list[_BlockWeights]
    key_value_weight: torch.Tensor
    key_value_bias: torch.Tensor
    modulation_weight: torch.Tensor
    modulation_bias: torch.Tensor
    action_in_weight: torch.Tensor
    action_out_weight: torch.Tensor


_Modulations = tuple[tuple[tuple[torch.Tensor, ...], ...], tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class DenoisingContext:
    """What ``DiffusionTransformer.prepare`` works out once per chunk: the laid-out weights;
    per block the observation's cross-attention keys and values, each (B, heads, O, D / heads);
    the additive padding mask of the keys (None: no padding, or left out at B = 1); per step
    each block's adaLN modulation (shift, 1 + scale, gate, twice) and the final layer's
    (shift, 1 + scale)."""

    weights: InferenceWeights
    cross_keys_values: list[tuple[torch.Tensor, ...]]
    cross_mask: torch.Tensor | None
    per_step: list[_Modulations]


def _step_modulations(modulations: torch.Tensor, blocks: int) -> list[_Modulations]:
    """(S, B, (6 · blocks + 2) D) outputs of every block's modulation layer and then the final
    one, side by side (shift, scale, gate, … in turn: every third piece from the second is a
    scale, the final one's too) → per step each block's pieces and the final ones, with
    1 + scale for scale, shaped to broadcast over (B, H, D): (D,) when B = 1
    (``_modulated_norm`` then makes them the LayerNorm's affine), else (B, 1, D)."""
    steps, batch, width = modulations.shape
    parts = 6 * blocks + 2
    pieces = modulations.view(steps, batch, parts, 1, width // parts)
    pieces[:, :, 1::3] += 1
    per_step = []
    for step in pieces.unbind(0):
        split = step.view(parts, -1).unbind(0) if batch == 1 else step.unbind(1)
        per_step.append(
            (tuple(split[6 * index : 6 * index + 6] for index in range(blocks)), split[-2:])
        )
    return per_step


def _in_out(*layers: nn.Linear) -> torch.Tensor:
    """The layers' weights side by side as one contiguous (in, out) matrix."""
    return torch.cat([layer.weight for layer in layers]).t().contiguous()


def _modulated_norm(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, batch: int
) -> torch.Tensor:
    """``modulate(LayerNorm(x), shift, scale - 1)`` of (B·H, D) rows with ``_step_modulations``'
    pieces: (D,) ones (B = 1) become the LayerNorm's affine."""
    if shift.dim() == 1:
        return torch.layer_norm(x, x.shape[1:], scale, shift, 1e-6)
    normed = torch.layer_norm(x, x.shape[1:], None, None, 1e-6).view(batch, -1, x.shape[1])
    return torch.addcmul(shift, normed, scale).view(x.shape)


def _gated_add(x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    """x + gate · y for (B·H, D) rows x and y and a ``_step_modulations`` gate."""
    if gate.dim() == 1:
        return torch.addcmul(x, gate, y)
    shape = (batch, -1, x.shape[1])
    return torch.addcmul(x.view(shape), gate, y.view(shape)).view(x.shape)

"""Exponential moving average of a model's weights, the weights a diffusion policy is run with.

After every optimiser step, each floating-point tensor of the model's state moves the average:
``average ← d · average + (1 - d) · weight``, with the decay warming up as
``d = min(max_decay, (1 + step) / (10 + step))`` so early averages are not dominated by the
random initialisation. Integer buffers are copied.

Example:
    ema = EmaWeights(policy, max_decay=0.999)
    ...optimizer.step(); ema.update(policy)
    ema.copy_to(inference_policy)
"""

import torch
from torch import nn


class EmaWeights:
    """The moving average of ``model``'s state (see the module docstring); checkpointable
    through ``state_dict`` / ``load_state_dict``."""

    def __init__(self, model: nn.Module, max_decay: float = 0.999):
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"EmaWeights.max_decay must be in [0, 1), got {max_decay}")
        self.max_decay = max_decay
        self.updates = 0
        self.average = {
            name: tensor.detach().clone() for name, tensor in model.state_dict().items()
        }

    def decay(self) -> float:
        """The decay of the next update."""
        return min(self.max_decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        decay = self.decay()
        for name, tensor in model.state_dict().items():
            average = self.average[name]
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(tensor.detach().to(average.dtype), alpha=1.0 - decay)
            else:
                average.copy_(tensor)
        self.updates += 1

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture)."""
        model.load_state_dict(self.average, strict=True)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "max_decay": self.max_decay, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.max_decay = float(state["max_decay"])
        for name, tensor in state["average"].items():
            self.average[name].copy_(tensor)

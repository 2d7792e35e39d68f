"""Image augmentation for training windows: random shift (crop) and colour jitter.

Works on a batch of camera windows, ``(B, n, 3, H, W)`` uint8 (n history steps). Every step of
one sample's window gets the same shift and the same colours, so the history stays consistent;
samples differ.

- **Random shift** (DrQ-style crop): the images are padded by ``shift_px`` pixels (edges
  repeated) and cropped back to H × W at a random offset in ``[0, 2 shift_px]``², i.e. the
  scene moves by up to ``shift_px`` pixels in each direction. Evaluation needs no centre crop:
  the image size is unchanged.
- **Colour jitter**: per sample, brightness ``x b``, contrast ``(x - m) c + m`` (m the sample's
  mean grey level) and saturation ``(x - g) s + g`` (g each pixel's grey level), with
  ``b, c, s`` uniform in ``[1 - amount, 1 + amount]``.

Example:
    images = augment(images, AugmentConfig(), np.random.default_rng(0))
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_GREY = torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3, 1, 1)


@dataclass(frozen=True)
class AugmentConfig:
    """How strongly to augment.

    Attributes:
        shift_px: largest shift in pixels (0: no shift).
        brightness: brightness factors in [1 - brightness, 1 + brightness] (0: none).
        contrast: contrast factors in [1 - contrast, 1 + contrast].
        saturation: saturation factors in [1 - saturation, 1 + saturation].
    """

    shift_px: int = 4
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


def _shift(images: torch.Tensor, shift_px: int, rng: np.random.Generator) -> torch.Tensor:
    batch, steps, channels, height, width = images.shape
    flat = images.reshape(batch, steps * channels, height, width).float()
    padded = F.pad(flat, (shift_px,) * 4, mode="replicate")
    offsets = rng.integers(0, 2 * shift_px + 1, size=(batch, 2))
    shifted = torch.stack(
        [padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets)]
    )
    return shifted.reshape(batch, steps, channels, height, width)


def _factors(amount: float, batch: int, rng: np.random.Generator) -> torch.Tensor:
    values = rng.uniform(1.0 - amount, 1.0 + amount, size=batch).astype(np.float32)
    return torch.from_numpy(values).view(batch, 1, 1, 1, 1)


def augment(images: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Shifted and colour-jittered copy of ``images`` ((B, n, 3, H, W) uint8), still uint8.

    The three colour operations are linear in the pixel values, so they are applied at once:
    with g the grey image and m its mean, brightness b, contrast c and saturation s give
    ``c b (s x + (1 - s) g) + (1 - c) b m``.
    """
    if images.ndim != 5 or images.shape[2] != 3 or images.dtype != torch.uint8:
        raise ValueError(
            f"augment: expected (B, n, 3, H, W) uint8 images, got {tuple(images.shape)} "
            f"{images.dtype}"
        )
    batch = images.shape[0]
    result = _shift(images, config.shift_px, rng) if config.shift_px else images.float()
    if not (config.brightness or config.contrast or config.saturation):
        return result.round_().to(torch.uint8)
    brightness = _factors(config.brightness, batch, rng)
    contrast = _factors(config.contrast, batch, rng)
    saturation = _factors(config.saturation, batch, rng)
    grey = (result * _GREY).sum(dim=2, keepdim=True)  # (B, n, 1, H, W)
    mean = grey.mean(dim=(1, 3, 4), keepdim=True)
    scale = contrast * brightness
    result = result.mul_(scale * saturation).add_(grey.mul_(scale * (1.0 - saturation)))
    result = result.add_((1.0 - contrast) * brightness * mean)
    return result.clamp_(0.0, 255.0).round_().to(torch.uint8)

"""Augmentation of whole batches of in-memory images, on the device, from a seeded generator.

Follows DARTS / P-DARTS on CIFAR: random crop with zero padding, horizontal flip, then
normalisation, and cutout on the normalised tensor. Every random number comes from the
``generator`` passed in, in a fixed order, so a seed gives the same batch bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PIXEL_MAX = 255.0  # uint8 images are scaled by this to reach the [0, 1] scale of mean / std
FLIP_PROBABILITY = 0.5  # per sample, as torchvision's RandomHorizontalFlip


def random_crop_flip(
    images: torch.Tensor,
    padding: int,
    horizontal_flip: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Randomly crop (zero padding ``padding``) and flip a whole N x C x H x W batch.

    Equivalent to torchvision's ``RandomCrop(size, padding)`` then ``RandomHorizontalFlip``
    on each image: the window offset per sample is uniform in [0, 2 * padding] on both axes.
    Crop and flip are one gather with per-sample row and column indices, so there is no
    Python loop over samples. Works on uint8 directly, where padding with 0 equals padding
    the [0, 1] image with 0.
    """
    n, channels, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device).expand(n, height)
    cols = torch.arange(width, device=device).expand(n, width)
    if horizontal_flip:
        flipped = torch.rand(n, generator=generator, device=device) < FLIP_PROBABILITY
        cols = torch.where(flipped[:, None], (width - 1) - cols, cols)
    if padding > 0:
        # A flipped crop is the window at the same offset read right to left.
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=device)
        images = F.pad(images, (padding, padding, padding, padding))
        rows = rows + offsets[:, :1]
        cols = cols + offsets[:, 1:]
    sample = torch.arange(n, device=device).view(n, 1, 1, 1)
    channel = torch.arange(channels, device=device).view(1, channels, 1, 1)
    return images[sample, channel, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``length`` x ``length`` square per sample (DeVries & Taylor 2017, as DARTS).

    The square's centre is uniform over the image and the square is clipped at the borders,
    so near an edge less than ``length`` x ``length`` is cut. DARTS applies it to the
    normalised tensor, so the cut region is 0 after normalisation, not black.
    """
    n, _, height, width = images.shape
    device = images.device
    centre_row = torch.randint(0, height, (n, 1), generator=generator, device=device)
    centre_col = torch.randint(0, width, (n, 1), generator=generator, device=device)
    top = centre_row - length // 2
    left = centre_col - length // 2
    rows = torch.arange(height, device=device).view(1, height)
    cols = torch.arange(width, device=device).view(1, width)
    in_rows = (rows >= top) & (rows < top + length)
    in_cols = (cols >= left) & (cols < left + length)
    square = in_rows[:, :, None] & in_cols[:, None, :]
    return images.masked_fill(square[:, None], 0.0)


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 ``(x / 255 - mean) / std``, as ToTensor + Normalize."""
    return images.to(torch.float32).div_(PIXEL_MAX).sub_(mean).div_(std)

"""Per-channel statistics of in-memory images, for the normalisation in ``DatasetInfo``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


PIXEL_LEVELS = 256  # distinct uint8 values


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 N x C x H x W images, on the [0, 1] scale.

    Counting the 256 pixel levels per channel is exact and needs one histogram of memory
    instead of a float copy of the whole dataset.
    """
    import torch  # here, not at the top: listing providers must not load torch

    levels = torch.arange(PIXEL_LEVELS, dtype=torch.float64) / (PIXEL_LEVELS - 1)
    means: list[float] = []
    stds: list[float] = []
    for channel in range(int(images.shape[1])):
        pixels = images[:, channel].reshape(-1)
        counts = torch.bincount(pixels, minlength=PIXEL_LEVELS).to(torch.float64)
        mean = (counts * levels).sum() / counts.sum()
        variance = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(float(mean))
        stds.append(float(variance.sqrt()))
    return tuple(means), tuple(stds)

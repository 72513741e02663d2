"""Per-channel statistics of in-memory images, for the normalisation in ``DatasetInfo``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdarts_cli.errors import DatasetError

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


def split_stats(
    train: torch.Tensor,
    test: torch.Tensor,
    names: tuple[str, str],
    train_images: str,
    where: str = "",
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``channel_stats`` of the ``train`` images after the checks every in-memory dataset
    needs: both splits of one image shape, no constant channel (it cannot be normalised).
    ``names`` name the splits and ``train_images`` the training images in the messages;
    ``where`` (a file, say) starts them."""
    if train.shape[1:] != test.shape[1:]:
        raise DatasetError(
            f"{where}{names[0]} images are {tuple(train.shape[1:])} (C, H, W) but {names[1]} "
            f"images are {tuple(test.shape[1:])}"
        )
    mean, std = channel_stats(train)
    if 0.0 in std:
        raise DatasetError(
            f"{where}channel {std.index(0.0)} of {train_images} is constant, so it cannot be "
            "normalised"
        )
    return mean, std

"""torchvision transforms for datasets read from disk, and their per-sample seeding.

On-disk datasets (image folders) yield PIL images; these transforms turn them into normalised
tensors, with the CIFAR-style crop and flip or the DARTS ImageNet augmentation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from pdarts_cli.data.augment import FLIP_PROBABILITY
from pdarts_cli.data.base import DatasetInfo

# Per-sample seed = epoch seed * stride + position: a large odd stride puts the seeds of
# different epochs far apart, so no (epoch, position) pair shares a sample's seed with another.
_SEED_STRIDE = 0x9E3779B97F4A7C15
_SEED_MASK = (1 << 63) - 1
IMAGENET_JITTER = (0.4, 0.4, 0.4, 0.2)  # brightness, contrast, saturation, hue (DARTS)
IMAGENET_RESIZE_RATIO = 256 / 224  # test images: resize to 256, centre-crop 224


def imagenet_transform(info: DatasetInfo, train: bool) -> Callable[[Any], torch.Tensor]:
    """The DARTS / P-DARTS ImageNet transforms."""
    from torchvision import transforms

    size = info.image_size
    if train:
        brightness, contrast, saturation, hue = IMAGENET_JITTER
        steps: list[Callable[[Any], Any]] = [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(FLIP_PROBABILITY),
            transforms.ColorJitter(brightness, contrast, saturation, hue),
        ]
    else:
        steps = [
            transforms.Resize(round(size * IMAGENET_RESIZE_RATIO)),
            transforms.CenterCrop(size),
        ]
    steps += [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    composed: Callable[[Any], torch.Tensor] = transforms.Compose(steps)
    return composed


def loader_transform(
    info: DatasetInfo, train: bool, crop_padding: int, horizontal_flip: bool
) -> Callable[[Any], torch.Tensor]:
    """torchvision transforms from a PIL image to a normalised C x S x S tensor."""
    from torchvision import transforms  # imported here: only on-disk datasets need it

    size = info.image_size
    if info.augmentation == "imagenet":
        return imagenet_transform(info, train)
    steps: list[Callable[[Any], Any]] = [transforms.Resize(size), transforms.CenterCrop(size)]
    if train and crop_padding > 0:
        steps.append(transforms.RandomCrop(size, padding=crop_padding))
    if train and horizontal_flip:
        steps.append(transforms.RandomHorizontalFlip(FLIP_PROBABILITY))
    steps += [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    composed: Callable[[Any], torch.Tensor] = transforms.Compose(steps)
    return composed


def _sample_seed(epoch_seed: int, position: int) -> int:
    return (epoch_seed * _SEED_STRIDE + position) & _SEED_MASK


class TransformedSubset(Dataset[tuple[torch.Tensor, int]]):
    """A ``Subset`` whose samples pass through a transform with a per-sample seeded RNG.

    torchvision's random transforms draw from torch's global generator. Seeding it per sample
    from (epoch seed, position), inside ``fork_rng`` so the caller's global state is left
    alone, makes an epoch reproducible whatever ``num_workers`` is.
    """

    def __init__(
        self,
        subset: Subset[tuple[object, int]],
        transform: Callable[[Any], torch.Tensor],
        random: bool,
    ) -> None:
        self._subset = subset
        self._transform = transform
        self._random = random
        self.epoch_seed = 0  # set by LoaderBatches.epoch before workers copy the dataset

    def __len__(self) -> int:
        return len(self._subset)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        image, label = self._subset[position]
        if not self._random:
            return self._transform(image), int(label)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_sample_seed(self.epoch_seed, position))
            return self._transform(image), int(label)

"""Batch sources: one epoch of model-ready batches, from memory or from disk.

In-memory datasets (``ImageTensors``) are moved to the device once and cut, augmented and
normalised there a whole batch at a time (``DeviceBatches``): on a GPU this removes the data
loader from the step time of a 32 x 32 search entirely. Datasets on disk go through a torch
``DataLoader`` with torchvision transforms (``LoaderBatches``). Both draw every random number
from a generator seeded per epoch, so ``epoch(seed)`` gives the same batches for the same seed.

Augmentation follows DARTS / P-DARTS on CIFAR: random crop with zero padding, horizontal flip,
then normalisation, and cutout on the normalised tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from pdarts_cli.data.base import BatchSource, DatasetInfo, ImageTensors

PIXEL_MAX = 255.0  # uint8 images are scaled by this to reach the [0, 1] scale of mean / std
FLIP_PROBABILITY = 0.5  # per sample, as torchvision's RandomHorizontalFlip
# Per-sample seed = epoch seed * stride + position: a large odd stride puts the seeds of
# different epochs far apart, so no (epoch, position) pair shares a sample's seed with another.
_SEED_STRIDE = 0x9E3779B97F4A7C15
_SEED_MASK = (1 << 63) - 1


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """How many batches one epoch over ``n`` samples yields."""
    return n // batch_size if drop_last else -(-n // batch_size)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _channel_vector(values: Sequence[float], channels: int, device: torch.device) -> torch.Tensor:
    """Per-channel statistics shaped to broadcast over N x C x H x W."""
    if len(values) != channels:
        raise ValueError(f"expected {channels} per-channel values, got {len(values)}")
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, channels, 1, 1)


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


class DeviceBatches:
    """Batches cut from images that live on the device, augmented there a batch at a time."""

    def __init__(
        self,
        data: ImageTensors,
        indices: torch.Tensor | None,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        crop_padding: int = 0,
        horizontal_flip: bool = False,
        cutout: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        _check_batch_size(batch_size)
        images, labels = data.images, data.labels
        if indices is not None:
            images, labels = images.index_select(0, indices), labels.index_select(0, indices)
        # The one host-to-device copy: every epoch after this only indexes device memory.
        self._images = images.to(device)
        self._labels = labels.to(device=device, dtype=torch.int64)
        channels = int(images.shape[1])
        self._mean = _channel_vector(mean, channels, device)
        self._std = _channel_vector(std, channels, device)
        self._device = device
        self.batch_size = batch_size
        self.crop_padding = crop_padding
        self.horizontal_flip = horizontal_flip
        self.cutout = cutout
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self) -> int:
        return num_batches(int(self._labels.shape[0]), self.batch_size, self.drop_last)

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        n = int(self._labels.shape[0])
        if self.shuffle:
            return torch.randperm(n, generator=generator, device=self._device)
        return torch.arange(n, device=self._device)

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding > 0 or self.horizontal_flip:
            images = random_crop_flip(images, self.crop_padding, self.horizontal_flip, generator)
        x = normalise(images, self._mean, self._std)
        if self.cutout > 0:
            x = cutout(x, self.cutout, generator)
        return x

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch; the same ``seed`` gives the same batches bit for bit."""
        generator = torch.Generator(device=self._device)
        generator.manual_seed(seed)
        order = self._order(generator)
        stop = len(self) * self.batch_size if self.drop_last else int(order.shape[0])
        for start in range(0, stop, self.batch_size):
            chosen = order[start : start + self.batch_size]
            yield self._augment(self._images[chosen], generator), self._labels[chosen]


def _sample_seed(epoch_seed: int, position: int) -> int:
    return (epoch_seed * _SEED_STRIDE + position) & _SEED_MASK


class _TransformedSubset(Dataset[tuple[torch.Tensor, int]]):
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


class LoaderBatches:
    """Batches of a lazy (PIL image, label) dataset through a DataLoader, moved to the device."""

    def __init__(
        self,
        dataset: Dataset[tuple[object, int]],
        indices: torch.Tensor | None,
        batch_size: int,
        info: DatasetInfo,
        device: torch.device,
        train: bool,
        crop_padding: int = 0,
        horizontal_flip: bool = False,
        num_workers: int = 0,
        drop_last: bool = False,
        cutout: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_batch_size(batch_size)
        self.rank, self.world_size = rank, world_size
        size = len(dataset)  # type: ignore[arg-type]  # map-style datasets have a length
        chosen: list[int] = list(range(size)) if indices is None else indices.tolist()
        transform = loader_transform(info, train, crop_padding, horizontal_flip)
        random = train and (crop_padding > 0 or horizontal_flip or info.augmentation == "imagenet")
        self._samples = _TransformedSubset(Subset(dataset, chosen), transform, random)
        self._device = device
        self.batch_size = batch_size
        self.train = train
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.cutout = cutout if train else 0

    def __len__(self) -> int:
        samples = len(self._samples) // self.world_size  # DistributedSampler(drop_last=True)
        return num_batches(samples, self.batch_size, self.drop_last)

    def _loader(self, seed: int) -> DataLoader[tuple[torch.Tensor, int]]:
        self._samples.epoch_seed = seed
        # Seeds the shuffle order and the workers' base seed.
        generator = torch.Generator().manual_seed(seed)
        sampler: DistributedSampler[int] | None = None
        if self.world_size > 1:
            # Every rank draws the same permutation (one seed) and takes its share of it.
            sampler = DistributedSampler(
                self._samples,
                num_replicas=self.world_size,
                rank=self.rank,
                shuffle=self.train,
                seed=seed % 2**31,
                drop_last=True,
            )
        return DataLoader(
            self._samples,
            batch_size=self.batch_size,
            shuffle=self.train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self._device.type == "cuda",
            drop_last=self.drop_last,
            generator=generator,
        )

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch, shuffled (when training) by a generator seeded by ``seed``."""
        cut_generator = torch.Generator(device=self._device)
        cut_generator.manual_seed(seed)
        for images, labels in self._loader(seed):
            x = images.to(self._device, non_blocking=True)
            if self.cutout > 0:
                x = cutout(x, self.cutout, cut_generator)
            yield x, labels.to(self._device, non_blocking=True)


class RankSlices:
    """One rank's share of every global batch, for in-memory data under DDP.

    Every rank cuts and augments the same global batches (one seed), and sample i of a batch
    goes to rank i % world_size: the shuffling of a distributed sampler, with the augmentation
    a single process would apply.
    """

    def __init__(self, source: BatchSource, rank: int, world_size: int) -> None:
        self.source, self.rank, self.world_size = source, rank, world_size

    def __len__(self) -> int:
        return len(self.source)

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.source.epoch(seed):
            yield x[self.rank :: self.world_size], y[self.rank :: self.world_size]


def make_batch_source(
    data: ImageTensors | Dataset[tuple[object, int]],
    indices: torch.Tensor | None,
    batch_size: int,
    info: DatasetInfo,
    device: torch.device,
    *,
    train: bool,
    crop_padding: int = 0,
    horizontal_flip: bool = False,
    cutout: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> BatchSource:
    """The batch source that suits ``data``: on the device for tensors, a loader otherwise.

    ``train`` turns on shuffling and the augmentation options; evaluation batches come in
    order and unaugmented, whatever the augmentation arguments say. With ``world_size`` > 1,
    ``batch_size`` is this rank's share and the batches are this rank's share of each epoch.
    """
    if isinstance(data, ImageTensors):
        samples = len(data) if indices is None else int(indices.numel())
        global_batch = batch_size * world_size
        # A last global batch too small to give every rank a sample is left out.
        remainder = samples % global_batch
        source = DeviceBatches(
            data,
            indices,
            global_batch,
            info.mean,
            info.std,
            device,
            crop_padding=crop_padding if train else 0,
            horizontal_flip=horizontal_flip and train,
            cutout=cutout if train else 0,
            shuffle=train,
            drop_last=drop_last or 0 < remainder < world_size,
        )
        return source if world_size == 1 else RankSlices(source, rank, world_size)
    return LoaderBatches(
        data,
        indices,
        batch_size,
        info,
        device,
        train,
        crop_padding=crop_padding,
        horizontal_flip=horizontal_flip,
        num_workers=num_workers,
        drop_last=drop_last,
        cutout=cutout,
        rank=rank,
        world_size=world_size,
    )

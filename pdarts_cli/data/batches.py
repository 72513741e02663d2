"""Batch sources: one epoch of model-ready batches, from memory or from disk.

In-memory datasets (``ImageTensors``) are moved to the device once and cut, augmented and
normalised there a whole batch at a time (``DeviceBatches``, with ``augment``): on a GPU this
removes the data loader from the step time of a 32 x 32 search entirely. Datasets on disk go
through a torch ``DataLoader`` with torchvision transforms (``LoaderBatches``, with
``transforms``). Both draw every random number from a generator seeded per epoch, so
``epoch(seed)`` gives the same batches for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from pdarts_cli.data.augment import cutout, normalise, random_crop_flip
from pdarts_cli.data.base import BatchSource, DatasetInfo, ImageTensors
from pdarts_cli.data.transforms import TransformedSubset, loader_transform


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
        self._samples = TransformedSubset(Subset(dataset, chosen), transform, random)
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

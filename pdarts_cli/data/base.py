"""The dataset-provider contract (entry-point group ``pdarts.datasets``).

A provider is a callable ``provider(request: DatasetRequest) -> ImageDataset``. Datasets that
fit in memory hand back uint8 tensors (``ImageTensors``), which the search and training loops
move to the device once and cut and augment there, whole batches at a time. Datasets too
large for memory (image folders) hand back a torch ``Dataset`` of (PIL image, label) pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # annotations only: providers and `datasets list` load without torch
    import torch
    from torch.utils.data import Dataset


@dataclass(frozen=True)
class DatasetRequest:
    """What the user asked for: ``name[:argument]`` plus where data lives."""

    name: str
    argument: str | None  # the text after the first ':' of the spec (a path for npz/imagefolder)
    data_dir: Path  # root of downloaded datasets (cifar10, cifar100)
    download: bool = False
    image_size: int | None = None  # resize target for datasets without a native size


@dataclass(frozen=True)
class ImageTensors:
    """Images kept in memory: uint8 N x C x H x W and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    # Loader augmentation of on-disk images: "crop" (resize, then pad-and-crop like CIFAR) or
    # "imagenet" (DARTS ImageNet: random-resized crop and colour jitter; resize 256/224 +
    # centre crop for testing).
    augmentation: Literal["crop", "imagenet"] = "crop"


@dataclass(frozen=True)
class ImageDataset:
    info: DatasetInfo
    train: ImageTensors | Dataset[tuple[object, int]]
    test: ImageTensors | Dataset[tuple[object, int]]


class BatchSource(Protocol):
    """Batches of one epoch, ready for the model: float N x C x H x W on the device, labels."""

    def __len__(self) -> int: ...

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

"""A caller's own data as an ``ImageDataset``: tensors or a torch ``Dataset``, held in memory.

What the Python API's ``search`` takes where the command line takes a dataset spec. Images end
up as ``ImageTensors`` keeps them, uint8 N x C x H x W on the 0..255 scale, so they are batched
and augmented on the device exactly like the built-in in-memory datasets. Float images are
accepted on the [0, 1] scale (what torchvision's ``ToTensor`` gives) and rounded to the nearest
of the 256 levels, which is exact for images that came from 8-bit pixels. A torch ``Dataset``
is read once, item by item, into memory.

``DatasetInfo`` is inferred: the number of classes is the length of the training Dataset's
``classes`` when it has one, else the largest label of either split plus one; mean and std
come from the training images, as the ``digits`` and ``npz`` providers compute them. Without
a test split the test split is empty (a search never looks at it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any, TypeAlias

import torch
from torch.utils.data import Dataset

from pdarts_cli.data.augment import PIXEL_MAX
from pdarts_cli.data.base import DatasetInfo, ImageDataset, ImageTensors
from pdarts_cli.data.stats import split_stats
from pdarts_cli.errors import DatasetError

# One split: (images, labels) tensors, ImageTensors, or a Dataset of (image, label) items.
Split: TypeAlias = ImageTensors | tuple[torch.Tensor, torch.Tensor] | Dataset[Any]
# Everything as_image_dataset accepts: one split (training only), or a (train, test) pair or dict.
InMemoryData: TypeAlias = ImageDataset | Split | tuple[Split, Split] | Mapping[str, Split]

SPLIT_KEYS = ("train", "test")
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
ACCEPTED = (
    "an ImageDataset, (images, labels) tensors, a torch Dataset of (image, label) items, "
    "or a (train, test) pair or {'train': ..., 'test': ...} dict of these"
)


def _train_and_test(data: object) -> tuple[object, object | None]:
    """The training split and the test split (None when not given) of ``data``."""
    if isinstance(data, Mapping):
        keys = sorted(str(key) for key in data)
        if "train" not in data or not set(keys) <= set(SPLIT_KEYS):
            raise DatasetError(
                f"a dataset dict needs the key 'train' and may have 'test', got {keys}"
            )
        return data["train"], data.get("test")
    if isinstance(data, tuple | list) and len(data) == 2:
        if isinstance(data[0], torch.Tensor):
            return data, None  # (images, labels)
        return data[0], data[1]  # (train, test)
    if isinstance(data, ImageTensors | Dataset):
        return data, None
    raise DatasetError(f"cannot make a dataset of a {type(data).__name__}: give {ACCEPTED}")


def _images(images: object, part: str) -> torch.Tensor:
    """``images`` checked and brought to uint8 N x C x S x S on the CPU."""
    if not isinstance(images, torch.Tensor):
        raise DatasetError(f"{part} images are a {type(images).__name__}, not a torch tensor")
    if images.ndim != 4:
        raise DatasetError(
            f"{part} images have shape {tuple(images.shape)}, expected N x C x H x W "
            "(give grey images a channel axis: images.unsqueeze(1))"
        )
    if images.shape[0] == 0:
        raise DatasetError(f"{part} split holds no images")
    height, width = int(images.shape[2]), int(images.shape[3])
    if height != width:
        raise DatasetError(
            f"{part} images are {height} x {width} pixels; images must be square "
            "(crop or resize them to S x S)"
        )
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.contiguous()
    if not images.is_floating_point():
        raise DatasetError(
            f"{part} images are {images.dtype}; expected uint8 (0..255) or float in [0, 1]"
        )
    if not bool(((images >= 0) & (images <= 1)).all()):  # NaN fails both comparisons
        raise DatasetError(f"{part} images hold values outside [0, 1]; float images are 0..1")
    return images.mul(PIXEL_MAX).round_().to(torch.uint8).contiguous()


def _labels(labels: object, count: int, part: str) -> torch.Tensor:
    """``labels`` checked: one non-negative integer per image, as int64 on the CPU."""
    if not isinstance(labels, torch.Tensor):
        raise DatasetError(f"{part} labels are a {type(labels).__name__}, not a torch tensor")
    if labels.dtype not in INTEGER_DTYPES:
        raise DatasetError(f"{part} labels are {labels.dtype}, expected integer class labels")
    if tuple(labels.shape) != (count,):
        raise DatasetError(
            f"{part} labels have shape {tuple(labels.shape)} for {count} images; "
            f"expected one label per image, shape ({count},)"
        )
    if bool((labels < 0).any()):
        raise DatasetError(f"{part} labels hold negative values; classes are 0, 1, 2, ...")
    return labels.detach().cpu().to(torch.int64)


def _item_label(label: object, index: int, part: str) -> int:
    if isinstance(label, torch.Tensor) and label.ndim == 0 and label.dtype in INTEGER_DTYPES:
        return int(label)
    if isinstance(label, Integral) and not isinstance(label, bool):
        return int(label)
    raise DatasetError(f"{part} item {index} has a {type(label).__name__} label, not an int")


def _read_dataset(dataset: Dataset[Any], part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (image, label) item of a map-style Dataset, stacked into two tensors."""
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError as exc:
        raise DatasetError(f"{part} Dataset has no length; give a map-style Dataset") from exc
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for index in range(size):
        item = dataset[index]
        if not (isinstance(item, Sequence) and len(item) == 2):
            raise DatasetError(f"{part} item {index} is not an (image, label) pair")
        image, label = item
        if not isinstance(image, torch.Tensor):
            raise DatasetError(
                f"{part} item {index} holds a {type(image).__name__} image, not a C x H x W "
                "tensor (torchvision's ToTensor makes one)"
            )
        if image.ndim != 3:
            raise DatasetError(
                f"{part} item {index} holds an image of shape {tuple(image.shape)}, "
                "expected C x H x W"
            )
        if images and image.shape != images[0].shape:
            raise DatasetError(
                f"{part} item {index} is {tuple(image.shape)} but item 0 is "
                f"{tuple(images[0].shape)} (C, H, W); every image must have the same shape"
            )
        images.append(image)
        labels.append(_item_label(label, index, part))
    if not images:
        raise DatasetError(f"{part} split holds no images")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def _split_tensors(split: object, part: str) -> ImageTensors:
    """One split, checked, as ``ImageTensors``."""
    if isinstance(split, ImageTensors):
        pair: tuple[object, object] = (split.images, split.labels)
    elif isinstance(split, Dataset):
        pair = _read_dataset(split, part)
    elif isinstance(split, tuple | list) and len(split) == 2:
        pair = (split[0], split[1])
    else:
        raise DatasetError(
            f"the {part} split is a {type(split).__name__}; give (images, labels) tensors "
            "or a torch Dataset of (image, label) items"
        )
    images = _images(pair[0], part)
    return ImageTensors(images, _labels(pair[1], int(images.shape[0]), part))


def _num_classes(train_split: object, train: ImageTensors, test: ImageTensors) -> int:
    """The training Dataset's ``classes`` when it has them, else the largest label plus one."""
    largest = int(torch.cat([train.labels, test.labels]).max())
    classes = getattr(train_split, "classes", None)
    if classes is None:
        return largest + 1
    if largest >= len(classes):
        raise DatasetError(
            f"a label is {largest} but the training Dataset names {len(classes)} classes"
        )
    return len(classes)


def as_image_dataset(data: InMemoryData, name: str = "in-memory") -> ImageDataset:
    """``data`` as an ``ImageDataset`` (an ``ImageDataset`` is returned as it is).

    ``data`` is one split (the training images) or a (train, test) pair or dict; a split is
    ``(images, labels)`` tensors (images N x C x S x S, uint8 0..255 or float in [0, 1];
    labels integers, one per image), ``ImageTensors``, or a map-style torch ``Dataset`` whose
    items are (C x S x S image tensor, int label). Every problem is one ``DatasetError`` line.
    """
    if isinstance(data, ImageDataset):
        return data
    train_split, test_split = _train_and_test(data)
    train = _split_tensors(train_split, "train")
    channels, image_size = int(train.images.shape[1]), int(train.images.shape[2])
    if test_split is None:
        empty = torch.empty((0, channels, image_size, image_size), dtype=torch.uint8)
        test = ImageTensors(empty, torch.empty(0, dtype=torch.int64))
    else:
        test = _split_tensors(test_split, "test")
    mean, std = split_stats(train.images, test.images, ("train", "test"), "the training images")
    info = DatasetInfo(
        name=name,
        num_classes=_num_classes(train_split, train, test),
        channels=channels,
        image_size=image_size,
        mean=mean,
        std=std,
    )
    return ImageDataset(info, train, test)

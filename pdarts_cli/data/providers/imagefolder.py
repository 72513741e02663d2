"""Images on disk as class folders (``imagefolder``), and ImageNet laid out the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pdarts_cli.data.base import DatasetInfo, DatasetRequest, ImageDataset
from pdarts_cli.data.providers.common import argument_path, one_line
from pdarts_cli.errors import DatasetError

# ImageNet statistics, the usual normalisation for photographs of unknown origin.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FOLDER_CHANNELS = 3  # ImageFolder converts every image to RGB
FOLDER_SPLITS = ("train", "val")
FOLDER_DEFAULT_IMAGE_SIZE = 32  # pixels; the CIFAR size the search schedules are tuned for
IMAGENET_IMAGE_SIZE = 224  # the mobile setting


def _check_split_folders(root: Path) -> None:
    """Both folders must exist before either is scanned, which can take long on big sets."""
    for split in FOLDER_SPLITS:
        if not (root / split).is_dir():
            raise DatasetError(
                f"{root / split} is not a folder; imagefolder:PATH expects PATH/train/<class>/* "
                "and PATH/val/<class>/*"
            )


def _image_folder(folder: Path) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:  # no class folders, or a class without images
        raise DatasetError(one_line(f"{folder}: {exc}")) from exc


def _check_same_classes(root: Path, train: list[str], val: list[str]) -> None:
    if train == val:
        return
    only_train = sorted(set(train) - set(val)) or ["-"]
    only_val = sorted(set(val) - set(train)) or ["-"]
    raise DatasetError(
        f"imagefolder {root}: train/ and val/ hold different classes "
        f"(only in train: {', '.join(only_train)}; only in val: {', '.join(only_val)})"
    )


def imagefolder(request: DatasetRequest) -> ImageDataset:
    """Images on disk, imagefolder:PATH with PATH/train/<class>/* and PATH/val/<class>/*.

    Images are read lazily (torchvision ``ImageFolder``, converted to RGB) and resized to the
    requested image size (32 by default), normalised with ImageNet's mean and std. Class
    indices follow the sorted class-folder names of ``train/``; ``val/`` must hold the same.
    """
    root = argument_path(request)
    image_size = FOLDER_DEFAULT_IMAGE_SIZE if request.image_size is None else request.image_size
    if image_size < 1:
        raise DatasetError(f"image size must be a positive number of pixels, got {image_size}")
    _check_split_folders(root)
    train = _image_folder(root / "train")
    test = _image_folder(root / "val")
    _check_same_classes(root, list(train.classes), list(test.classes))
    info = DatasetInfo(
        name=f"{request.name}:{root}",
        num_classes=len(train.classes),
        channels=FOLDER_CHANNELS,
        image_size=image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    return ImageDataset(info, train, test)


def imagenet(request: DatasetRequest) -> ImageDataset:
    """ImageNet as class folders: imagenet[:PATH] (default DATA_DIR/imagenet), 224x224.

    PATH/train/<class>/* and PATH/val/<class>/*, read lazily, with the DARTS ImageNet
    augmentation (random-resized crop, flip, colour jitter; resize 256 and centre crop).
    """
    folder = request.argument or str(request.data_dir / "imagenet")
    size = request.image_size or IMAGENET_IMAGE_SIZE
    resolved = dataclasses.replace(request, argument=folder, image_size=size)
    data = imagefolder(resolved)
    info = dataclasses.replace(data.info, name=f"imagenet:{folder}", augmentation="imagenet")
    return ImageDataset(info, data.train, data.test)

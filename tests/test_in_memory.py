"""A caller's own tensors or torch Dataset as an ImageDataset (the Python API's data)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from pdarts_cli.data import (
    DeviceBatches,
    ImageTensors,
    InMemoryData,
    as_image_dataset,
    make_batch_source,
    resolve_dataset,
)
from pdarts_cli.data.stats import channel_stats
from pdarts_cli.errors import DatasetError

CPU = torch.device("cpu")


def pixels(n: int = 12, channels: int = 3, size: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=generator).to(torch.uint8)


def classes(n: int = 12, num_classes: int = 3) -> torch.Tensor:
    return torch.arange(n) % num_classes


class Pairs(Dataset[tuple[Any, Any]]):
    """A map-style Dataset over a list of items, with optional class names."""

    def __init__(self, items: list[tuple[Any, Any]], names: list[str] | None = None) -> None:
        self.items = items
        if names is not None:
            self.classes = names

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.items[index]


def test_tensors_give_the_training_split_and_an_empty_test_split() -> None:
    images, labels = pixels(), classes()
    dataset = as_image_dataset((images, labels))
    assert isinstance(dataset.train, ImageTensors)
    assert isinstance(dataset.test, ImageTensors)
    assert torch.equal(dataset.train.images, images)
    assert torch.equal(dataset.train.labels, labels)
    assert dataset.train.labels.dtype == torch.int64
    assert len(dataset.test) == 0
    assert dataset.test.images.shape == (0, 3, 6, 6)
    assert dataset.test.images.dtype == torch.uint8
    info = dataset.info
    assert (info.name, info.num_classes, info.channels, info.image_size) == ("in-memory", 3, 3, 6)
    assert (info.mean, info.std) == channel_stats(images)
    assert info.augmentation == "crop"


def test_float_images_on_the_unit_scale_are_the_same_pixels() -> None:
    images, labels = pixels(), classes()
    from_uint8 = as_image_dataset((images, labels))
    from_float = as_image_dataset((images.float() / 255, labels))
    assert isinstance(from_float.train, ImageTensors)
    assert isinstance(from_uint8.train, ImageTensors)
    assert torch.equal(from_float.train.images, from_uint8.train.images)
    assert from_float.info == from_uint8.info


def test_digits_tensors_give_the_digits_provider_info() -> None:
    digits = resolve_dataset("digits")
    train, test = digits.train, digits.test
    assert isinstance(train, ImageTensors)
    assert isinstance(test, ImageTensors)
    again = as_image_dataset(((train.images, train.labels), (test.images, test.labels)), "digits")
    assert again.info.mean == pytest.approx(digits.info.mean, abs=1e-12)
    assert again.info.std == pytest.approx(digits.info.std, abs=1e-12)
    assert again.info == digits.info


def test_train_and_test_as_a_pair_or_a_dict() -> None:
    train = (pixels(seed=1), classes())
    test = (pixels(n=4, seed=2), torch.tensor([0, 1, 2, 3]))
    forms: list[InMemoryData] = [(train, test), {"train": train, "test": test}]
    for data in forms:
        dataset = as_image_dataset(data)
        assert isinstance(dataset.test, ImageTensors)
        assert torch.equal(dataset.test.images, test[0])
        assert dataset.info.num_classes == 4  # the largest label of either split, plus one
        assert (dataset.info.mean, dataset.info.std) == channel_stats(train[0])
    only_train = as_image_dataset({"train": train})
    assert isinstance(only_train.test, ImageTensors)
    assert len(only_train.test) == 0


def test_an_image_dataset_is_returned_as_it_is() -> None:
    dataset = as_image_dataset((pixels(), classes()))
    assert as_image_dataset(dataset) is dataset


def test_a_tensor_dataset_is_read_and_batched_on_the_device() -> None:
    images, labels = pixels(n=10), classes(n=10)
    dataset = as_image_dataset(TensorDataset(images.float() / 255, labels), name="mine")
    assert isinstance(dataset.train, ImageTensors)
    assert torch.equal(dataset.train.images, images)
    assert torch.equal(dataset.train.labels, labels)
    source = make_batch_source(
        dataset.train,
        None,
        4,
        dataset.info,
        CPU,
        train=True,
        crop_padding=1,
        horizontal_flip=True,
        cutout=2,
    )
    assert isinstance(source, DeviceBatches)
    batches = list(source.epoch(3))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 6, 6)] * 2 + [(2, 3, 6, 6)]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(labels.tolist())


def test_a_pair_of_datasets_with_class_names() -> None:
    train = Pairs([(image, i % 2) for i, image in enumerate(pixels(n=6))], ["cat", "dog", "eel"])
    test = Pairs([(image, torch.tensor(1)) for image in pixels(n=2, seed=3)])
    dataset = as_image_dataset((train, test))
    assert dataset.info.num_classes == 3  # the Dataset's classes, not the largest label + 1
    assert isinstance(dataset.test, ImageTensors)
    assert dataset.test.labels.tolist() == [1, 1]


def refused(data: Any) -> str:
    with pytest.raises(DatasetError) as excinfo:
        as_image_dataset(data)
    message = str(excinfo.value)
    assert message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ((pixels().narrow(3, 0, 5), classes()), "must be square"),
        ((pixels(), classes(n=11)), r"one label per image, shape \(12,\)"),
        ((pixels()[:, 0], classes()), r"expected N x C x H x W"),
        ((pixels().float(), classes()), r"outside \[0, 1\]"),
        ((pixels().long(), classes()), "expected uint8"),
        ((pixels(), classes().float()), "integer class labels"),
        ((pixels(), classes() - 1), "negative"),
        ((pixels(n=0), classes(n=0)), "holds no images"),
        ((torch.zeros(4, 1, 2, 2, dtype=torch.uint8), classes(n=4)), "constant"),
        (((pixels(), classes()), (pixels(size=4), classes())), "but test images are"),
        ({"training": (pixels(), classes())}, "needs the key 'train'"),
        ([[0.0, 1.0]], "cannot make a dataset of a list"),
        ("digits", "cannot make a dataset of a str"),
        (Pairs([(pixels()[0], 0), (pixels(size=4)[0], 1)]), "every image must have the same"),
        (Pairs([("not an image", 0)]), "holds a str image, not a C x H x W tensor"),
        (Pairs([(pixels()[:1], 0)]), r"shape \(1, 3, 6, 6\), expected C x H x W"),
        (Pairs([(pixels()[0], 0.5)]), "not an int"),
        (Pairs([(pixels()[0], 5)], ["a", "b"]), "names 2 classes"),
    ],
)
def test_bad_data_is_one_clear_line(data: Any, problem: str) -> None:
    assert re.search(problem, refused(data))

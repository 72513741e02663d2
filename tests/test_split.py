"""The weight/alpha split of a search (schedule field ``data.split``).

CIFAR keeps the authors' contiguous split bit for bit; anything else is stratified by default,
so data stored class by class (image folders, most .npz files) gives both halves every class.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_schedule_dict
from fakedata import write_fake_cifar10, write_fake_imagefolder

from pdarts_cli.data import (
    DatasetInfo,
    ImageDataset,
    ImageTensors,
    resolve_dataset,
    resolve_split,
    split_dataset,
    split_indices,
    stratified_split_indices,
)
from pdarts_cli.schedule import Schedule, validate_schedule
from pdarts_cli.searching import resolve_for_dataset
from pdarts_cli.searching.data import weight_alpha_split

CLASSES = ["ant", "bee", "cat", "dog"]  # an image folder lists its classes sorted


def _schedule(**data: object) -> Schedule:
    return validate_schedule(tiny_schedule_dict(data={"crop_padding": 1, **data}), "test")


def _class_counts(labels: torch.Tensor, indices: torch.Tensor) -> Counter[int]:
    return Counter(labels[indices].tolist())


def _assert_stratified(labels: torch.Tensor, first: torch.Tensor, rest: torch.Tensor) -> None:
    """Disjoint, covering, and every class split in half on both sides."""
    assert sorted(first.tolist() + rest.tolist()) == list(range(len(labels)))
    per_class = Counter(labels.tolist())
    first_counts, rest_counts = _class_counts(labels, first), _class_counts(labels, rest)
    for label, count in per_class.items():
        assert first_counts[label] == count // 2 or first_counts[label] == -(-count // 2)
        assert first_counts[label] + rest_counts[label] == count
        assert rest_counts[label] >= 1


def test_auto_is_contiguous_for_cifar_and_stratified_elsewhere() -> None:
    assert resolve_split("auto", "cifar10") == "contiguous"
    assert resolve_split("auto", "cifar100") == "contiguous"
    assert resolve_split("auto", "digits") == "stratified"
    assert resolve_split("auto", "npz:/data/x.npz") == "stratified"
    assert resolve_split("auto", "imagefolder:/data/pets") == "stratified"
    assert resolve_split("auto", "my_plugin_dataset") == "stratified"
    assert resolve_split("contiguous", "digits") == "contiguous"
    assert resolve_split("stratified", "cifar10") == "stratified"


def test_stratified_split_of_class_sorted_labels() -> None:
    labels = torch.arange(4).repeat_interleave(10)  # 0 x10, 1 x10, 2 x10, 3 x10
    first, rest = stratified_split_indices(labels, 0.5, seed=7)
    _assert_stratified(labels, first, rest)
    assert _class_counts(labels, first) == {0: 5, 1: 5, 2: 5, 3: 5}


def test_stratified_split_keeps_the_portion_per_class() -> None:
    labels = torch.tensor([0] * 20 + [1] * 10)
    first, rest = stratified_split_indices(labels, 0.3, seed=1)
    assert _class_counts(labels, first) == {0: 6, 1: 3}
    assert _class_counts(labels, rest) == {0: 14, 1: 7}


def test_stratified_split_is_seeded() -> None:
    labels = torch.arange(3).repeat_interleave(20)
    a = stratified_split_indices(labels, 0.5, seed=3)
    b = stratified_split_indices(labels, 0.5, seed=3)
    c = stratified_split_indices(labels, 0.5, seed=4)
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_contiguous_split_is_the_authors() -> None:
    data = ImageTensors(torch.zeros(7, 1, 2, 2, dtype=torch.uint8), torch.arange(7))
    first, rest = split_dataset(data, 0.5, "contiguous", seed=0)
    assert first.tolist() == [0, 1, 2]
    assert rest.tolist() == [3, 4, 5, 6]


def test_split_indices_refuses_a_bad_portion() -> None:
    with pytest.raises(ValueError, match="train_portion"):
        split_indices(10, 1.5)
    with pytest.raises(ValueError, match="portion"):
        stratified_split_indices(torch.zeros(4, dtype=torch.int64), 1.0, seed=0)


def test_class_sorted_imagefolder_gives_both_halves_every_class(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path, CLASSES, per_class=6, size=8)
    spec = f"imagefolder:{tmp_path}"
    data = resolve_dataset(spec, image_size=8)
    schedule = resolve_for_dataset(_schedule(), spec)
    assert schedule.data.split == "stratified"
    weights, alphas = weight_alpha_split(schedule, data, spec)
    labels = torch.tensor([label for _, label in data.train])  # type: ignore[attr-defined]
    assert labels.tolist() == sorted(labels.tolist())  # stored class by class
    _assert_stratified(labels, weights, alphas)
    assert _class_counts(labels, weights) == {0: 3, 1: 3, 2: 3, 3: 3}


def test_contiguous_split_of_a_class_sorted_folder_is_what_auto_avoids(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path, CLASSES, per_class=6, size=8)
    spec = f"imagefolder:{tmp_path}"
    data = resolve_dataset(spec, image_size=8)
    weights, alphas = weight_alpha_split(_schedule(split="contiguous"), data, spec)
    labels = torch.tensor(data.train.targets)  # type: ignore[union-attr]
    assert set(_class_counts(labels, weights)) == {0, 1}
    assert set(_class_counts(labels, alphas)) == {2, 3}


def test_class_sorted_npz_gives_both_halves_every_class(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 8)  # sorted by class
    images = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "sorted.npz"
    np.savez(path, x_train=images, y_train=labels, x_test=images[:10], y_test=labels[:10])
    spec = f"npz:{path}"
    data = resolve_dataset(spec)
    schedule = resolve_for_dataset(_schedule(), spec)
    weights, alphas = weight_alpha_split(schedule, data, spec)
    train_labels = data.train.labels  # type: ignore[union-attr]
    _assert_stratified(train_labels, weights, alphas)
    assert _class_counts(train_labels, weights) == dict.fromkeys(range(5), 4)


def test_cifar_keeps_the_contiguous_split_bit_for_bit(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, n_train_per_batch=12, n_test=20)
    data = resolve_dataset("cifar10", tmp_path)
    schedule = resolve_for_dataset(_schedule(), "cifar10")
    assert schedule.data.split == "contiguous"
    weights, alphas = weight_alpha_split(schedule, data, "cifar10")
    assert torch.equal(weights, torch.arange(30))
    assert torch.equal(alphas, torch.arange(30, 60))


def test_the_split_depends_on_the_seed_alone() -> None:
    """A resumed run rebuilds its halves from schedule.json: the same split every time."""
    labels = torch.arange(10).repeat(30)
    data = ImageTensors(torch.zeros(300, 1, 2, 2, dtype=torch.uint8), labels)
    info = DatasetInfo("x", 10, 1, 2, (0.5,), (0.25,))
    dataset = ImageDataset(info, data, data)
    schedule = resolve_for_dataset(_schedule(), "digits")
    first = weight_alpha_split(schedule, dataset, "digits")
    again = weight_alpha_split(schedule, dataset, "digits")
    other_seed = weight_alpha_split(schedule.with_overrides(seed=3), dataset, "digits")
    assert torch.equal(first[0], again[0])
    assert torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other_seed[0])

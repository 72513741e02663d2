"""Splitting a training set in two: the weight half and the alpha half of a search, or the
training and held-out validation parts of a training run.

``contiguous`` is the authors' split for CIFAR: the first ``floor(portion * n)`` indices, then
the rest. It is only meaningful when the data's order is already mixed, as CIFAR's official
order is. ``stratified`` shuffles each class with a seeded generator and cuts it in the same
proportion, so both parts hold every class whatever order the data is stored in (image
folders and most ``.npz`` files are sorted by class).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from pdarts_cli.data.base import ImageTensors

SplitMethod = Literal["contiguous", "stratified"]
SplitChoice = Literal["auto", "contiguous", "stratified"]

# Datasets whose official training order is already shuffled across classes: the authors'
# contiguous split is the paper's protocol there and is kept bit for bit.
MIXED_ORDER_DATASETS = frozenset({"cifar10", "cifar100"})


def resolve_split(choice: SplitChoice, dataset: str) -> SplitMethod:
    """``auto``: contiguous for CIFAR (the paper's split), stratified for everything else."""
    if choice != "auto":
        return choice
    name = dataset.split(":", 1)[0]
    return "contiguous" if name in MIXED_ORDER_DATASETS else "stratified"


def split_indices(n: int, train_portion: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into its first ``floor(train_portion * n)`` indices and the rest.

    The authors' ``train_search.py`` split: not shuffled, so it is the same for every run.
    """
    if not 0.0 <= train_portion <= 1.0:
        raise ValueError(f"train_portion must be in [0, 1], got {train_portion}")
    split = int(train_portion * n)  # floor for non-negative values
    return torch.arange(split, dtype=torch.int64), torch.arange(split, n, dtype=torch.int64)


def _first_part_size(count: int, portion: float) -> int:
    """How many of a class's ``count`` samples go to the first part: ``floor(portion * count)``
    as the contiguous split takes of the whole set, but at least one on each side whenever the
    class has two samples or more."""
    if count < 2:
        return count
    return min(max(math.floor(portion * count), 1), count - 1)


def stratified_split_indices(
    labels: torch.Tensor, portion: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, a seeded shuffle cut at ``portion``: (first part, rest), each sorted.

    Every class with at least two samples is in both parts, in the ``portion`` proportion
    (floored per class). The same labels and seed give the same split on every machine
    (numpy's PCG64, independent of torch's generators).
    """
    if not 0.0 < portion < 1.0:
        raise ValueError(f"portion must be in (0, 1), got {portion}")
    values = labels.detach().cpu().numpy().astype(np.int64, copy=False)
    rng = np.random.Generator(np.random.PCG64(seed))
    first: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for label in np.unique(values):
        members = np.flatnonzero(values == label)
        shuffled = members[rng.permutation(members.size)]
        cut = _first_part_size(members.size, portion)
        first.append(shuffled[:cut])
        rest.append(shuffled[cut:])

    def joined(parts: list[np.ndarray]) -> torch.Tensor:
        merged = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        return torch.from_numpy(merged.astype(np.int64))

    return joined(first), joined(rest)


def dataset_labels(data: ImageTensors | Dataset[tuple[object, int]]) -> torch.Tensor:
    """Every training label in order, without decoding images where the dataset allows.

    In-memory data and torchvision-style datasets (``targets``) answer at once; any other
    dataset is read sample by sample, once.
    """
    if isinstance(data, ImageTensors):
        return data.labels.to(torch.int64)
    targets = getattr(data, "targets", None)
    if targets is not None:
        return torch.as_tensor(list(targets), dtype=torch.int64)
    size = len(data)  # type: ignore[arg-type]  # map-style datasets are sized
    return torch.tensor([int(data[i][1]) for i in range(size)], dtype=torch.int64)


def split_dataset(
    data: ImageTensors | Dataset[tuple[object, int]],
    portion: float,
    method: SplitMethod,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(first part, rest) of ``data``'s indices by ``method``."""
    if method == "contiguous":
        return split_indices(len(data), portion)  # type: ignore[arg-type]
    return stratified_split_indices(dataset_labels(data), portion, seed)

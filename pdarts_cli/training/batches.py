"""The images a training run sees: the validation split held out of the training set, and
the batches of each split (this rank's share of the training images; all of the scored
ones)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from pdarts_cli.context import RunContext
from pdarts_cli.data import (
    BatchSource,
    ImageDataset,
    ImageTensors,
    make_batch_source,
    split_dataset,
)
from pdarts_cli.errors import ConfigError
from pdarts_cli.seeding import Stream, derive_seed
from pdarts_cli.training.metrics import SplitSizes
from pdarts_cli.training.recipe import Recipe


@dataclass(frozen=True)
class TrainSplit:
    """Training-set indices that train and those held out for validation; None for both
    trains on the whole training set and validates on nothing."""

    train: torch.Tensor | None
    valid: torch.Tensor | None


def _size(data: ImageTensors | Dataset[tuple[object, int]]) -> int:
    return len(data)  # type: ignore[arg-type]  # map-style datasets are sized


def training_split(recipe: Recipe, data: ImageDataset) -> TrainSplit:
    """``valid_portion`` of every class of the training set held out for validation.

    The stratified shuffle is seeded from the recipe's seed alone, under a label of its own so
    that no other random stream changes: every rank of a DDP run, and a resumed run, hold out
    the same images.
    """
    if recipe.valid_portion == 0:
        return TrainSplit(None, None)
    seed = derive_seed(recipe.seed, Stream.TRAIN_VALID_SPLIT)
    valid, train = split_dataset(data.train, recipe.valid_portion, "stratified", seed)
    if valid.numel() == 0 or train.numel() == 0:
        raise ConfigError(
            f"valid_portion {recipe.valid_portion} leaves {valid.numel()} validation and "
            f"{train.numel()} training images of {_size(data.train)}; choose another portion"
        )
    return TrainSplit(train, valid)


def split_sizes(split: TrainSplit, data: ImageDataset) -> SplitSizes:
    train = _size(data.train) if split.train is None else int(split.train.numel())
    valid = 0 if split.valid is None else int(split.valid.numel())
    return SplitSizes(train=train, valid=valid, test=_size(data.test))


def train_batches(
    recipe: Recipe, env: RunContext, indices: torch.Tensor | None = None
) -> BatchSource:
    """This rank's share of the training images (``indices`` of the training set; all of it
    when None)."""
    if recipe.batch_size % env.dist.world_size:
        raise ConfigError(
            f"batch size {recipe.batch_size} does not divide across {env.dist.world_size} ranks"
        )
    return make_batch_source(
        env.data.train,
        indices,
        recipe.batch_size // env.dist.world_size,
        env.data.info,
        env.device,
        train=True,
        crop_padding=recipe.crop_padding,
        horizontal_flip=recipe.horizontal_flip,
        cutout=recipe.cutout,
        num_workers=recipe.num_workers,
        rank=env.dist.rank,
        world_size=env.dist.world_size,
    )


def _scored_batches(
    recipe: Recipe,
    env: RunContext,
    split: ImageTensors | Dataset[tuple[object, int]],
    indices: torch.Tensor | None,
) -> BatchSource:
    """Batches to score, in order and unaugmented; every rank scores all of them, so the
    ranks agree."""
    return make_batch_source(
        split,
        indices,
        recipe.batch_size,
        env.data.info,
        env.device,
        train=False,
        num_workers=recipe.num_workers,
    )


def valid_batches(recipe: Recipe, env: RunContext, indices: torch.Tensor) -> BatchSource:
    """The held-out ``indices`` of the training set (the best epoch is chosen on them)."""
    return _scored_batches(recipe, env, env.data.train, indices)


def test_batches(recipe: Recipe, env: RunContext) -> BatchSource:
    """The whole test split."""
    return _scored_batches(recipe, env, env.data.test, None)

"""The search's data: the weight half and the alpha half of the training set, and a stage's
batch sources over them (ALGORITHM.md, "Data")."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pdarts_cli.context import RunContext
from pdarts_cli.data import (
    BatchSource,
    ImageDataset,
    make_batch_source,
    resolve_split,
    split_dataset,
)
from pdarts_cli.schedule import Schedule, StageSchedule
from pdarts_cli.searching.batching import Halves
from pdarts_cli.seeding import Stream, derive_seed


@dataclass(frozen=True)
class StageBatches:
    weights: BatchSource  # the weight half, augmented
    alphas: BatchSource  # the alpha half, augmented
    valid: BatchSource  # the alpha half, unaugmented, for the evaluation epochs


def weight_alpha_split(
    schedule: Schedule, data: ImageDataset, dataset: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training indices that tune the weights and those that tune the alphas.

    ``schedule.data.split`` decides how (``auto`` resolved against ``dataset``); the stratified
    shuffle is seeded from the schedule's seed alone, so a resumed run gets the same halves.
    """
    method = resolve_split(schedule.data.split, dataset)
    seed = derive_seed(schedule.seed, Stream.SEARCH_SPLIT)
    return split_dataset(data.train, schedule.data.train_portion, method, seed)


def data_halves(schedule: Schedule, ctx: RunContext) -> Halves:
    """The sizes of the weight half and the alpha half of ``ctx``'s training set."""
    weights, alphas = weight_alpha_split(schedule, ctx.data, ctx.dataset)
    return Halves(int(weights.numel()), int(alphas.numel()))


def stage_batches(schedule: Schedule, config: StageSchedule, ctx: RunContext) -> StageBatches:
    """The weight half and the alpha half (augmented), and the alpha half for validation,
    in batches of the stage's size; in a distributed search, this rank's share of each
    global batch of that size."""
    weight_idx, alpha_idx = weight_alpha_split(schedule, ctx.data, ctx.dataset)
    ranks = ctx.dist.world_size

    def source(indices: torch.Tensor, augmented: bool) -> BatchSource:
        return make_batch_source(
            ctx.data.train,
            indices,
            config.batch_size // ranks,
            ctx.data.info,
            ctx.device,
            train=augmented,
            crop_padding=schedule.data.crop_padding,
            horizontal_flip=schedule.data.horizontal_flip,
            num_workers=schedule.data.num_workers,
            rank=ctx.dist.rank,
            world_size=ranks,
        )

    return StageBatches(source(weight_idx, True), source(alpha_idx, True), source(alpha_idx, False))

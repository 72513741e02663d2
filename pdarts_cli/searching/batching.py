"""Batch sizes that keep a search meaningful.

A batch too large for the data leaves each stage a handful of weight steps per epoch: the
weights barely train, the alphas learn nothing, and the search ends at chance accuracy
without a word. Such batches are refused (``force`` insists), naming what would fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pdarts_cli.errors import ConfigError
from pdarts_cli.schedule import Schedule


@dataclass(frozen=True)
class Halves:
    """How many training images tune the weights and how many the alphas."""

    weight_images: int
    alpha_images: int


def weight_steps(images: int, batch_size: int) -> int:
    """Weight steps per epoch: every image once, the last batch possibly short."""
    return math.ceil(images / batch_size)


def largest_meaningful_batch(halves: Halves, min_steps: int) -> int:
    """The largest batch that still gives ``min_steps`` weight steps per epoch (at least 1)."""
    return max(1, min(halves.weight_images // min_steps, halves.alpha_images))


def batch_problem(stage: int, batch_size: int, halves: Halves, min_steps: int) -> str | None:
    """Why ``batch_size`` would wreck 1-based ``stage``, in one line; None when it is fine."""
    smaller = largest_meaningful_batch(halves, min_steps)
    advice = f"use --batch-size {smaller} or less, or --force-batch to insist"
    if halves.weight_images < min_steps:
        return (
            f"stage {stage}: the weight half holds {halves.weight_images} images, fewer than "
            f"min_weight_steps ({min_steps}) steps at any batch; lower min_weight_steps in the "
            "schedule or use more data"
        )
    half = min(halves.weight_images, halves.alpha_images)
    if batch_size > half:
        return (
            f"stage {stage}: batch {batch_size:,} is larger than the {half:,} images of each "
            f"half of the training set; {advice}"
        )
    steps = weight_steps(halves.weight_images, batch_size)
    if steps < min_steps:
        return (
            f"stage {stage}: batch {batch_size:,} gives {steps} weight steps per epoch on "
            f"{halves.weight_images:,} images, fewer than {min_steps}; {advice}"
        )
    return None


def check_batches(schedule: Schedule, halves: Halves, force: bool) -> None:
    """Refuse a schedule whose batch sizes leave any stage too few weight steps."""
    if force:
        return
    for number, stage in enumerate(schedule.stages, start=1):
        problem = batch_problem(number, stage.batch_size, halves, schedule.min_weight_steps)
        if problem is not None:
            raise ConfigError(problem)

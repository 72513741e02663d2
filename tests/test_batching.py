"""Batch sizes that keep a search meaningful (pdarts_cli.searching.batching)."""

from __future__ import annotations

import pytest
from conftest import tiny_schedule_dict

from pdarts_cli.errors import ConfigError
from pdarts_cli.schedule import validate_schedule
from pdarts_cli.searching.batching import (
    Halves,
    batch_problem,
    check_batches,
    largest_meaningful_batch,
    weight_steps,
)

HALVES = Halves(weight_images=716, alpha_images=722)


@pytest.mark.parametrize(("images", "batch", "steps"), [(716, 32, 23), (716, 35, 21), (40, 40, 1)])
def test_weight_steps_count_the_short_last_batch(images: int, batch: int, steps: int) -> None:
    assert weight_steps(images, batch) == steps


def test_the_largest_meaningful_batch_gives_enough_steps() -> None:
    batch = largest_meaningful_batch(HALVES, 20)
    assert batch == 35
    assert weight_steps(HALVES.weight_images, batch) >= 20
    assert weight_steps(HALVES.weight_images, batch + 2) < 20 or batch + 2 > 716 // 20


@pytest.mark.parametrize("batch", [1, 16, 35])
def test_batches_with_enough_steps_pass(batch: int) -> None:
    assert batch_problem(1, batch, HALVES, 20) is None


def test_a_batch_with_too_few_steps_names_the_count_and_the_remedy() -> None:
    problem = batch_problem(2, 48, HALVES, 20)
    assert problem == (
        "stage 2: batch 48 gives 15 weight steps per epoch on 716 images, fewer than 20; "
        "use --batch-size 35 or less, or --force-batch to insist"
    )


def test_a_batch_larger_than_a_half_is_refused() -> None:
    problem = batch_problem(1, 800, HALVES, 1)
    assert problem is not None
    assert "batch 800 is larger than the 716 images of each half" in problem


def test_data_too_small_for_the_minimum_says_so() -> None:
    problem = batch_problem(1, 1, Halves(10, 10), 20)
    assert problem is not None
    assert "fewer than min_weight_steps (20) steps at any batch" in problem


def test_check_batches_refuses_the_first_bad_stage_unless_forced() -> None:
    schedule = validate_schedule(tiny_schedule_dict(min_weight_steps=20), "t")  # batch 128
    with pytest.raises(ConfigError, match="stage 1: batch 128 gives 6 weight steps"):
        check_batches(schedule, HALVES, force=False)
    check_batches(schedule, HALVES, force=True)

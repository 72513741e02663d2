"""What a training run measures and reports: one epoch's metrics (a line of metrics.jsonl),
progress within an epoch, and the observer hooks through which the run reports them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pdarts_cli.context import Observer


@dataclass(frozen=True)
class SplitSizes:
    """Images in each split of a run: the training images that train, those of the training
    set held out for validation (0 without a validation split), and the test split."""

    train: int
    valid: int
    test: int


@dataclass(frozen=True)
class TrainMetrics:
    """One line of a training run's metrics.jsonl. ``train_*`` come from the images that
    train, ``valid_*`` from the part of the training set that ``valid_portion`` holds out
    (None without one), ``test_*`` from the dataset's test split; ``splits`` counts each."""

    epoch: int  # 1-based
    lr: float
    drop_path_prob: float
    train_loss: float
    train_top1: float
    valid_loss: float | None
    valid_top1: float | None
    test_loss: float
    test_top1: float
    test_top5: float
    seconds: float
    splits: SplitSizes | None  # None only in records from before the splits were recorded

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> TrainMetrics:
        """A record of ``to_dict``; those written before the validation split existed (no
        ``valid_*``, no ``splits``) load with None there."""
        splits = record.get("splits")
        return cls(
            **{
                **record,
                "valid_loss": record.get("valid_loss"),
                "valid_top1": record.get("valid_top1"),
                "splits": SplitSizes(**splits) if splits is not None else None,
            }
        )


@dataclass(frozen=True)
class Scores:
    """One epoch's evaluation of the scored network; ``valid_*`` None without a validation
    split."""

    valid_loss: float | None
    valid_top1: float | None
    test_loss: float
    test_top1: float
    test_top5: float


@dataclass(frozen=True)
class TrainProgress:
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    top1: float


class TrainObserver(Observer):
    """No-op hooks; the CLI renders them."""

    def batch_finished(self, progress: TrainProgress) -> None:
        pass

    def epoch_finished(self, metrics: TrainMetrics) -> None:
        pass


def best_on_valid(history: list[TrainMetrics]) -> TrainMetrics | None:
    """The epoch best.safetensors holds: the earliest highest valid top-1 (None without a
    validation split), as ``record_best`` chose it epoch by epoch."""
    scored = [(m.valid_top1, m) for m in history if m.valid_top1 is not None]
    return max(scored, key=lambda pair: pair[0], default=(None, None))[1]

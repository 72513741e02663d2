"""The built-in schedules: the paper's CIFAR-10 and CIFAR-100 searches and a CPU demo."""

from __future__ import annotations

from collections.abc import Callable

from pdarts_cli.schedule.models import ArchOptimizer, DataSchedule, Schedule, StageSchedule


def _paper_stages(skip_dropout_rates: tuple[float, float, float]) -> tuple[StageSchedule, ...]:
    cells = (5, 11, 17)  # 5 cells plus 6 and 12 added cells (paper, section 4.1)
    ops_per_edge = (8, 5, 3)
    return tuple(
        StageSchedule(cells=c, ops_per_edge=o, skip_dropout_rate=r)
        for c, o, r in zip(cells, ops_per_edge, skip_dropout_rates)
    )


def _paper_cifar10() -> Schedule:
    return Schedule(name="paper-cifar10", stages=_paper_stages((0.0, 0.4, 0.7)))


def _paper_cifar100() -> Schedule:
    return Schedule(name="paper-cifar100", stages=_paper_stages((0.1, 0.2, 0.3)))


def _quick() -> Schedule:
    """A CPU demo on the embedded 8x8 digits: the paper's three stages, scaled down to minutes.

    A demo has a few dozen alpha steps where the paper has thousands, so the alpha learning
    rate is 5x the paper's to let them move.
    """
    stage = {"epochs": 6, "warmup_epochs": 2, "batch_size": 32, "channels": 8}
    return Schedule(
        name="quick",
        stages=(
            StageSchedule(cells=3, ops_per_edge=8, skip_dropout_rate=0.0, **stage),
            StageSchedule(cells=4, ops_per_edge=5, skip_dropout_rate=0.4, **stage),
            StageSchedule(cells=5, ops_per_edge=3, skip_dropout_rate=0.7, **stage),
        ),
        alphas=ArchOptimizer(lr=3e-3),
        data=DataSchedule(crop_padding=1, horizontal_flip=False),
        valid_last_epochs=1,
    )


PRESETS: dict[str, Callable[[], Schedule]] = {
    "paper-cifar10": _paper_cifar10,
    "paper-cifar100": _paper_cifar100,
    "quick": _quick,
}


def preset_for_dataset(dataset: str) -> str:
    """The paper's schedule for a dataset: CIFAR-100 has its own dropout rates."""
    return "paper-cifar100" if dataset.split(":", 1)[0] == "cifar100" else "paper-cifar10"

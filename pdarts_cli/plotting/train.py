"""The picture of a train run: loss, top-1/top-5 and the learning rate, with the test top-1
after the last epoch (what final.safetensors scores) in the title and, when the run holds out
a validation split, the valid curves and the epoch best.safetensors holds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pdarts_cli.plotting.axes import draw_curves, new_figure
from pdarts_cli.plotting.metrics import Line, Metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BEST_FILE = "best.safetensors"  # pdarts_cli.training's name (a test keeps them equal)


def best_valid_epoch(epochs: Sequence[int], valid_top1: Sequence[float]) -> int | None:
    """The epoch best.safetensors holds: the earliest highest valid top-1; None when no line
    has one (no validation split)."""
    scored = [(top1, epoch) for epoch, top1 in zip(epochs, valid_top1) if not math.isnan(top1)]
    return max(scored, key=lambda pair: pair[0], default=(None, None))[1]


def accuracy_title(epochs: Sequence[int], test_top1: Sequence[float]) -> str:
    """The test top-1 after the last epoch: the number final.safetensors reports."""
    if not epochs or math.isnan(test_top1[-1]):
        return "accuracy"
    return f"accuracy (test top-1 after epoch {epochs[-1]}: {100 * test_top1[-1]:.2f}%)"


def _mark_best_valid(ax: Axes, epoch: int) -> None:
    ax.axvline(
        epoch, color="0.4", linestyle=":", linewidth=1.2, label=f"{BEST_FILE} (epoch {epoch})"
    )
    ax.legend(fontsize="small")


def train_figure(lines: Sequence[Line], source: Path, title: str) -> Figure:
    """Loss, top-1/top-5 accuracy and learning rate over the epochs. The valid curves (the
    part of the training set held out by ``valid_portion``) are drawn when the run has them;
    runs from before they were recorded have no such keys."""
    read = Metrics(source, lines)
    x = read.counts("epoch")
    valid_top1 = read.column("valid_top1", optional=True)
    test_top1 = read.column("test_top1", nullable=True)
    figure = new_figure(16, 4.5)
    figure.suptitle(title, fontsize="x-large")
    loss_ax, accuracy_ax, lr_ax = figure.subplots(1, 3)
    draw_curves(
        loss_ax,
        x,
        {
            "train": read.column("train_loss"),
            "valid": read.column("valid_loss", optional=True),
            "test": read.column("test_loss", nullable=True),
        },
        "loss",
    )
    draw_curves(
        accuracy_ax,
        x,
        {
            "train top-1": read.column("train_top1"),
            "valid top-1": valid_top1,
            "test top-1": test_top1,
            "test top-5": read.column("test_top5", nullable=True),
        },
        accuracy_title(x, test_top1),
    )
    best = best_valid_epoch(x, valid_top1)
    if best is not None:
        _mark_best_valid(accuracy_ax, best)
    draw_curves(lr_ax, x, {"learning rate": read.column("lr")}, "learning rate")
    return figure

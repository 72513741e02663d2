"""Rendering a training run: a rich progress bar on a terminal, one line per epoch, a summary."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    Progress,
    TaskID,
)
from rich.table import Table

from pdarts_cli.cli.progress import progress_bar
from pdarts_cli.train.trainer import TrainMetrics, TrainObserver, TrainProgress, TrainState


class TrainConsoleObserver(TrainObserver):
    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self.live = live
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.first_epoch = 1

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def batch_finished(self, progress: TrainProgress) -> None:
        if not self.live:
            return
        if self.progress is None:
            self.first_epoch = progress.epoch
            self.progress = progress_bar(self.console)
            self.progress.start()
            total = (progress.epochs - progress.epoch + 1) * progress.steps
            self.task = self.progress.add_task("train", total=total, stats="")
        assert self.task is not None
        done = (progress.epoch - self.first_epoch) * progress.steps + progress.step
        stats = (
            f"epoch {progress.epoch}/{progress.epochs} loss {progress.loss:.3f} "
            f"top-1 {100 * progress.top1:.1f}%"
        )
        self.progress.update(self.task, completed=done, stats=stats)

    def epoch_finished(self, m: TrainMetrics) -> None:
        self.console.print(
            f"epoch {m.epoch}  lr {m.lr:.5f}  drop-path {m.drop_path_prob:.3f}  "
            f"loss {m.train_loss:.4f}  top-1 {100 * m.train_top1:.1f}%  "
            f"test loss {m.test_loss:.4f}  test top-1 {100 * m.test_top1:.2f}%  "
            f"top-5 {100 * m.test_top5:.2f}%  {m.seconds:.1f}s",
            soft_wrap=True,
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def summary_table(state: TrainState, parameters: int) -> Table:
    table = Table(title="training summary")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    last = state.history[-1]
    best = max(state.history, key=lambda m: m.test_top1)
    table.add_row("parameters (auxiliary head excluded)", f"{parameters:,}")
    table.add_row("epochs", f"{last.epoch}")
    table.add_row("best test top-1", f"{100 * best.test_top1:.2f}% (epoch {best.epoch})")
    table.add_row(
        "last test top-1 / top-5", f"{100 * last.test_top1:.2f}% / {100 * last.test_top5:.2f}%"
    )
    table.add_row("time (this process's epochs)", f"{sum(m.seconds for m in state.history):.0f}s")
    return table

"""Rendering a training run: a rich progress bar on a terminal, one line per epoch, a summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from pdarts_cli.cli.renderer import ProgressRenderer
from pdarts_cli.training import (
    BEST_FILE,
    FINAL_FILE,
    TrainMetrics,
    TrainObserver,
    TrainProgress,
    TrainState,
    best_on_valid,
)


class TrainConsoleObserver(TrainObserver):
    """One line per epoch; on a terminal (``live``) a progress bar over the epochs left."""

    def __init__(self, console: Console, live: bool) -> None:
        self.renderer = ProgressRenderer(console, live)

    def note(self, text: str) -> None:
        self.renderer.note(text)

    def batch_finished(self, progress: TrainProgress) -> None:
        if not self.renderer.running:  # the first batch this process trains
            self.renderer.start("train", progress.epoch, progress.epochs, progress.steps)
        stats = (
            f"epoch {progress.epoch}/{progress.epochs} loss {progress.loss:.3f} "
            f"top-1 {100 * progress.top1:.1f}%"
        )
        self.renderer.update(progress.epoch, progress.step, stats)

    def epoch_finished(self, m: TrainMetrics) -> None:
        valid = ""
        if m.valid_loss is not None and m.valid_top1 is not None:
            valid = f"valid loss {m.valid_loss:.4f}  valid top-1 {100 * m.valid_top1:.2f}%  "
        self.renderer.print(
            f"epoch {m.epoch}  lr {m.lr:.5f}  drop-path {m.drop_path_prob:.3f}  "
            f"loss {m.train_loss:.4f}  top-1 {100 * m.train_top1:.1f}%  {valid}"
            f"test loss {m.test_loss:.4f}  test top-1 {100 * m.test_top1:.2f}%  "
            f"top-5 {100 * m.test_top5:.2f}%  {m.seconds:.1f}s",
            soft_wrap=True,
        )

    def close(self) -> None:
        self.renderer.stop()


def summary_table(state: TrainState, parameters: int, run_dir: Path) -> Table:
    """The network after the last epoch, the one to report; nothing here is chosen on the
    test split."""
    table = Table(title="training summary")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    last = state.history[-1]
    table.add_row("parameters (auxiliary head excluded)", f"{parameters:,}")
    table.add_row("epochs", f"{last.epoch}")
    table.add_row(
        "final test top-1 / top-5", f"{100 * last.test_top1:.2f}% / {100 * last.test_top5:.2f}%"
    )
    best = best_on_valid(state.history)
    if best is not None and best.valid_top1 is not None:
        table.add_row(
            f"best valid top-1 ({BEST_FILE})",
            f"{100 * best.valid_top1:.2f}% (epoch {best.epoch})",
        )
    table.add_row("time (this process's epochs)", f"{sum(m.seconds for m in state.history):.0f}s")
    table.add_row("network to report", f"{run_dir / FINAL_FILE}")
    return table

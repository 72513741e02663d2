"""Rendering a training run: one line per epoch (rank 0 only)."""

from __future__ import annotations

from rich.console import Console

from pdarts_cli.train.trainer import TrainMetrics, TrainObserver


class TrainConsoleObserver(TrainObserver):
    def __init__(self, console: Console) -> None:
        self.console = console

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def epoch_finished(self, m: TrainMetrics) -> None:
        self.console.print(
            f"epoch {m.epoch}  lr {m.lr:.5f}  drop-path {m.drop_path_prob:.3f}  "
            f"loss {m.train_loss:.4f}  top-1 {100 * m.train_top1:.1f}%  "
            f"test loss {m.test_loss:.4f}  test top-1 {100 * m.test_top1:.2f}%  "
            f"top-5 {100 * m.test_top5:.2f}%  {m.seconds:.1f}s",
            soft_wrap=True,
        )

"""Rendering a running search: a rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from pdarts_cli.search.events import (
        BatchProgress,
        EdgeReport,
        EpochMetrics,
        SearchResult,
        StageReport,
        StageStart,
    )

from pdarts_cli.search.events import SearchObserver


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def epoch_line(m: EpochMetrics) -> str:
    parts = [
        f"stage {m.stage} epoch {m.epoch}",
        f"lr {m.lr:.5f}",
        f"skip-dropout {m.skip_dropout_p:.3f}",
        f"loss {m.train_loss:.4f}",
        f"acc {_percent(m.train_accuracy)}",
    ]
    if m.alpha_loss is not None:
        parts.append(f"alpha-loss {_number(m.alpha_loss)} alpha-acc {_percent(m.alpha_accuracy)}")
    if m.valid_loss is not None:
        parts.append(f"valid-loss {_number(m.valid_loss)} valid-acc {_percent(m.valid_accuracy)}")
    parts.append(f"{m.seconds:.1f}s")
    return "  ".join(parts)


def _edge_labels(steps: int) -> list[str]:
    labels = []
    for node in range(steps):
        labels += [f"{source}->{node + 2}" for source in range(node + 2)]
    return labels


def stage_table(report: StageReport, cell_type: str) -> Table:
    """Candidate weights per edge: kept ops marked ``*`` (and bold on a terminal), dropped ops
    dim and struck through. The mark carries the meaning where styles are not shown (logs)."""
    edges: tuple[EdgeReport, ...] = report.normal if cell_type == "normal" else report.reduce
    verb = "final op" if report.last else "kept for the next stage"
    table = Table(
        title=f"stage {report.stage} {cell_type} cell: softmax(alpha) per edge (* {verb})"
    )
    table.add_column("edge", justify="right")
    table.add_column("candidates")
    for label, edge in zip(_edge_labels(report.arch.steps), edges):
        cells = []
        for op, p in zip(edge.ops, edge.probabilities):
            text = f"{op}({p:.3f})"  # no space inside: a narrow table wraps between ops only
            cells.append(f"[bold]*{text}[/]" if op in edge.kept else f"[dim strike] {text}[/]")
        table.add_row(label, "  ".join(cells))
    return table


def progress_bar(console: Console) -> Progress:
    """The live bar of long runs: what, how far, running statistics, elapsed, ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


class ConsoleObserver(SearchObserver):
    """Plain lines per epoch (logs, pipes); rich progress when ``live`` (a terminal)."""

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self.live = live
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.first_epoch = 1

    def note(self, text: str) -> None:
        self.console.print(escape(text), highlight=False, soft_wrap=True)

    def stage_started(self, start: StageStart) -> None:
        self.console.print(
            f"[bold]stage {start.stage}/{start.stages}[/]: {start.cells} cells, "
            f"{start.ops_per_edge} ops per edge, {start.epochs} epochs of "
            f"{start.batches_per_epoch} batches of {start.batch_size}, "
            f"{start.parameters:,} weights",
            highlight=False,
        )
        if not self.live:
            return
        self._stop()
        self.progress = progress_bar(self.console)
        self.progress.start()
        self.first_epoch = start.first_epoch
        total = (start.epochs - start.first_epoch + 1) * start.batches_per_epoch
        self.task = self.progress.add_task(f"stage {start.stage}", total=total, stats="")

    def batch_finished(self, progress: BatchProgress) -> None:
        if self.progress is None or self.task is None:
            return
        phase = "joint" if progress.joint else "warm-up"
        stats = (
            f"epoch {progress.epoch}/{progress.epochs} {phase} loss {progress.loss:.3f} "
            f"acc {_percent(progress.accuracy)}"
        )
        completed = (progress.epoch - self.first_epoch) * progress.steps + progress.step
        self.progress.update(self.task, completed=completed, stats=stats)

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        self.console.print(epoch_line(metrics), highlight=False, soft_wrap=True)

    def stage_finished(self, report: StageReport) -> None:
        self._stop()
        self.console.print(stage_table(report, "normal"))
        self.console.print(stage_table(report, "reduce"))

    def search_finished(self, result: SearchResult) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.task = None

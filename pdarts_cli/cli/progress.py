"""Rendering a running search: a rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pdarts_cli.cli.renderer import ProgressRenderer
from pdarts_cli.searching.events import SearchObserver
from pdarts_cli.topology import cell_edges

if TYPE_CHECKING:
    from pdarts_cli.searching.events import (
        BatchProgress,
        EdgeReport,
        EpochMetrics,
        SearchResult,
        StageReport,
        StageStart,
    )


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


def diagnostics_line(m: EpochMetrics) -> str | None:
    """Skip-connects of the genotype the alphas give now, mean entropy of the op weights per
    cell type, edges whose chosen op changed since the previous epoch; None without them."""
    if not m.skip_connects:
        return None
    skips = " ".join(f"{cell} {n}" for cell, n in m.skip_connects.items())
    parts = [f"skip-connects {skips}"]
    if m.mean_entropy:
        entropy = " ".join(f"{cell} {v:.2f}" for cell, v in m.mean_entropy.items())
        parts.append(f"entropy {entropy} nats")
    changed = m.changed_edge_count
    if changed is not None:
        parts.append(f"{changed} edge{'' if changed == 1 else 's'} changed")
    return "  " + " · ".join(parts)


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
    for cell_edge, edge in zip(cell_edges(report.arch.steps), edges):
        cells = []
        for op, p in zip(edge.ops, edge.probabilities):
            text = f"{op}({p:.3f})"  # no space inside: a narrow table wraps between ops only
            cells.append(f"[bold]*{text}[/]" if op in edge.kept else f"[dim strike] {text}[/]")
        table.add_row(cell_edge.label, "  ".join(cells))
    return table


class ConsoleObserver(SearchObserver):
    """Plain lines per epoch (logs, pipes); rich progress when ``live`` (a terminal)."""

    def __init__(self, console: Console, live: bool) -> None:
        self.renderer = ProgressRenderer(console, live)
        self.genotype_shown: str | None = None

    def note(self, text: str) -> None:
        self.renderer.note(text)

    def warning(self, text: str) -> None:
        self.renderer.warn(text)

    def stage_started(self, start: StageStart) -> None:
        self.renderer.print(
            f"[bold]stage {start.stage}/{start.stages}[/]: {start.cells} cells, "
            f"{start.ops_per_edge} ops per edge, {start.epochs} epochs of "
            f"{start.batches_per_epoch} batches of {start.batch_size}, "
            f"{start.parameters:,} weights"
        )
        self.renderer.start(
            f"stage {start.stage}", start.first_epoch, start.epochs, start.batches_per_epoch
        )

    def batch_finished(self, progress: BatchProgress) -> None:
        phase = "joint" if progress.joint else "warm-up"
        stats = (
            f"epoch {progress.epoch}/{progress.epochs} {phase} loss {progress.loss:.3f} "
            f"acc {_percent(progress.accuracy)}"
        )
        self.renderer.update(progress.epoch, progress.step, stats)

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        self.renderer.print(epoch_line(metrics), soft_wrap=True)
        line = diagnostics_line(metrics)
        if line is not None:
            self.renderer.print(line, soft_wrap=True)
        if metrics.genotype is not None and metrics.genotype != self.genotype_shown:
            self.genotype_shown = metrics.genotype  # shown again only once it changes
            self.renderer.print(
                f"  [dim]genotype now: {escape(metrics.genotype)}[/]", soft_wrap=True
            )

    def stage_finished(self, report: StageReport) -> None:
        self.renderer.stop()
        self.renderer.print(stage_table(report, "normal"))
        self.renderer.print(stage_table(report, "reduce"))

    def search_finished(self, result: SearchResult) -> None:
        self.renderer.stop()

"""The seeds of ``pdarts search --seeds`` compared: ``search --seeds`` prints it at the end,
``pdarts genotype diff RUN/stability.json`` prints it again."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pdarts_cli.genotype.stability import AccuracySpread, EdgeAgreement, Stability
from pdarts_cli.topology import CELL_TYPES

NOT_KEPT = "-"
EDGE_CAPTION = (
    "edge: input->node as in DARTS strings; -: not kept; "
    "agree: seeds that made the most common choice"
)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def agreement_mark(row: EdgeAgreement) -> str:
    return "all" if row.unanimous else f"{row.agreeing}/{len(row.choices)}"


def choice_text(row: EdgeAgreement, choice: str | None) -> str:
    """A seed's op on the edge; a choice other than the most common one in yellow."""
    text = escape(choice or NOT_KEPT)
    return text if choice == row.majority else f"[yellow]{text}[/]"


def edge_table(stability: Stability, cell_type: str) -> Table:
    """One row per edge some seed kept, one column per seed."""
    unanimous, edges = stability.unanimous_edges(cell_type)
    table = Table(
        title=f"{cell_type} cell: {unanimous} of {edges} edges alike in every seed",
        caption=EDGE_CAPTION,
    )
    table.add_column("edge", justify="right")
    for outcome in stability.seeds:
        table.add_column(f"seed {outcome.seed}")
    table.add_column("agree", justify="right")
    for row in stability.edges:
        if row.cell_type == cell_type:
            choices = [choice_text(row, choice) for choice in row.choices]
            table.add_row(row.edge.label, *choices, agreement_mark(row))
    return table


def seed_table(stability: Stability) -> Table:
    """Skip-connects and the final search accuracy, one column per seed."""
    table = Table(title="per seed")
    table.add_column("")
    for outcome in stability.seeds:
        table.add_column(f"seed {outcome.seed}", justify="right")
    for cell in CELL_TYPES:
        counts = [str(outcome.skip_connects[cell]) for outcome in stability.seeds]
        table.add_row(f"skip-connects, {cell}", *counts)
    accuracies = [_percent(outcome.final_valid_accuracy) for outcome in stability.seeds]
    table.add_row("final valid-acc", *accuracies)
    return table


def spread_line(spread: AccuracySpread | None) -> str:
    if spread is None:
        return "final search accuracy: none of the seeds evaluated in its last epoch"
    return (
        f"final search accuracy (valid-acc of the last epoch) over {spread.count} seeds: "
        f"mean {_percent(spread.mean)}, std {_percent(spread.std)}, "
        f"min {_percent(spread.min)}, max {_percent(spread.max)}"
    )


def verdict(stability: Stability) -> str:
    if stability.identical:
        return "every seed found the same cells"
    differing = sum(not row.unanimous for row in stability.edges)
    if not differing:
        return "the seeds keep the same edges and ops, and concatenate other nodes"
    return f"the seeds differ on {differing} of {len(stability.edges)} edges"


def render_stability(console: Console, stability: Stability, source: Path | None = None) -> None:
    """The genotypes side by side per edge, the skip-connects and the accuracies' spread."""
    seeds = ", ".join(str(outcome.seed) for outcome in stability.seeds)
    where = f" ({source})" if source is not None else ""
    console.print(f"\n[bold]stability across seeds {seeds}[/]{escape(where)}")
    for cell in CELL_TYPES:
        console.print(edge_table(stability, cell))
    console.print(seed_table(stability))
    console.print(escape(spread_line(stability.spread)), soft_wrap=True)
    console.print(verdict(stability))
    for outcome in stability.seeds:
        console.print(f"seed {outcome.seed}: {escape(outcome.genotype.to_darts())}", soft_wrap=True)

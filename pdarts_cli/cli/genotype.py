"""``pdarts genotype list|show|plot|diff``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdarts_cli.cli.errors import user_errors
from pdarts_cli.cli.help_format import Command, Group
from pdarts_cli.genotype import ZOO, Genotype, load_genotype
from pdarts_cli.topology import CELL_INPUTS, INPUTS_PER_NODE, gene_target

app = typer.Typer(
    help="Show, draw and compare genotypes (zoo, files, runs).",
    no_args_is_help=True,
    cls=Group,
)

GenotypeArg = Annotated[
    str,
    typer.Argument(
        metavar="GENOTYPE|RUN_DIR",
        help="A genotype file, a run directory (its genotype.json), a DARTS string or a zoo "
        "name. Every op must be registered (pdarts ops list).",
    ),
]


# One numbering for every table, the one DARTS strings and concat lists use.
NODE_LEGEND = "nodes as in DARTS strings: 0 = c_{k-2}, 1 = c_{k-1}, 2 and up = intermediate"


def node_name(node: int) -> str:
    """A graph node: its DARTS index, with the cell inputs named."""
    names = {0: "0 (c_{k-2})", 1: "1 (c_{k-1})"}
    return names.get(node, str(node))


def cell_table(genotype: Genotype, cell_type: str) -> Table:
    table = Table(title=f"{cell_type} cell (concat {list(genotype.concat(cell_type))})")
    table.add_column("node", justify="right")
    table.add_column("op")
    table.add_column("input")
    for k, (op, source) in enumerate(genotype.cell(cell_type)):
        node = str(gene_target(k)) if k % INPUTS_PER_NODE == 0 else ""  # once per node
        table.add_row(node, op, node_name(source))
    return table


@app.command("list", cls=Command)
def list_zoo() -> None:
    """The published genotypes that can be named instead of a file."""
    table = Table(title="genotype zoo")
    table.add_column("name", style="bold")
    table.add_column("skip-connects (normal)", justify="right")
    table.add_column("source")
    for name, make in ZOO.items():
        genotype = make()
        table.add_row(
            name, str(genotype.count("skip_connect")), str(genotype.meta.get("source", ""))
        )
    Console().print(table)


@app.command("show", cls=Command)
@user_errors
def show(genotype: GenotypeArg) -> None:
    """Print both cells as tables, and the genotype in DARTS syntax."""
    resolved = load_genotype(genotype)
    console = Console(highlight=False)
    console.print(cell_table(resolved, "normal"))
    console.print(cell_table(resolved, "reduce"))
    console.print(NODE_LEGEND)
    console.print(resolved.to_darts(), soft_wrap=True)


@app.command("plot", cls=Command)
@user_errors
def plot(
    genotype: GenotypeArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="cell.svg, cell.png, cell.pdf or cell.dot")
    ],
) -> None:
    """Draw both cells as the DARTS papers do (needs Graphviz's dot program)."""
    from pdarts_cli.draw import draw_genotype

    written = draw_genotype(load_genotype(genotype), out)
    Console(highlight=False).print(f"wrote {written}")


@app.command("diff", cls=Command)
@user_errors
def diff(
    genotype_a: Annotated[
        str,
        typer.Argument(
            metavar="GENOTYPE|RUN_DIR",
            help="A genotype file, a run directory (its genotype.json), a DARTS string or a "
            "zoo name. Alone: a pdarts search --seeds run directory or its stability.json, "
            "whose seeds are compared. Every op must be registered (pdarts ops list).",
        ),
    ],
    genotype_b: Annotated[
        str | None,
        typer.Argument(
            metavar="GENOTYPE|RUN_DIR",
            help="The genotype to compare the first with, in any form the first takes.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The nodes whose (op, input) pairs differ between two genotypes.

    Given one `pdarts search --seeds` run (its directory or stability.json): its seeds'
    genotypes side by side, edge by edge, with how many seeds agree on each edge, their
    skip-connects and their final search accuracies.
    """
    from pdarts_cli.genotype import genotype_diff

    console = Console(highlight=False)
    if genotype_b is None:
        from pdarts_cli.cli.stability import render_stability
        from pdarts_cli.genotype.stability import read_stability

        render_stability(console, read_stability(genotype_a), Path(genotype_a))
        return
    result = genotype_diff(load_genotype(genotype_a), load_genotype(genotype_b))
    if result.identical:
        console.print("identical")
        return
    table = Table(title="differences", caption=f"op(input); {NODE_LEGEND}")
    for column in ("cell", "node", "only in A", "only in B"):
        table.add_column(column)
    for node in result.nodes:
        table.add_row(
            node.cell_type,
            str(CELL_INPUTS + node.node),
            ", ".join(f"{op}({source})" for op, source in node.only_a),
            ", ".join(f"{op}({source})" for op, source in node.only_b),
        )
    for cell_type, concat_a, concat_b in result.concat:
        table.add_row(cell_type, "concat", str(list(concat_a)), str(list(concat_b)))
    console.print(table)

"""``pdarts refine``: genotypes with at most M skip-connects from a search; ``--ladder`` sizes
every M's evaluation network and ``--max-params`` / ``--max-madds`` pick one within a budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pdarts_cli.cli.errors import fail, user_errors

if TYPE_CHECKING:
    from pdarts_cli.refinement import Ladder


@user_errors
def refine(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SOURCE", help="A search run directory (its final.arch.json) or an arch file."
        ),
    ],
    max_skip: Annotated[
        str | None,
        typer.Option(
            "--max-skip",
            "-m",
            metavar="M|A-B",
            help="Keep AT MOST M skip-connects in the normal cell (the paper says exactly M; "
            "the authors' code, and this tool, keep at most M). A range such as 0-4 writes one "
            "genotype per M. The reduction cell is never refined. Paper: 2.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (default: genotype-mM.json beside SOURCE; with --ladder "
            "ladder.json beside SOURCE).",
        ),
    ] = None,
    ladder: Annotated[
        bool,
        typer.Option(
            "--ladder",
            help="Every M from 0 to 8 in one JSON file, each with its evaluation network's "
            "parameters (auxiliary head excluded) and multiply-adds, counted as train --dry-run "
            "counts them.",
        ),
    ] = False,
    max_params: Annotated[
        str | None,
        typer.Option(
            "--max-params",
            metavar="COUNT",
            help="With the ladder: choose the M whose network has the most parameters within "
            "COUNT (3.5M, 3500000); writes its genotype-mM.json beside the ladder.",
        ),
    ] = None,
    max_madds: Annotated[
        str | None,
        typer.Option(
            "--max-madds",
            metavar="COUNT",
            help="With the ladder: at most COUNT multiply-adds for one image (600M, 1.2G).",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="With the ladder: the dataset the networks are sized for, as in train "
            "(classes, image size; default cifar10; imagenet: the ImageNet setting).",
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            "-r",
            metavar="NAME|FILE",
            help="With the ladder: the training recipe whose network is sized (default: the "
            "paper's for the dataset, as in train).",
        ),
    ] = None,
) -> None:
    """Derive genotypes with at most M normal skip-connects.

    Architecture refinement (P-DARTS section 3.2.2) of a search's final alphas, for any M;
    a search's genotype.json already holds its schedule's max_skip (2). --ladder, --max-params
    and --max-madds choose M by the size of the network it gives.
    """
    budgeted = max_params is not None or max_madds is not None
    if ladder or budgeted:
        if max_skip is not None:
            raise fail("the ladder covers every M from 0 to 8; drop --max-skip")
        _ladder(source, output, max_params, max_madds, dataset, recipe)
        return
    if dataset is not None or recipe is not None:
        raise fail("--dataset and --recipe size the networks of the ladder; add --ladder")
    from pdarts_cli.refinement import parse_max_skip
    from pdarts_cli.refinement import refine as refine_genotypes

    max_skips = parse_max_skip(max_skip) if max_skip is not None else None
    console = Console(highlight=False)
    for result in refine_genotypes(source, max_skips, output):
        label = "plain derivation" if result.max_skip is None else f"M = {result.max_skip}"
        normal, reduce = (
            result.genotype.count("skip_connect"),
            result.genotype.count("skip_connect", "reduce"),
        )
        where = f" -> {result.path}" if result.path else ""
        console.print(f"[bold]{label}[/]: skip-connects normal {normal}, reduce {reduce}{where}")
        console.print(result.genotype.to_darts(), soft_wrap=True)


def _ladder(
    source: Path,
    output: Path | None,
    max_params: str | None,
    max_madds: str | None,
    dataset: str | None,
    recipe: str | None,
) -> None:
    from pdarts_cli.api import refine_ladder
    from pdarts_cli.refinement import ladder_file, parse_count

    result = refine_ladder(
        source,
        dataset or "cifar10",
        recipe,
        max_params=parse_count(max_params, "--max-params") if max_params is not None else None,
        max_madds=parse_count(max_madds, "--max-madds") if max_madds is not None else None,
        output=output or ladder_file(source),
    )
    _print_ladder(Console(highlight=False), result)


def _print_ladder(console: Console, ladder: Ladder) -> None:
    """The ladder as a table, the chosen M marked, then the files written."""
    s = ladder.setting
    table = Table(
        title=f"{escape(s['dataset'])}, recipe {escape(s['recipe'])}: {s['network']} network, "
        f"{s['channels']} channels, {s['layers']} cells, {s['num_classes']} classes",
        caption="parameters without the auxiliary head; multiply-adds of one "
        f"{s['image_size']}x{s['image_size']} image",
    )
    for name in ("M", "normal skip-connects", "parameters", "multiply-adds", ""):
        table.add_column(name, justify="left" if not name else "right")
    chosen = ladder.chosen.max_skip if ladder.chosen is not None else None
    for rung in ladder.rungs:
        notes = [f"same as M = {rung.same_as}"] if rung.same_as is not None else []
        if rung.max_skip == chosen:
            notes.insert(0, f"<- chosen ({ladder.budget})")
        table.add_row(
            str(rung.max_skip),
            str(rung.skip_connects),
            f"{rung.parameters:,}",
            f"{rung.multiply_adds:,}",
            "; ".join(notes),
            style="bold green" if rung.max_skip == chosen else None,
        )
    console.print(table)
    console.print(f"ladder -> {escape(str(ladder.path))}", soft_wrap=True)
    if ladder.chosen is not None:
        where = escape(str(ladder.genotype_path))
        console.print(f"[bold]M = {chosen}[/] -> {where}", soft_wrap=True)
        console.print(escape(ladder.chosen.genotype.to_darts()), soft_wrap=True)

"""``pdarts refine``: genotypes with at most M skip-connects from a search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pdarts_cli.cli.errors import user_errors


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
            "--output", "-o", help="File to write (default: genotype-mM.json beside SOURCE)."
        ),
    ] = None,
) -> None:
    """Derive genotypes with at most M normal skip-connects.

    Architecture refinement (P-DARTS section 3.2.2) of a search's final alphas, for any M;
    a search's genotype.json already holds its schedule's max_skip (2).
    """
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

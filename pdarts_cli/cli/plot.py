"""``pdarts plot RUN_DIR``: a run's curves, and a search's op weights, as one picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pdarts_cli.cli.errors import user_errors


@user_errors
def plot(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A search or train run directory.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="curves.png, .svg or .pdf to write (default: RUN_DIR/curves.png)."
        ),
    ] = None,
) -> None:
    """Draw a run's curves (and, for a search, its alphas).

    Losses and accuracies over the epochs; for a search also softmax(alpha) of every op on
    every edge of both cells.
    """
    from pdarts_cli.plotting import plot_run

    typer.echo(f"wrote {plot_run(run_dir, out)}")

"""The ``pdarts`` application: composes the subcommands, nothing else."""

from __future__ import annotations

import typer

from pdarts_cli import __version__
from pdarts_cli.cli import genotype, registry, schedule
from pdarts_cli.cli.help_format import Command, Group
from pdarts_cli.cli.plot import plot
from pdarts_cli.cli.profile_memory import profile_memory
from pdarts_cli.cli.refine import refine
from pdarts_cli.cli.search import search
from pdarts_cli.cli.train import evaluate, train

app = typer.Typer(
    name="pdarts",
    help="Progressive DARTS (P-DARTS) architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)
app.command("search", cls=Command)(search)
app.command("refine", cls=Command)(refine)
app.command("train", cls=Command)(train)
app.command("evaluate", cls=Command)(evaluate)
app.command("plot", cls=Command)(plot)
app.command("profile-memory", cls=Command)(profile_memory)
app.add_typer(genotype.app, name="genotype")
app.add_typer(schedule.app, name="schedule")
app.add_typer(registry.ops_app, name="ops")
app.add_typer(registry.datasets_app, name="datasets")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pdarts {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Progressive DARTS (P-DARTS) architecture search."""


def main() -> None:
    app()

"""``pdarts ops list`` and ``pdarts datasets list``."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pdarts_cli.cli.errors import error_console, user_errors
from pdarts_cli.cli.help_format import Command, Group
from pdarts_cli.registry import Registry, dataset_registry, first_doc_line, op_registry

ops_app = typer.Typer(
    help="Candidate operations (entry-point group pdarts.ops).",
    no_args_is_help=True,
    cls=Group,
)
datasets_app = typer.Typer(
    help="Dataset providers (entry-point group pdarts.datasets).",
    no_args_is_help=True,
    cls=Group,
)


def _render(registry: Registry[Any], title: str) -> None:
    loaded, failures = registry.load_all()
    table = Table(title=title)
    table.add_column("name", style="bold")
    table.add_column("distribution")
    table.add_column("description")
    for entry, obj in loaded:
        table.add_row(entry.name, entry.distribution, first_doc_line(obj))
    Console().print(table)
    for failure in failures:
        error_console().print(f"[yellow]warning:[/] skipped {escape(str(failure))}")


@ops_app.command("list", cls=Command)
@user_errors
def list_ops() -> None:
    """Show every candidate op, built-in or plugin."""
    _render(op_registry(), "ops")


@datasets_app.command("list", cls=Command)
@user_errors
def list_datasets() -> None:
    """Show every dataset provider, built-in or plugin."""
    _render(dataset_registry(), "datasets")

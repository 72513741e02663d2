"""One place that turns the tool's own exceptions into one line and an exit code.

``PDARTS_DEBUG=1`` lets them through with their traceback. Any other exception is an internal
error and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from pdarts_cli.errors import PdartsError

P = ParamSpec("P")
R = TypeVar("R")

INTERRUPTED_EXIT_CODE = 130


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, exit_code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned Exit."""
    error_console().print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(exit_code)


def interrupted(command: str, run_dir: Path) -> typer.Exit:
    """Ctrl-C during a run: say how to continue from the last checkpoint (exit 130).

    ``command`` is what comes between ``pdarts`` and ``--resume``: ``search``, or ``train``
    with its genotype.
    """
    from pdarts_cli.runlog import is_run_dir

    if is_run_dir(run_dir):
        return fail(
            f"interrupted; the last checkpoint is kept. Continue with: "
            f"pdarts {command} --resume {shlex.quote(str(run_dir))}",
            INTERRUPTED_EXIT_CODE,
        )
    return fail("interrupted before the run directory was written", INTERRUPTED_EXIT_CODE)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report PdartsError as one line and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PdartsError as exc:
            if os.environ.get("PDARTS_DEBUG") == "1":
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", INTERRUPTED_EXIT_CODE) from None

    return wrapper

"""One place that turns the tool's own exceptions into one line and an exit code.

``PDARTS_DEBUG=1`` lets them through with their traceback. Any other exception is an internal
error and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from pdarts_cli.cli.launch import is_main_rank
from pdarts_cli.errors import PdartsError

P = ParamSpec("P")
R = TypeVar("R")

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT
TERMINATED_EXIT_CODE = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or ``kill`` stopping the run): handled as Ctrl-C, exit 143."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM stops the command the way Ctrl-C does (the last checkpoint is kept,
    the resume command printed). Only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_code(exc: KeyboardInterrupt) -> int:
    return TERMINATED_EXIT_CODE if isinstance(exc, Terminated) else INTERRUPTED_EXIT_CODE


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, exit_code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned Exit."""
    error_console().print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(exit_code)


def interrupted(command: str, run_dir: Path, exc: KeyboardInterrupt) -> typer.Exit:
    """Ctrl-C (exit 130) or SIGTERM (exit 143) during a run: say how to continue from the
    last checkpoint.

    ``command`` is what comes between ``pdarts`` and ``--resume``: ``search``, or ``train``
    with its genotype.
    """
    from pdarts_cli.runlog import is_run_dir

    if not is_main_rank():  # under torchrun rank 0 says it for all
        return typer.Exit(_stop_code(exc))
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    if is_run_dir(run_dir):
        return fail(
            f"{what}; the last checkpoint is kept. Continue with: "
            f"pdarts {command} --resume {shlex.quote(str(run_dir))}",
            _stop_code(exc),
        )
    return fail(f"{what} before the run directory was written", _stop_code(exc))


def _speaks_for_its_machine() -> bool:
    """Under torchrun the ranks of one machine mostly fail alike: the first rank of each
    machine prints the line, the others only exit."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report PdartsError as one line and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with sigterm_as_interrupt():
                return command(*args, **kwargs)
        except PdartsError as exc:
            if os.environ.get("PDARTS_DEBUG") == "1":
                raise
            if not _speaks_for_its_machine():
                raise typer.Exit(exc.exit_code) from None
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt as exc:
            if not _speaks_for_its_machine():
                raise typer.Exit(_stop_code(exc)) from None
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            raise fail(what, _stop_code(exc)) from None

    return wrapper

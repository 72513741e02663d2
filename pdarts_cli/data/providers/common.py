"""What every built-in provider shares: reading the request, and one-line error messages."""

from __future__ import annotations

from pathlib import Path

from pdarts_cli.data.base import DatasetRequest
from pdarts_cli.errors import DatasetError


def one_line(text: str) -> str:
    """Collapse a message onto one line: the CLI prints a DatasetError as a single line."""
    return " ".join(text.split())


def no_argument(request: DatasetRequest) -> None:
    """Datasets at a fixed place refuse ``name:something`` rather than ignore it."""
    if request.argument is not None:
        raise DatasetError(
            f"{request.name} takes no argument, got {request.name}:{request.argument}"
        )


def argument_path(request: DatasetRequest) -> Path:
    if not request.argument:
        raise DatasetError(f"{request.name} needs a path: {request.name}:PATH")
    return Path(request.argument).expanduser()

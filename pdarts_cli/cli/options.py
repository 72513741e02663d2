"""Options that several commands share, worded once."""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer

from pdarts_cli.threads import ThreadRequest, parse_threads


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def device_option() -> Any:
    return typer.Option("--device", help="auto: CUDA, then MPS, then the CPU.")


def data_dir_option() -> Any:
    return typer.Option(
        "--data-dir",
        envvar="PDARTS_DATA",
        help="Where downloaded datasets live (default: a per-user cache folder).",
    )


def download_option() -> Any:
    return typer.Option(
        "--download", help="Fetch CIFAR when it is missing (needs a network connection)."
    )


def set_option(what: str, examples: str) -> Any:
    """``--set KEY=VALUE``: a dotted override of a ``what`` (schedule, recipe) field."""
    return typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help=f"Set one {what} field, after the other options: KEY is a dotted path "
        f"({examples}; stages and list items count from 1, as in errors), VALUE is read as "
        "JSON when it parses, else as a string. Repeatable.",
    )


def threads_option() -> Any:
    return typer.Option(
        "--threads",
        metavar="N|auto",
        help="CPU threads torch computes with (default: PDARTS_THREADS, else auto). auto: the "
        "cores other processes "
        "leave free, measured at the start (torch's one thread per core collapses when "
        "another job wants the cores). Recorded in run.json; --resume keeps the run's count "
        "unless this is given.",
    )


def thread_request(threads: str | None) -> ThreadRequest | None:
    """``--threads`` as the library takes it (None: not given)."""
    return parse_threads(threads) if threads is not None else None

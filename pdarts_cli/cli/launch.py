"""``--nproc N``: re-run the command under torchrun, torch's own launcher, with N processes."""

from __future__ import annotations

import logging
import os
import sys

import typer


def launched_by_torchrun() -> bool:
    """Whether this process is one rank of a torchrun launch."""
    return "WORLD_SIZE" in os.environ


def is_main_rank() -> bool:
    """Rank 0, or a plain process: the one that renders (under torchrun the others are quiet)."""
    return int(os.environ.get("RANK", "0")) == 0


def handover_to_torchrun(nproc: int) -> None:
    """Re-run this command under torchrun with ``nproc`` processes on this machine.

    The ranks say what went wrong themselves (rank 0 the resume command after a signal); the
    launcher only ends with their exit code: 130/143 after SIGINT/SIGTERM, which it passes on
    to every rank, or the first failed rank's code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    # The launcher's own log (its banner, the ranks it stopped) would bury the ranks' line.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args, kept = sys.argv[1:], []
    for i, arg in enumerate(args):
        if arg == "--nproc" or arg.startswith("--nproc=") or args[i - 1 : i] == ["--nproc"]:
            continue
        kept.append(arg)
    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "pdarts_cli", *kept])
    except SignalException as exc:
        raise typer.Exit(128 + int(exc.sigval)) from None
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        code = failure.exitcode
        raise typer.Exit(code if code > 0 else 128 - code) from None

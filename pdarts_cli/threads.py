"""How many CPU threads torch computes with: ``--threads N|auto`` and ``PDARTS_THREADS``.

torch's default, one thread per core, is right on an idle machine and collapses as soon as
another process wants the cores: OpenMP threads spin waiting for a core that is busy, and a
step can take a hundred times longer (issue 10's measurements). ``auto`` therefore measures,
just before the run starts, how many of this process's cores other processes keep busy, and
takes the rest (at least one). The choice is recorded in run.json; a resumed run keeps the
count it started with unless told otherwise, since results repeat bit for bit only with the
same thread count.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pdarts_cli.errors import ConfigError

THREADS_ENV = "PDARTS_THREADS"
AUTO: Literal["auto"] = "auto"
ThreadRequest = int | Literal["auto"]
SAMPLE_SECONDS = 0.25  # how long the load of the other processes is sampled
PROC_STAT = Path("/proc/stat")


def parse_threads(text: str, source: str = "--threads") -> ThreadRequest:
    """``auto`` or a positive whole number; anything else is a one-line ConfigError."""
    value = text.strip().lower()
    if value == AUTO:
        return AUTO
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ConfigError(f"{source} must be a positive whole number or auto, got {text!r}")


def requested_threads(given: ThreadRequest | str | None) -> ThreadRequest:
    """What was asked for: ``given`` (a flag or an argument), else ``PDARTS_THREADS``, else
    ``auto``."""
    if given is not None:
        return given if isinstance(given, int) else parse_threads(given)
    from_env = os.environ.get(THREADS_ENV)
    if from_env:
        return parse_threads(from_env, THREADS_ENV)
    return AUTO


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def processes_on_this_machine() -> int:
    """How many processes torchrun started on this machine (1 outside torchrun): they share
    its cores."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _cpu_times() -> tuple[int, int, int] | None:
    """(total, idle, cpus) jiffies of the whole machine from /proc/stat; None elsewhere."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    fields = [int(v) for v in lines[0].split()[1:]]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle, cpus


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many cores other processes keep busy, sampled over ``seconds`` while this process
    waits (so it does not count itself); None where the OS does not tell."""
    before = _cpu_times()
    if before is None:
        return _load_average()
    time.sleep(seconds)
    after = _cpu_times()
    if after is None:
        return None
    total, idle = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return 0.0
    return after[2] * (total - idle) / total


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def auto_thread_count(cores: int, busy: float | None) -> int:
    """The cores left by the busy ones, rounded, at least one; all of them when unknown."""
    if busy is None:
        return cores
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count a run computes with, and why (recorded in run.json)."""

    threads: int
    requested: ThreadRequest
    cores: int
    busy_cores: float | None  # measured for ``auto``; None when not measured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threads(given: ThreadRequest | str | None = None) -> ThreadChoice:
    """The thread count for ``given`` (see ``requested_threads``), measuring the load for
    ``auto``."""
    request = requested_threads(given)
    cores = max(1, usable_cores() // processes_on_this_machine())
    if request != AUTO:
        return ThreadChoice(int(request), request, cores, None)
    busy = busy_cores()
    rounded = None if busy is None else round(busy, 2)
    return ThreadChoice(auto_thread_count(cores, busy), AUTO, cores, rounded)


@contextlib.contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """torch computes with ``threads`` threads inside the block; the caller's count after."""
    import torch  # here: choosing a count must not load torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resumed_threads(recorded: int | None, given: ThreadRequest | str | None) -> ThreadChoice:
    """A resumed run computes with the count it started with (``recorded``), so that it
    repeats an uninterrupted run bit for bit, unless a count or ``auto`` is given (a flag, an
    argument or ``PDARTS_THREADS``)."""
    if given is None and not os.environ.get(THREADS_ENV) and recorded is not None:
        return ThreadChoice(recorded, recorded, usable_cores(), None)
    return choose_threads(given)


def describe_threads(choice: ThreadChoice) -> str:
    """``2 threads`` or ``1 thread (auto: 1.0 of 2 cores busy)``, for a run's first line."""
    count = f"{choice.threads} thread{'s' if choice.threads != 1 else ''}"
    if choice.busy_cores is None:
        return count
    return f"{count} (auto: {choice.busy_cores:.1f} of {choice.cores} cores busy)"

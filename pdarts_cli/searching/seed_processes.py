"""One seed per GPU: the seeds of ``pdarts search --seeds`` as child processes.

Each child is a plain ``python -m pdarts_cli search`` (a seed to start) or ``search --resume``
(an unfinished seed) with ``CUDA_VISIBLE_DEVICES`` naming one GPU, which it then sees as its
only ``cuda`` device. A GPU runs one seed at a time; the next seed starts on the first GPU
that comes free. A child's output goes to ``seed-K.log`` beside its run directory (appended
to when it is resumed). Once a child fails no further seed is started, and those running
finish. Ctrl-C or SIGTERM stops the children with SIGTERM, which each handles as its own
(the last checkpoint kept), and waits for them to exit.

The children run in sessions of their own, so a terminal's Ctrl-C reaches them once, through
this process, rather than twice. A child outlives this process only when it is killed outright
(SIGKILL); its seed then runs to its end, and ``--resume`` is refused while it holds its lock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

import pdarts_cli
from pdarts_cli.errors import PdartsError
from pdarts_cli.searching.events import SearchObserver
from pdarts_cli.searching.options import SearchOptions
from pdarts_cli.threads import THREADS_ENV, ThreadRequest, usable_cores

CHILD_DEVICE = "cuda"  # what a child with one visible GPU calls it
POLL_SECONDS = 0.5  # how often the children are checked for having ended
STOP_WAIT_SECONDS = 60.0  # for a stopped child to write its last lines before it is killed
LAST_LINE_CHARS = 300  # of a failed child's output, quoted in the error


class SeedsFailedError(PdartsError):
    """A seed's child process failed; the others ran to their end (a failure during work)."""

    exit_code = 1


def gpu_slots(device: str) -> list[str]:
    """One ``CUDA_VISIBLE_DEVICES`` value per visible GPU when the seeds run one per GPU in
    child processes (``device`` auto or cuda, and at least two GPUs); empty when they run one
    after another in this process (the CPU, MPS, a single GPU, or one named by index).

    Counting the GPUs creates no CUDA context here, so no GPU memory is taken from the
    children."""
    if device not in ("auto", "cuda") or not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    if count < 2:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(index) for index in range(count)]
    # CUDA numbers the listed devices from 0: child i gets the i-th entry (an index or a UUID)
    return [name.strip() for name in visible.split(",")][:count]


# How a child is given each option: every SearchOptions field has an entry (a test checks).
CHILD_FLAGS: dict[str, Callable[[SearchOptions], list[str]]] = {
    "dataset": lambda o: ["--dataset", o.dataset],
    "data_dir": lambda o: [] if o.data_dir is None else ["--data-dir", str(o.data_dir)],
    "download": lambda o: ["--download"] if o.download else [],
    "image_size": lambda o: [] if o.image_size is None else ["--image-size", str(o.image_size)],
    "device": lambda o: ["--device", CHILD_DEVICE],
    "threads": lambda o: [] if o.threads is None else ["--threads", str(o.threads)],
    "auto_batch_size": lambda o: (
        ["--batch-size", "auto-max" if o.raise_batch else "auto"] if o.auto_batch_size else []
    ),
    "raise_batch": lambda o: [],  # given by --batch-size auto-max, with auto_batch_size
    "memory_budget_bytes": lambda o: (
        [] if o.memory_budget_bytes is None else ["--memory-budget", str(o.memory_budget_bytes)]
    ),
    "force_batch": lambda o: ["--force-batch"] if o.force_batch else [],
}


def with_shared_cores(options: SearchOptions, children: int) -> SearchOptions:
    """``options`` for ``children`` searches running side by side: without a thread count
    (no ``--threads``, no PDARTS_THREADS) each takes its share of this machine's cores, not
    all of them (``auto`` measured by children starting together would count none busy)."""
    if options.threads is not None or os.environ.get(THREADS_ENV):
        return options
    return options.model_copy(update={"threads": max(1, usable_cores() // children)})


def cli_command(*args: str) -> tuple[str, ...]:
    """``pdarts ARGS`` run by this interpreter."""
    return (sys.executable, "-m", "pdarts_cli", *args)


def start_command(
    schedule_file: Path, seed: int, out: Path, options: SearchOptions
) -> tuple[str, ...]:
    """The search of ``seed``: ``schedule_file`` (resolved, every flag applied) with its seed
    replaced, into ``out``."""
    flags = [flag for make in CHILD_FLAGS.values() for flag in make(options)]
    return cli_command(
        "search", "--schedule", str(schedule_file), "--seed", str(seed), "--out", str(out), *flags
    )


def resume_command(
    run_dir: Path, data_dir: Path | None, threads: ThreadRequest | None
) -> tuple[str, ...]:
    """The continuation of an unfinished seed, with what a resumed run may change."""
    moved = [] if data_dir is None else ["--data-dir", str(data_dir)]
    moved += [] if threads is None else ["--threads", str(threads)]
    return cli_command("search", "--resume", str(run_dir), "--device", CHILD_DEVICE, *moved)


def child_env(slot: str) -> dict[str, str]:
    """This environment, with one GPU visible, unbuffered output (the log follows the run)
    and this pdarts_cli first on the path (the child imports the parent's code)."""
    source_root = str(Path(pdarts_cli.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "CUDA_VISIBLE_DEVICES": slot, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


@dataclass(frozen=True)
class ChildJob:
    seed: int
    command: tuple[str, ...]
    log: Path  # the child's stdout and stderr


@dataclass(frozen=True)
class Child:
    job: ChildJob
    slot: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]


def start_child(job: ChildJob, slot: str) -> Child:
    log = job.log.open("ab")
    try:
        process = subprocess.Popen(
            job.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(slot),
            start_new_session=True,
        )
    except OSError:
        log.close()
        raise
    return Child(job, slot, process, log)


def last_line(path: Path) -> str:
    """The last non-blank line of a child's output (its one-line error, usually)."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4 * LAST_LINE_CHARS))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][-LAST_LINE_CHARS:] if lines else ""


def ended(child: Child, observer: SearchObserver) -> str | None:
    """None when the child succeeded, else what went wrong."""
    child.log.close()
    code, seed = child.process.returncode, child.job.seed
    if code == 0:
        observer.note(f"seed {seed}: finished on GPU {child.slot}")
        return None
    how = f"exit {code}" if code > 0 else f"killed by signal {-code}"
    line = last_line(child.job.log)
    detail = f": {line}" if line else ""
    return f"seed {seed} failed ({how}){detail} (its output: {child.job.log})"


def stop_children(children: Sequence[Child]) -> None:
    """SIGTERM to each child still running, then wait for it (kill after a while)."""
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        finally:
            child.log.close()


def run_children(jobs: Sequence[ChildJob], slots: Sequence[str], observer: SearchObserver) -> None:
    """Every job, at most one per slot (a GPU) at a time; a SeedsFailedError names the jobs
    that failed and those never started."""
    pending = deque(jobs)
    running: dict[str, Child] = {}
    failures: list[str] = []
    try:
        while running or (pending and not failures):
            for slot in slots:
                if slot not in running and pending and not failures:
                    job = pending.popleft()
                    running[slot] = start_child(job, slot)
                    observer.note(f"seed {job.seed}: started on GPU {slot} (output: {job.log})")
            done = [slot for slot, child in running.items() if child.process.poll() is not None]
            for slot in done:
                failure = ended(running.pop(slot), observer)
                if failure is not None:
                    failures.append(failure)
            if not done:
                time.sleep(POLL_SECONDS)
    except BaseException:  # Ctrl-C, SIGTERM, or a child that could not start
        stop_children(list(running.values()))
        raise
    if failures:
        unstarted = ", ".join(str(job.seed) for job in pending)
        tail = f"; not started: seed(s) {unstarted}" if unstarted else ""
        raise SeedsFailedError("; ".join(failures) + tail)

"""Wall time of the CPU commands at every thread count and at --threads auto, on an idle
machine and beside one competing CPU-bound process; print a table.

    python benchmarks/threads.py --commands train,step,search [--timeout 600]

Rows: `train` is `pdarts train PDARTS --dataset digits --recipe quick --epochs 2`, `step` is
benchmarks/search_step.py on paper-cifar10 stage 1 (batch 32, 2 timed steps after a warm-up
epoch), `search` is the README's quick search. The competing process is a Python busy loop
pinned to nothing, like a user's other job. Target (issue 10): `auto` within 15% of the row's
best count, idle and loaded. A run over --timeout seconds is shown as `>T`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BENCHMARKS = Path(__file__).parent
COMMANDS: dict[str, list[str]] = {
    "train": [
        "pdarts", "train", "PDARTS", "--dataset", "digits", "--recipe", "quick", "--epochs", "2",
        "--quiet", "--force", "--out", "{out}",
    ],
    "step": [
        sys.executable, str(BENCHMARKS / "search_step.py"), "--schedule", "paper-cifar10",
        "--stage", "1", "--batch-size", "32", "--steps", "2", "--device", "cpu",
    ],
    "search": [
        "pdarts", "search", "--dataset", "digits", "--schedule", "quick", "--quiet", "--force",
        "--out", "{out}",
    ],
}  # fmt: skip


@contextlib.contextmanager
def competing_process(loaded: bool) -> Iterator[None]:
    """One CPU-bound process beside the measured one (when ``loaded``)."""
    if not loaded:
        yield
        return
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # let it take its core before the measured run chooses
        yield
    finally:
        busy.kill()
        busy.wait()


def timed_run(command: list[str], threads: str, timeout: float) -> float | None:
    """Seconds of one run with PDARTS_THREADS=threads; None past the timeout."""
    with tempfile.TemporaryDirectory() as out:
        argv = [part.replace("{out}", str(Path(out) / "run")) for part in command]
        env = {**os.environ, "PDARTS_THREADS": threads}
        started = time.perf_counter()
        try:
            subprocess.run(argv, env=env, check=True, timeout=timeout, capture_output=True)
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", default="train,step,search")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = [str(n) for n in range(1, (cores or 1) + 1)] + ["auto"]
    print(f"$ python benchmarks/threads.py --commands {args.commands} --timeout {args.timeout:g}")
    print(f"{'command':8s} {'machine':8s} " + " ".join(f"{c:>8s}" for c in counts) + "  auto/best")
    for name in args.commands.split(","):
        for loaded in (False, True):
            with competing_process(loaded):
                times = [timed_run(COMMANDS[name], count, args.timeout) for count in counts]
            cells = [f"{t:8.1f}" if t is not None else f"{'>' + format(args.timeout, 'g'):>8s}"
                     for t in times]  # fmt: skip
            finished = [t for t in times[:-1] if t is not None]
            ratio = (
                f"{times[-1] / min(finished):9.2f}" if times[-1] is not None and finished else ""
            )
            machine = "loaded" if loaded else "idle"
            print(f"{name:8s} {machine:8s} " + " ".join(cells) + f"  {ratio}", flush=True)


if __name__ == "__main__":
    main()

"""How fast the commands that only read JSON or print help start; print a table.

    python benchmarks/startup.py [--repeats 5]

Each command runs as a user runs it (`pdarts ...` in a fresh process); the table gives the
median wall time and whether torch was imported. Target (issue 10): every row under 0.5 s and
no torch. tests/test_startup.py checks the torch column for every command listed here.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time

LIGHT_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    *((name, "--help") for name in ("search", "refine", "train", "evaluate", "plot")),
    ("profile-memory", "--help"),
    *(("genotype", name, "--help") for name in ("show", "plot", "diff", "list")),
    *(("schedule", name, "--help") for name in ("show", "schema", "list")),
    ("ops", "list", "--help"),
    ("datasets", "list", "--help"),
    ("genotype", "show", "PDARTS"),
    ("genotype", "diff", "PDARTS", "DARTS_V2"),
    ("genotype", "list"),
    ("schedule", "show", "quick"),
    ("schedule", "schema"),
    ("schedule", "list"),
    ("ops", "list"),
    ("datasets", "list"),
)

# Runs the CLI in this process's interpreter and reports, on stderr, whether torch was loaded.
RUNNER = (
    "import sys\n"
    "from pdarts_cli.cli.app import main\n"
    "sys.argv = ['pdarts', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exit:\n"
    "    code = exit.code\n"
    "else:\n"
    "    code = 0\n"
    "print('torch-loaded' if 'torch' in sys.modules else 'torch-free', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run(command: tuple[str, ...]) -> tuple[float, bool, int]:
    """Seconds, whether torch was imported, exit status."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *command], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    return seconds, "torch-loaded" in done.stderr.splitlines()[-1:], done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"$ python benchmarks/startup.py --repeats {args.repeats}")
    print(f"{'command':42s} {'median s':>9s} {'torch':>6s} {'exit':>5s}")
    for command in LIGHT_COMMANDS:
        runs = [run(command) for _ in range(args.repeats)]
        median = statistics.median(seconds for seconds, _, _ in runs)
        torch_loaded = any(loaded for _, loaded, _ in runs)
        text = "pdarts " + shlex.join(command)
        print(f"{text:42s} {median:9.2f} {'yes' if torch_loaded else 'no':>6s} {runs[0][2]:5d}")


if __name__ == "__main__":
    main()

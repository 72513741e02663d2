"""SIGTERM (a scheduler or ``kill`` stopping a run) ends a search as Ctrl-C does: the last
checkpoint kept, one line with the resume command, exit 143; the resumed run ends where an
uninterrupted one does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pdarts_cli.runlock import LOCK_FILE
from pdarts_cli.schedule import Schedule, schedule_json
from pdarts_cli.searching import SearchOptions, resume_search, run_search

# The child runs the command line and sends itself a signal at a chosen search step (counted
# over the whole run), as a scheduler would at any moment.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pdarts_cli.cli.app import app
    from pdarts_cli.searching import epoch

    step = epoch.search_step
    calls = 0

    def signalled(*args, **kwargs):
        global calls
        calls += 1
        if calls == int(sys.argv[1]):
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        return step(*args, **kwargs)

    epoch.search_step = signalled
    app(sys.argv[3:])
    """
)


def _search(signal_name: str, at_step: int, schedule_file: Path, run_dir: Path):
    command = ["search", "-d", "digits", "-s", str(schedule_file), "-o", str(run_dir), "--quiet"]
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(at_step), signal_name, *command],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(("signal_name", "exit_code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_keeps_the_checkpoint_and_says_how_to_resume(
    tmp_path: Path, tiny_schedule: Schedule, signal_name: str, exit_code: int
) -> None:
    one_stage = tiny_schedule.model_copy(update={"stages": tiny_schedule.stages[:1]})
    schedule = one_stage.with_overrides(epochs=2)  # 6 steps an epoch; step 9 is in the second
    schedule_file = tmp_path / "tiny.json"
    schedule_file.write_text(schedule_json(schedule))
    stopped = tmp_path / "stopped"
    done = _search(signal_name, 9, schedule_file, stopped)
    assert done.returncode == exit_code, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.strip()]
    word = "terminated" if signal_name == "SIGTERM" else "interrupted"
    assert line == (
        f"error: {word}; the last checkpoint is kept. Continue with: pdarts search --resume "
        f"{stopped}"
    )
    assert not (stopped / LOCK_FILE).exists()  # the lock goes with the run
    assert (stopped / "checkpoint.safetensors").exists()
    assert not (stopped / "genotype.json").exists()
    if signal_name == "SIGINT":
        return  # the same path from here on

    resume_search(stopped)
    whole = tmp_path / "whole"
    run_search(schedule, SearchOptions(dataset="digits"), whole)
    assert (stopped / "genotype.json").read_text() == (whole / "genotype.json").read_text()
    final = [json.loads((d / "final.arch.json").read_text())["cells"] for d in (stopped, whole)]
    assert final[0] == final[1]


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_with_one_line(tmp_path: Path) -> None:
    """``pdarts train --nproc 2``: SIGTERM to the launcher reaches both ranks; rank 0 says how
    to resume, nothing else prints an error or a traceback, and the launcher exits 143."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "pdarts_cli", "train", "PDARTS", "--dataset", "digits"]
    command += ["--recipe", "quick", "--epochs", "20", "--nproc", "2", "--out", str(out)]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert launcher.stdout is not None
    for line in launcher.stdout:  # rank 0 prints a line per epoch: stop after the first
        if line.startswith("epoch 1 "):
            break
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: terminated; the last checkpoint is kept. Continue with: pdarts train PDARTS "
        f"--resume {out}"
    ], stderr[-2000:]
    assert (out / "last.safetensors").exists()

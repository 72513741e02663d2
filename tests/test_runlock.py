"""One writer per run directory: the lock refuses a live holder and takes over a stale one."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import assert_one_error_line
from typer.testing import CliRunner

from pdarts_cli.cli.app import app
from pdarts_cli.genotype import load_genotype
from pdarts_cli.runlock import (
    LOCK_FILE,
    RunLockedError,
    acquire,
    read_holder,
    release,
    run_lock,
    this_process,
)
from pdarts_cli.schedule import load_schedule, schedule_json
from pdarts_cli.searching import SearchOptions, run_search
from pdarts_cli.training import TrainOptions, run_training
from pdarts_cli.training.recipe import load_recipe

runner = CliRunner()


def write_lock(run_dir: Path, **fields: object) -> None:
    holder = dataclasses.asdict(this_process()) | fields
    (run_dir / LOCK_FILE).write_text(json.dumps(holder))


def dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_the_lock_names_this_process_and_goes_away(tmp_path: Path) -> None:
    with run_lock(tmp_path):
        holder = read_holder(tmp_path / LOCK_FILE)
        assert holder is not None
        assert holder.pid == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_live_holder_is_refused(tmp_path: Path) -> None:
    write_lock(tmp_path)
    with pytest.raises(RunLockedError, match=f"in use by pid {os.getpid()}"):
        acquire(tmp_path)
    holder = read_holder(tmp_path / LOCK_FILE)
    assert holder is not None
    assert holder.pid == os.getpid()  # left as it was


@pytest.mark.parametrize(
    "stale",
    [
        {"pid": "dead"},  # killed: nothing removed the file
        {"process_start": "1"},  # the pid now belongs to another process
    ],
)
def test_a_stale_lock_is_taken_over(tmp_path: Path, stale: dict[str, object]) -> None:
    if stale.get("pid") == "dead":
        stale = {"pid": dead_pid()}
    write_lock(tmp_path, **stale)
    holder = acquire(tmp_path)
    assert holder.pid == os.getpid()
    assert read_holder(tmp_path / LOCK_FILE) == holder
    release(tmp_path, holder)
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"pid": "x"}'])
def test_an_unreadable_lock_is_taken_over(tmp_path: Path, text: str) -> None:
    (tmp_path / LOCK_FILE).write_text(text)
    assert acquire(tmp_path).pid == os.getpid()


def test_a_lock_from_another_host_is_left_to_the_user(tmp_path: Path) -> None:
    write_lock(tmp_path, host="elsewhere")
    with pytest.raises(RunLockedError, match=f"on host elsewhere .* delete {tmp_path}"):
        acquire(tmp_path)


def test_release_leaves_a_lock_another_process_took_over(tmp_path: Path) -> None:
    mine = acquire(tmp_path)
    write_lock(tmp_path, pid=mine.pid + 1)
    release(tmp_path, mine)
    assert (tmp_path / LOCK_FILE).exists()


def test_force_never_replaces_a_search_that_is_running(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    write_lock(tmp_path)
    schedule = load_schedule("quick")
    with pytest.raises(RunLockedError, match="in use"):
        run_search(schedule, SearchOptions(dataset="digits"), tmp_path, force=True)
    assert (tmp_path / "run.json").exists()


def test_force_never_replaces_a_training_run_that_is_running(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    write_lock(tmp_path)
    recipe = load_recipe("quick").with_overrides(epochs=1)
    with pytest.raises(RunLockedError, match="in use"):
        run_training(
            load_genotype("PDARTS"), recipe, TrainOptions(dataset="digits"), tmp_path, True
        )
    assert (tmp_path / "run.json").exists()


def test_a_second_resume_is_one_line(tmp_path: Path) -> None:
    """A killed search's records, resumed while another process holds the run."""
    schedule = load_schedule("quick")
    options = SearchOptions(dataset="digits").model_dump(mode="json")
    (tmp_path / "run.json").write_text(json.dumps({"kind": "search", "options": options}))
    (tmp_path / "schedule.json").write_text(schedule_json(schedule))
    write_lock(tmp_path)
    result = runner.invoke(app, ["search", "--resume", str(tmp_path)])
    line = assert_one_error_line(result)
    assert f"in use by pid {os.getpid()}" in line
    assert result.exit_code == 2


HOLD_THE_LOCK = """
import sys
from pathlib import Path
from pdarts_cli.runlock import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_killed_writer_leaves_a_lock_that_is_taken_over(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by pid {writer.pid}"):
            acquire(tmp_path)
    finally:
        writer.kill()  # SIGKILL: the lock file stays
        writer.wait()
    assert read_holder(tmp_path / LOCK_FILE) is not None
    assert acquire(tmp_path).pid == os.getpid()

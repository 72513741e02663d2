"""A full disk or a folder that turns read-only: the previous file is kept, and the run ends with
one line naming the path and, for a full disk, the space it needs (simulated at the system
calls, since the tests run as root on a roomy disk)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from clihelpers import assert_one_error_line
from conftest import tiny_schedule_dict
from safetensors import SafetensorError
from typer.testing import CliRunner

from pdarts_cli import checkpoint, files
from pdarts_cli.cli.app import app
from pdarts_cli.files import WriteError, atomic_write_text
from pdarts_cli.runlog import MetricsLog
from pdarts_cli.schedule import schedule_json, validate_schedule
from pdarts_cli.searching.state import read_resume_point


def full_disk_on(monkeypatch: pytest.MonkeyPatch, name: str, after: int = 0) -> None:
    """fsync of the temporary file of ``name`` fails with ENOSPC, after ``after`` good ones."""
    fsync, seen = os.fsync, [0]

    def failing(fd: int) -> None:
        if f".{name}." in os.readlink(f"/proc/self/fd/{fd}"):
            seen[0] += 1
            if seen[0] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(files.os, "fsync", failing)


def test_a_full_disk_keeps_the_previous_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "schedule.json"
    path.write_text("old")
    full_disk_on(monkeypatch, "schedule.json")
    with pytest.raises(WriteError) as failed:
        atomic_write_text(path, "x" * 3 * 2**20)
    message = str(failed.value)
    assert message.startswith(f"cannot write {path}: No space left on device; it needs about 3.0")
    assert "MiB are free; the previous schedule.json is kept" in message
    assert failed.value.exit_code == 1
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schedule.json"]  # no temporary left


def test_a_read_only_folder_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def read_only(**kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'a.json'}: Read-only file"):
        atomic_write_text(tmp_path / "a.json", "{}")


def test_a_checkpoint_names_the_space_it_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_space(*args: object, **kwargs: object) -> None:
        raise SafetensorError(
            "Error while serializing: IoError(No space left on device (os error 28))"
        )

    monkeypatch.setattr(checkpoint, "save_file", no_space)
    tensors = {"w": torch.zeros(2**20)}  # 4 MiB
    with pytest.raises(WriteError, match=r"No space left on device.*needs about 4\.0 MiB"):
        checkpoint.save_tensors(tmp_path / "c.safetensors", tensors, {})


def test_a_search_stops_in_one_line_with_its_last_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tiny_schedule_dict()
    data["stages"] = data["stages"][:1]
    schedule = validate_schedule(data, "one stage").with_overrides(epochs=2)
    schedule_file = tmp_path / "one.json"
    schedule_file.write_text(schedule_json(schedule))
    run_dir = tmp_path / "run"
    full_disk_on(monkeypatch, "checkpoint.safetensors", after=1)  # the second epoch's
    result = CliRunner().invoke(
        app, ["search", "-d", "digits", "-s", str(schedule_file), "-o", str(run_dir), "-q"]
    )
    line = assert_one_error_line(result)
    assert line.startswith(f"error: cannot write {run_dir / 'checkpoint.safetensors'}: No space")
    assert "MiB are free; the previous checkpoint.safetensors is kept" in line
    assert result.exit_code == 1
    point = read_resume_point(run_dir)
    assert point is not None
    assert (point.stage, point.next_epoch) == (0, 1)


def test_a_metrics_line_cut_short_is_written_again(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"epoch": 1})
    with log.path.open("a") as out:
        out.write('{"epoch": 2, "tra')  # killed mid-append
    assert log.read() == [{"epoch": 1}]
    log.keep(lambda r: True)
    log.append({"epoch": 2})
    assert log.read() == [{"epoch": 1}, {"epoch": 2}]

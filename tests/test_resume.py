"""A search killed mid-stage and resumed ends bit for bit where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdarts_cli.errors import RunDirError
from pdarts_cli.schedule import Schedule
from pdarts_cli.searching import SearchOptions, resume_search, run_search


def test_resume_of_a_complete_run_changes_nothing(tmp_path: Path, tiny_schedule: Schedule) -> None:
    one_stage = tiny_schedule.model_copy(update={"stages": tiny_schedule.stages[:1]})
    run_dir = tmp_path / "run"
    short = one_stage.with_overrides(epochs=2)
    finished = run_search(short, SearchOptions(dataset="digits"), run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    again = resume_search(run_dir)
    assert again.genotype == finished.genotype
    assert again.arch == finished.arch
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_resume_needs_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="holds no pdarts run"):
        resume_search(tmp_path)

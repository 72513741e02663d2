"""A search killed mid-stage and resumed ends bit for bit where an uninterrupted run ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pdarts_cli.errors import RunDirError
from pdarts_cli.runlog import METRICS_FILE
from pdarts_cli.schedule import Schedule, schedule_json
from pdarts_cli.searching import SearchOptions, resume_search, run_search

KILL_AT = (2, 2, 2)  # stage, epoch, batch: mid-way through the second stage's first joint epoch

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from pdarts_cli.schedule import read_schedule_file
    from pdarts_cli.searching import SearchObserver, SearchOptions, run_search

    class KillMidStage(SearchObserver):
        def batch_finished(self, progress):
            if (progress.stage, progress.epoch, progress.step) == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)

    schedule = read_schedule_file(Path(sys.argv[1]))
    run_search(schedule, SearchOptions(dataset="digits"), sys.argv[2], observer=KillMidStage())
    """
)


def _alphas(run_dir: Path) -> list[list[list[float]]]:
    arch = json.loads((run_dir / "final.arch.json").read_text())
    return [[edge["alpha"] for edge in arch["cells"][cell]] for cell in ("normal", "reduce")]


@pytest.mark.slow
def test_killed_run_resumes_bit_for_bit(tmp_path: Path, tiny_schedule: Schedule) -> None:
    schedule_file = tmp_path / "tiny.json"
    schedule_file.write_text(schedule_json(tiny_schedule))
    killed = tmp_path / "killed"
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(kill_at=KILL_AT), str(schedule_file), str(killed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not (killed / "final.arch.json").exists()
    assert (killed / "stage-1.arch.json").exists()

    resume_search(killed)
    whole = tmp_path / "whole"
    run_search(tiny_schedule, SearchOptions(dataset="digits"), whole)

    assert _alphas(killed) == _alphas(whole)
    assert (killed / "genotype.json").read_text() == (whole / "genotype.json").read_text()
    resumed_weights = load_file(str(killed / "stage-2.safetensors"))
    whole_weights = load_file(str(whole / "stage-2.safetensors"))
    assert resumed_weights.keys() == whole_weights.keys()
    assert all(resumed_weights[k].equal(whole_weights[k]) for k in whole_weights)

    def losses(run_dir: Path) -> list[tuple[int, int, float]]:
        lines = (run_dir / METRICS_FILE).read_text().splitlines()
        return [(r["stage"], r["epoch"], r["train_loss"]) for r in map(json.loads, lines)]

    assert losses(killed) == losses(whole)  # one record per epoch, none repeated
    assert len(losses(whole)) == sum(s.epochs for s in tiny_schedule.stages)


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

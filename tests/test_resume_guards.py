"""Resume refuses a checkpoint that is not this run's (another run, a newer pdarts) and files
that are not checkpoints at all (truncated, a pickle, random bytes), each in one line; nothing
is ever unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from clihelpers import assert_one_error_line
from conftest import tiny_schedule_dict
from typer.testing import CliRunner

from pdarts_cli.checkpoint import load_tensors, save_tensors
from pdarts_cli.cli.app import app
from pdarts_cli.errors import PdartsError, RunDirError
from pdarts_cli.runlog import CHECKPOINT_FILE
from pdarts_cli.schedule import Schedule, validate_schedule
from pdarts_cli.searching import SearchOptions, resume_search, run_search

runner = CliRunner()


def one_epoch(seed: int) -> Schedule:
    data = tiny_schedule_dict(seed=seed)
    data["stages"] = data["stages"][:1]
    return validate_schedule(data, "one stage").with_overrides(epochs=1, warmup_epochs=0)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    for seed, name in ((2, "a"), (5, "b")):
        run_search(one_epoch(seed), SearchOptions(dataset="digits"), root / name)
    return root / "a", root / "b"


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def test_a_checkpoint_of_another_run_is_refused_with_what_differs(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = (copy_of(run, tmp_path) for run in two_runs)
    shutil.copy(b / CHECKPOINT_FILE, a / CHECKPOINT_FILE)
    with pytest.raises(RunDirError) as refused:
        resume_search(a)
    message = str(refused.value)
    assert message.startswith(f"{a / CHECKPOINT_FILE} comes from another run (")
    assert "seed 5 in the checkpoint, 2 in this run" in message
    resume_search(b)  # its own checkpoint: fine (complete, nothing to do)


def test_a_checkpoint_of_a_newer_pdarts_is_refused(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a = copy_of(two_runs[0], tmp_path)
    tensors, metadata = load_tensors(a / CHECKPOINT_FILE)
    metadata["identity"]["pdarts"] = "99.0.0"
    save_tensors(a / CHECKPOINT_FILE, tensors, metadata)
    result = runner.invoke(app, ["search", "--resume", str(a)])
    line = assert_one_error_line(result)
    assert "was written by pdarts 99.0.0, newer than this pdarts" in line
    assert result.exit_code == 2


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("kind", ["truncated", "pickle", "random", "empty"])
def test_a_file_that_is_not_a_checkpoint_is_refused(
    two_runs: tuple[Path, Path], tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    a = copy_of(two_runs[0], tmp_path)
    path = a / CHECKPOINT_FILE
    good = path.read_bytes()
    broken = {
        "truncated": good[: len(good) // 2],
        "pickle": pickle.dumps({"weights": torch.zeros(3), "boom": Boom()}),
        "random": os.urandom(4096),
        "empty": b"",
    }[kind]
    path.write_bytes(broken)
    result = runner.invoke(app, ["search", "--resume", str(a)])
    line = assert_one_error_line(result)
    assert str(path) in line
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(PdartsError):
        load_tensors(path)


def test_a_training_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    from pdarts_cli.genotype import load_genotype
    from pdarts_cli.runlog import RUN_FILE
    from pdarts_cli.training import TrainOptions, resume_training, run_training
    from pdarts_cli.training.recipe import load_recipe

    recipe = load_recipe("quick").with_overrides(epochs=1, channels=4, layers=3)
    run = tmp_path / "run"
    run_training(load_genotype("PDARTS"), recipe, TrainOptions(dataset="digits"), run)
    other = tmp_path / "other"
    shutil.copytree(run, other)
    record = json.loads((other / RUN_FILE).read_text())
    record["run_id"] = "another"
    (other / RUN_FILE).write_text(json.dumps(record))
    with pytest.raises(RunDirError, match="comes from another run \\(the same settings"):
        resume_training(other)
    resume_training(run)  # its own: fine


def test_a_checkpoint_in_another_format_version_is_refused(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a = copy_of(two_runs[0], tmp_path)
    tensors, metadata = load_tensors(a / CHECKPOINT_FILE)
    metadata["format"] = "pdarts-search-checkpoint/2"
    save_tensors(a / CHECKPOINT_FILE, tensors, metadata)
    with pytest.raises(
        RunDirError, match="in format pdarts-search-checkpoint/2; this pdarts reads"
    ):
        resume_search(a)

"""A NaN or infinite gradient stops a search with where it happened and what to change, keeping
the last checkpoint; ``nonfinite = "skip"`` leaves such steps out and goes on."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from clihelpers import assert_one_error_line
from conftest import tiny_schedule_dict
from typer.testing import CliRunner

from pdarts_cli.cli.app import app
from pdarts_cli.errors import NonFiniteError
from pdarts_cli.runlock import LOCK_FILE
from pdarts_cli.schedule import Schedule, schedule_json, validate_schedule
from pdarts_cli.searching import SearchObserver, SearchOptions, run_search, step
from pdarts_cli.searching.state import read_resume_point

POISONED_STEP = 9  # 6 weight steps an epoch: the third step of the second (joint) epoch


def one_stage(**top: Any) -> Schedule:
    data = tiny_schedule_dict(**top)
    data["stages"] = data["stages"][:1]
    return validate_schedule(data, "one stage").with_overrides(epochs=3)


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The weight loss of one step is NaN (as a too-large learning rate would make it)."""
    calls = 0

    def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        loss = F.cross_entropy(logits, target)
        return loss * math.nan if calls == POISONED_STEP else loss

    monkeypatch.setattr(step, "F", SimpleNamespace(cross_entropy=cross_entropy))


def test_a_nan_stops_the_search_where_it_happened(poisoned: None, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteError) as stopped:
        run_search(one_stage(), SearchOptions(dataset="digits"), run_dir)
    message = str(stopped.value)
    assert message.startswith("stage 1, epoch 2, step 3: the weight gradient is not finite")
    assert "the weight loss is nan" in message
    assert 'amp = "off"' in message
    assert 'nonfinite = "skip"' in message
    assert stopped.value.exit_code == 1
    point = read_resume_point(run_dir)  # the last good checkpoint: after epoch 1
    assert point is not None
    assert (point.stage, point.next_epoch) == (0, 1)
    assert all(torch.isfinite(t).all() for t in point.tensors.values() if t.is_floating_point())
    assert not (run_dir / LOCK_FILE).exists()


def test_the_command_line_says_it_in_one_line(poisoned: None, tmp_path: Path) -> None:
    schedule_file = tmp_path / "one.json"
    schedule_file.write_text(schedule_json(one_stage()))
    result = CliRunner().invoke(
        app,
        ["search", "-d", "digits", "-s", str(schedule_file), "-o", str(tmp_path / "run"), "-q"],
    )
    line = assert_one_error_line(result)
    assert line.startswith("error: stage 1, epoch 2, step 3: the weight gradient is not finite")
    assert result.exit_code == 1


def test_skip_leaves_the_step_out_and_goes_on(poisoned: None, tmp_path: Path) -> None:
    notes: list[str] = []

    class Notes(SearchObserver):
        def note(self, message: str) -> None:
            notes.append(message)

    schedule = one_stage(nonfinite="skip")
    result = run_search(
        schedule, SearchOptions(dataset="digits"), tmp_path / "run", observer=Notes()
    )
    assert result.genotype is not None
    assert "stage 1, epoch 2: 1 step(s) skipped for a non-finite gradient" in notes
    point = read_resume_point(tmp_path / "run")
    assert point is not None
    assert all(torch.isfinite(t).all() for t in point.tensors.values() if t.is_floating_point())


def test_a_nan_stops_training_where_it_happened(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pdarts_cli.genotype import load_genotype
    from pdarts_cli.training import TrainOptions, loop, run_training
    from pdarts_cli.training.recipe import load_recipe

    calls = 0

    def cross_entropy(logits: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        loss = F.cross_entropy(logits, target, **kwargs)
        return loss * math.nan if calls == 4 else loss

    monkeypatch.setattr(loop, "F", SimpleNamespace(cross_entropy=cross_entropy))
    recipe = load_recipe("quick").with_overrides(epochs=2, channels=4, layers=3)
    with pytest.raises(NonFiniteError, match=r"^epoch 1, step 4: the gradient is not finite"):
        run_training(
            load_genotype("PDARTS"), recipe, TrainOptions(dataset="digits"), tmp_path / "r"
        )
    assert not (tmp_path / "r" / LOCK_FILE).exists()

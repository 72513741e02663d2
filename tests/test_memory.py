"""profile-memory: sizes as people write them, the affine fit, and predictions that hold."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from clihelpers import assert_one_error_line
from conftest import tiny_schedule_dict
from typer.testing import CliRunner

from pdarts_cli.cli.app import app
from pdarts_cli.errors import PdartsError
from pdarts_cli.memory import (
    MAX_RECOMMENDED_BATCH,
    _probe,
    _request,
    fit_affine,
    parse_batch_sizes,
    parse_size,
    profile_stage,
    recommend,
)
from pdarts_cli.schedule import Schedule, schedule_json, validate_schedule

runner = CliRunner()
GiB, MiB = 2**30, 2**20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16GiB", 16 * GiB),
        ("16 GB", 16 * 10**9),
        ("16g", 16 * GiB),
        ("16G", 16 * GiB),
        ("16000MB", 16 * 10**9),
        ("512MiB", 512 * MiB),
        ("1.5GiB", int(1.5 * GiB)),
        ("4096", 4096),
    ],
)
def test_sizes_parse_the_way_people_write_them(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["sixteen", "16 gigs", "", "-1GB", "0", "0GiB"])
def test_nonsense_sizes_are_one_line(text: str) -> None:
    with pytest.raises(PdartsError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "message"), [("0,16", "at least 1"), ("32", "two batch"), ("a,b", "integers")]
)
def test_bad_batch_sizes(text: str, message: str) -> None:
    with pytest.raises(PdartsError, match=message):
        parse_batch_sizes(text)


def test_affine_fit_and_recommendation() -> None:
    slope, intercept = fit_affine([(16, 100 + 16 * 3), (32, 100 + 32 * 3), (64, 100 + 64 * 3)])
    assert slope == pytest.approx(3)
    assert intercept == pytest.approx(100)
    assert recommend(slope, intercept, 100 + 3 * 50) == 50
    assert recommend(0.0, 100, 10**9) == MAX_RECOMMENDED_BATCH


def one_stage(**top: object) -> Schedule:
    data = tiny_schedule_dict(**top)
    data["stages"] = data["stages"][:1]
    return validate_schedule(data, "one stage")


@pytest.fixture(scope="module")
def profiled() -> tuple[Schedule, object]:
    schedule = one_stage()
    return schedule, profile_stage(schedule, 0, [16, 64, 128], 4 * GiB, "cpu", "digits")


@pytest.mark.slow
def test_prediction_outside_the_measured_batches_is_within_10_percent(profiled: tuple) -> None:
    schedule, profile = profiled
    measured = _probe(_request(schedule, 0, 96, "digits", None, "cpu", False), cuda=False)
    assert measured.peak_bytes is not None
    assert abs(profile.predict(96) - measured.peak_bytes) <= 0.10 * measured.peak_bytes
    assert profile.slope_bytes > 0
    assert profile.idle_bytes < min(m.peak_bytes for m in profile.measurements)


# The search runs in a child that reports its own peak resident memory when it is done, read
# the way the profiler's probes read theirs.
SEARCH_PEAK = textwrap.dedent(
    """
    import contextlib, io, sys
    from pdarts_cli.cli.app import app
    from pdarts_cli.memory_probe import peak_rss_bytes
    with contextlib.redirect_stdout(io.StringIO()):
        app(sys.argv[1:], standalone_mode=False)
    print(peak_rss_bytes())
    """
)


@pytest.mark.slow
def test_a_real_search_peaks_within_15_percent_of_the_profile(
    profiled: tuple, tmp_path: Path
) -> None:
    schedule, profile = profiled
    schedule_file = tmp_path / "one.json"
    schedule_file.write_text(schedule_json(schedule.with_overrides(batch_size=96, epochs=2)))
    search = [
        "search",
        "-d",
        "digits",
        "-s",
        str(schedule_file),
        "-o",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--quiet",
    ]
    done = subprocess.run(
        [sys.executable, "-c", SEARCH_PEAK, *search], capture_output=True, text=True, check=True
    )
    peak = int(done.stdout.strip())
    assert abs(peak - profile.predict(96)) <= 0.15 * profile.predict(96)


@pytest.mark.slow
def test_cell_checkpointing_lowers_the_measured_peak() -> None:
    plain, checkpointed = one_stage(), one_stage(checkpoint_cells=True)
    at = 256

    def peak(schedule: Schedule) -> int:
        m = _probe(_request(schedule, 0, at, "digits", None, "cpu", False), cuda=False)
        assert m.peak_bytes is not None
        return m.peak_bytes

    assert peak(checkpointed) < 0.98 * peak(plain)


def test_cell_checkpointing_changes_no_result() -> None:
    from pdarts_cli.data import resolve_dataset
    from pdarts_cli.device import Precision
    from pdarts_cli.search.progressive import (
        SearchEnvironment,
        _all_candidates,
        _build_stage,
        _stage_batches,
        search_step,
    )

    def state_after_three_steps(schedule: Schedule) -> dict[str, torch.Tensor]:
        env = SearchEnvironment(
            resolve_dataset("digits"), torch.device("cpu"), Precision("cpu", None), False, "d"
        )
        candidates = _all_candidates(schedule)
        stage = _build_stage(schedule, 0, candidates, candidates, env)
        stage.network.set_skip_dropout(0.3)  # dropout inside the recomputed cells
        batches = _stage_batches(schedule, schedule.stages[0], env)
        torch.manual_seed(1)
        alphas = batches.alphas.epoch(1)
        for step, batch in enumerate(batches.weights.epoch(0)):
            search_step(schedule, stage, batch, next(alphas), env)
            if step == 2:
                break
        return stage.network.state_dict()

    plain = state_after_three_steps(one_stage())
    checkpointed = state_after_three_steps(one_stage(checkpoint_cells=True))
    assert plain.keys() == checkpointed.keys()
    assert all(torch.equal(plain[k], checkpointed[k]) for k in plain)


@pytest.mark.slow
def test_cli_json_report(tmp_path: Path) -> None:
    schedule_file = tmp_path / "one.json"
    schedule_file.write_text(schedule_json(one_stage()))
    result = runner.invoke(
        app,
        [
            "profile-memory",
            "-s",
            str(schedule_file),
            "-d",
            "digits",
            "--batch-sizes",
            "16,64",
            "--budget",
            "2GiB",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (stage,) = report["stages"]
    assert report["budget_bytes"] == 2 * GiB
    assert [m["batch_size"] for m in stage["measurements"]] == [16, 64]
    assert stage["recommended_batch"] >= 64
    assert stage["confirmation"]["peak_bytes"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "sixteen"], "cannot read 'sixteen' as a size"),
        (["--batch-sizes", "0,32"], "at least 1"),
        (["--schedule", "nope"], "unknown schedule"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["profile-memory", "--device", "cpu", *args])
    line = assert_one_error_line(result)
    assert message in line


@pytest.mark.slow
def test_a_budget_below_batch_one_is_one_line(tmp_path: Path) -> None:
    schedule_file = tmp_path / "one.json"
    schedule_file.write_text(schedule_json(one_stage()))
    result = runner.invoke(
        app,
        [
            "profile-memory",
            "-s",
            str(schedule_file),
            "--batch-sizes",
            "8,16",
            "--budget",
            "10MB",
            "--device",
            "cpu",
        ],
    )
    line = assert_one_error_line(result)
    assert "at batch 1, more than the budget" in line


@pytest.mark.slow
def test_search_batch_size_auto_records_its_choice(tmp_path: Path) -> None:
    schedule_file = tmp_path / "one.json"
    schedule_file.write_text(schedule_json(one_stage()))
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "search",
            "-d",
            "digits",
            "-s",
            str(schedule_file),
            "-o",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "auto",
            "--memory-budget",
            "1GiB",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    chosen = json.loads((out / "schedule.json").read_text())["stages"][0]["batch_size"]
    assert f"stage 1: batch size {chosen} (predicted peak" in result.output
    assert chosen != one_stage().stages[0].batch_size
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["auto_batch_size"] is True
    assert run["options"]["memory_budget_bytes"] == GiB


def test_search_batch_size_must_be_a_number_or_auto() -> None:
    result = runner.invoke(app, ["search", "-d", "digits", "--batch-size", "lots"])
    line = assert_one_error_line(result)
    assert "--batch-size takes a number or auto" in line

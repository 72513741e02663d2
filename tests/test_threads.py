"""CPU threads: ``--threads N|auto``, ``PDARTS_THREADS``, the load measurement and run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import pdarts_cli
from pdarts_cli import threads
from pdarts_cli.cli.app import app
from pdarts_cli.errors import ConfigError
from pdarts_cli.threads import (
    THREADS_ENV,
    ThreadChoice,
    auto_thread_count,
    busy_cores,
    choose_threads,
    describe_threads,
    parse_threads,
    requested_threads,
    resumed_threads,
    usable_cores,
    using_threads,
)

runner = CliRunner()


@pytest.mark.parametrize(("text", "expected"), [("auto", "auto"), (" AUTO ", "auto"), ("3", 3)])
def test_parse_threads(text: str, expected: object) -> None:
    assert parse_threads(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_parse_threads_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match="--threads must be a positive whole number or auto"):
        parse_threads(text)


def test_the_request_is_the_flag_then_the_environment_then_auto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert requested_threads(None) == 3
    assert requested_threads("auto") == "auto"
    assert requested_threads(2) == 2
    monkeypatch.delenv(THREADS_ENV)
    assert requested_threads(None) == "auto"
    monkeypatch.setenv(THREADS_ENV, "lots")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        requested_threads(None)


@pytest.mark.parametrize(
    ("cores", "busy", "expected"),
    [
        (2, 0.0, 2),  # idle: every core
        (2, 0.3, 2),  # a little background noise keeps both
        (2, 1.0, 1),  # one competing job: the other core
        (2, 2.0, 1),  # all busy: still one thread
        (4, 1.4, 3),
        (8, 5.6, 2),
        (2, None, 2),  # unknown load: torch's default
    ],
)
def test_auto_takes_the_cores_the_other_processes_leave(
    cores: int, busy: float | None, expected: int
) -> None:
    assert auto_thread_count(cores, busy) == expected


def _stat(total_busy: int, total_idle: int, cpus: int) -> str:
    # user nice system idle iowait irq softirq steal
    lines = [f"cpu  {total_busy} 0 0 {total_idle} 0 0 0 0 0 0"]
    lines += [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(cpus)]
    return "\n".join([*lines, "intr 0"]) + "\n"


def test_busy_cores_reads_the_machine_load_over_the_sampling_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stat = tmp_path / "stat"
    stat.write_text(_stat(1000, 1000, 4))
    monkeypatch.setattr(threads, "PROC_STAT", stat)
    # During the interval: 300 busy and 100 idle jiffies, i.e. 3 of the 4 cores busy.
    monkeypatch.setattr(threads.time, "sleep", lambda _: stat.write_text(_stat(1300, 1100, 4)))
    assert busy_cores() == pytest.approx(3.0)


def test_auto_measures_and_records_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    choice = choose_threads("auto")
    assert choice == ThreadChoice(threads=1, requested="auto", cores=2, busy_cores=1.0)
    assert describe_threads(choice) == "1 thread (auto: 1.0 of 2 cores busy)"
    assert choose_threads(3).to_dict() == {
        "threads": 3,
        "requested": 3,
        "cores": 2,
        "busy_cores": None,
    }


def test_torchruns_processes_on_one_machine_share_its_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert choose_threads("auto").threads == 4
    assert choose_threads(8).threads == 8  # a count asked for is a count
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert choose_threads("auto").threads == 1


def test_a_resumed_run_keeps_its_count_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV)
    assert resumed_threads(3, None).threads == 3
    assert resumed_threads(3, 2).threads == 2
    monkeypatch.setenv(THREADS_ENV, "2")
    assert resumed_threads(3, None).threads == 2


def test_using_threads_restores_the_callers_count() -> None:
    before = torch.get_num_threads()
    with using_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_a_search_computes_with_the_count_asked_for_and_records_it(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=generator)
    stage = {"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "channels": 4}
    overrides = {
        "stages": [{"cells": 3, "ops_per_edge": 8, "skip_dropout_rate": 0.0, **stage}],
        "min_weight_steps": 2,
    }
    before = torch.get_num_threads()
    data = (images, torch.arange(64) % 2)
    pdarts_cli.search(data, "quick", out_dir=tmp_path, overrides=overrides, threads=2)
    assert torch.get_num_threads() == before
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["torch_threads"] == 2
    assert run["threads"] == {
        "threads": 2,
        "requested": 2,
        "cores": usable_cores(),
        "busy_cores": None,
    }
    assert run["options"]["threads"] == 2


def test_cli_threads_are_checked_at_the_edge() -> None:
    result = runner.invoke(app, ["search", "--dataset", "digits", "--threads", "0"])
    assert result.exit_code == 2
    assert "--threads must be a positive whole number or auto" in result.output
    assert len(result.output.strip().splitlines()) == 1

"""profile-memory: sizes as people write them, the affine fit, the candidates a stage is
profiled with, and predictions that hold."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from clihelpers import assert_one_error_line
from conftest import tiny_schedule_dict
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

from pdarts_cli.cli.app import app
from pdarts_cli.cli.profile_memory import memory_report
from pdarts_cli.context import RunContext
from pdarts_cli.data import resolve_dataset
from pdarts_cli.device import Precision
from pdarts_cli.errors import PdartsError
from pdarts_cli.memory import (
    MAX_RECOMMENDED_BATCH,
    EdgeOps,
    Measurement,
    MemoryProfile,
    StageProfile,
    fit_affine,
    memory_ranking,
    parse_batch_sizes,
    parse_size,
    profile_stage,
    profiling,
    recommend,
    stage_candidates,
)
from pdarts_cli.memory.process import resident_bytes
from pdarts_cli.memory.profiling import probe_request, run_probe
from pdarts_cli.registry import op_registry
from pdarts_cli.schedule import (
    DARTS_OPS,
    Schedule,
    load_schedule,
    read_schedule_file,
    schedule_json,
    validate_schedule,
    write_schedule_file,
)
from pdarts_cli.searching import SearchOptions, autobatch, run_search
from pdarts_cli.searching.autobatch import batch_chooser
from pdarts_cli.searching.events import SearchObserver
from pdarts_cli.searching.state import RunFiles, read_resume_point

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
    every = stage_candidates(schedule, 0)
    measured = run_probe(
        probe_request(schedule, 0, 96, "digits", None, "cpu", False, every), cuda=False
    )
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
    from pdarts_cli.memory.probe import peak_rss_bytes
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
        every = stage_candidates(schedule, 0)
        m = run_probe(
            probe_request(schedule, 0, at, "digits", None, "cpu", False, every), cuda=False
        )
        assert m.peak_bytes is not None
        return m.peak_bytes

    assert peak(checkpointed) < 0.98 * peak(plain)


def test_cell_checkpointing_changes_no_result() -> None:
    from pdarts_cli.data import resolve_dataset
    from pdarts_cli.device import Precision
    from pdarts_cli.searching.data import stage_batches
    from pdarts_cli.searching.step import all_candidates, build_stage, search_step

    def state_after_three_steps(schedule: Schedule) -> dict[str, torch.Tensor]:
        env = RunContext(
            resolve_dataset("digits"), torch.device("cpu"), Precision("cpu", None), False, "d"
        )
        candidates = all_candidates(schedule)
        stage = build_stage(schedule, 0, candidates, candidates, env)
        stage.network.set_skip_dropout(0.3)  # dropout inside the recomputed cells
        batches = stage_batches(schedule, schedule.stages[0], env)
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
            "--confirm",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (stage,) = report["stages"]
    assert report["budget_bytes"] == 2 * GiB
    assert [m["batch_size"] for m in stage["measurements"]] == [16, 64]
    assert stage["largest_fitting_batch"] >= 128  # 2 GiB hold far more than the schedule's
    assert stage["recommended_batch"] == 128  # ... but the pick never exceeds it
    assert stage["confirmation"]["peak_bytes"] > 0
    assert stage["candidates"] == "all"
    assert stage["ops"] == list(DARTS_OPS)


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
    # the search runs in this process, whose memory counts against the budget too
    budget_mib = (resident_bytes() or 0) // MiB + 1024
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
            f"{budget_mib}MiB",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    chosen = json.loads((out / "schedule.json").read_text())["stages"][0]["batch_size"]
    assert f"stage 1: batch size {chosen} (schedule: 128; predicted peak" in result.output
    assert 1 <= chosen <= one_stage().stages[0].batch_size
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["auto_batch_size"] is True
    assert run["options"]["memory_budget_bytes"] == budget_mib * MiB


def test_search_batch_size_must_be_a_number_or_auto() -> None:
    result = runner.invoke(app, ["search", "-d", "digits", "--batch-size", "lots"])
    line = assert_one_error_line(result)
    assert "--batch-size takes a number" in line
    assert "auto" in line


# ---------------------------------------------------------------------------------------------
# Which candidates a stage is profiled with: its survivors during a search, else an upper bound.

CONVOLUTIONS = {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"}
LATER_OPS = ("none", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")


def three_stages(batch_size: int = 64) -> Schedule:
    """Three stages whose later ones hold a convolution on every edge: three of the four
    candidates are convolutions, so any two that an edge keeps include one. The last stage has
    four times the channels, so that it holds the search's peak. Two-node cells and one joint
    epoch per stage, without validation, keep the real search to seconds."""
    stage = {"epochs": 1, "warmup_epochs": 0, "batch_size": batch_size, "channels": 4}
    data = tiny_schedule_dict(candidate_ops=list(LATER_OPS), steps=2, valid_last_epochs=0)
    data["stages"] = [
        {"cells": 3, "ops_per_edge": 4, "skip_dropout_rate": 0.0, **stage},
        {"cells": 4, "ops_per_edge": 3, "skip_dropout_rate": 0.0, **stage},
        {"cells": 5, "ops_per_edge": 2, "skip_dropout_rate": 0.0, **stage, "channels": 16},
    ]
    return validate_schedule(data, "three stages")


def survivors(schedule: Schedule, shift: int) -> EdgeOps:
    """Per edge, a different pair of the candidates, as a search's survivors look."""
    ops = schedule.candidate_ops
    pairs = [(ops[i], ops[j]) for i in range(len(ops)) for j in range(i + 1, len(ops))]
    return tuple(pairs[(edge + shift) % len(pairs)] for edge in range(schedule.edges_per_cell))


def test_the_ranking_puts_convolutions_above_none_pools_and_skip() -> None:
    ranking = memory_ranking(DARTS_OPS)
    assert sorted(ranking) == sorted(DARTS_OPS)
    assert set(ranking[:4]) == CONVOLUTIONS
    assert ranking[-1] == "none"
    # two stacked blocks save twice what one saves; equal figures keep the canonical order
    assert ranking[:2] == ("sep_conv_3x3", "sep_conv_5x5")
    memory_ranking.cache_clear()
    assert memory_ranking(tuple(reversed(DARTS_OPS)))[:2] == ("sep_conv_5x5", "sep_conv_3x3")
    assert memory_ranking(DARTS_OPS) == ranking


def hog(channels: int, stride: int, affine: bool) -> nn.Module:
    """Eight ReLU-convolution pairs: saves more than any DARTS op."""
    layers = [nn.Conv2d(channels, channels, 3, stride, 1)]
    for _ in range(8):
        layers += [nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1)]
    return nn.Sequential(*layers)


def test_the_ranking_measures_plugin_ops_too() -> None:
    op_registry().register("hog", hog)
    try:
        assert memory_ranking(("none", *DARTS_OPS[1:], "hog"))[0] == "hog"
    finally:
        op_registry().unregister("hog")


def test_without_survivors_later_stages_hold_the_hungriest_candidates() -> None:
    schedule = three_stages()
    every = tuple(LATER_OPS for _ in range(schedule.edges_per_cell))
    first = stage_candidates(schedule, 0)
    assert (first.source, first.normal, first.reduce, first.ops) == ("all", every, every, LATER_OPS)
    last = stage_candidates(schedule, 2)
    assert last.source == "upper bound"
    assert last.ops == ("sep_conv_3x3", "sep_conv_5x5")
    assert set(last.normal) == set(last.reduce) == {last.ops}
    normal, reduce = survivors(schedule, 0), survivors(schedule, 1)
    given = stage_candidates(schedule, 2, normal, reduce)
    assert (given.source, given.normal, given.reduce, given.ops) == (
        "survivors",
        normal,
        reduce,
        LATER_OPS,
    )
    assert stage_candidates(schedule, 1, every, every).source == "all"
    with pytest.raises(ValueError, match="neither"):
        stage_candidates(schedule, 2, normal)


def test_batch_size_auto_profiles_a_stage_with_its_survivors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    requests: list[dict[str, object]] = []

    def probe(request: dict[str, object], cuda: bool) -> Measurement:
        requests.append(request)
        batch = int(request["batch_size"])  # type: ignore[call-overload]
        return Measurement(batch, (500 + batch) * MiB, (500 + batch) * MiB, images_per_half=700)

    monkeypatch.setattr(profiling, "run_probe", probe)
    monkeypatch.setattr(autobatch, "search_resident_bytes", lambda: None)
    cpu = torch.device("cpu")
    env = RunContext(resolve_dataset("digits"), cpu, Precision("cpu", None), False, "digits")
    options = SearchOptions(
        dataset="digits", auto_batch_size=True, memory_budget_bytes=GiB, raise_batch=True
    )
    choose = batch_chooser(options, env, RunFiles(tmp_path), SearchObserver())
    assert choose is not None
    schedule = three_stages()
    normal, reduce = survivors(schedule, 0), survivors(schedule, 3)
    chosen = choose(schedule, 2, normal, reduce)
    assert len(requests) == 3  # two batch sizes and the idle child
    for request in requests:
        assert request["stage"] == 2
        assert request["normal"] == [list(edge) for edge in normal]
        assert request["reduce"] == [list(edge) for edge in reduce]
    batch = chosen.stages[2].batch_size
    assert batch in (523, 524)  # 1 GiB = 500 MiB + 524 images x 1 MiB, less the fit's rounding
    recorded = json.loads((tmp_path / "schedule.json").read_text())
    assert recorded["stages"][2]["batch_size"] == batch


def _affine_probe(requests: list[dict[str, object]]) -> Callable[..., Measurement]:
    """A probe whose peak is 500 MiB + 1 MiB per image, on a 700-image weight half."""

    def probe(request: dict[str, object], cuda: bool) -> Measurement:
        requests.append(request)
        batch = int(request["batch_size"])  # type: ignore[call-overload]
        return Measurement(batch, (500 + batch) * MiB, (500 + batch) * MiB, images_per_half=700)

    return probe


def _chooser(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, budget_bytes: int, **options: object
) -> tuple[Callable[..., Schedule], list[dict[str, object]]]:
    requests: list[dict[str, object]] = []
    monkeypatch.setattr(profiling, "run_probe", _affine_probe(requests))
    monkeypatch.setattr(autobatch, "search_resident_bytes", lambda: None)
    cpu = torch.device("cpu")
    env = RunContext(resolve_dataset("digits"), cpu, Precision("cpu", None), False, "digits")
    search_options = SearchOptions(
        dataset="digits", auto_batch_size=True, memory_budget_bytes=budget_bytes, **options
    )
    choose = batch_chooser(search_options, env, RunFiles(tmp_path), SearchObserver())
    assert choose is not None
    return choose, requests


def test_auto_never_raises_the_schedules_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    choose, requests = _chooser(monkeypatch, tmp_path, GiB)  # 1 GiB would hold 524
    schedule = three_stages(batch_size=64)
    candidates = survivors(schedule, 0)
    chosen = choose(schedule, 2, candidates, candidates)
    assert chosen.stages[2].batch_size == 64
    assert chosen.stages[2].lr_scale == 1.0
    assert [r["batch_size"] for r in requests[:2]] == [16, 64]  # a quarter and the schedule's


def test_auto_lowers_the_batch_to_fit_and_keeps_the_learning_rates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    choose, _ = _chooser(monkeypatch, tmp_path, 540 * MiB)  # holds 40 images
    schedule = three_stages(batch_size=64)
    candidates = survivors(schedule, 0)
    chosen = choose(schedule, 2, candidates, candidates)
    assert chosen.stages[2].batch_size in (39, 40)
    assert chosen.stages[2].lr_scale == 1.0


def test_auto_max_raises_the_batch_and_scales_the_learning_rates_linearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    choose, _ = _chooser(monkeypatch, tmp_path, 628 * MiB, raise_batch=True)  # holds 128
    schedule = three_stages(batch_size=64)
    candidates = survivors(schedule, 0)
    chosen = choose(schedule, 2, candidates, candidates)
    batch = chosen.stages[2].batch_size
    assert batch in (127, 128)
    assert chosen.stages[2].lr_scale == pytest.approx(batch / 64)
    assert chosen.stages[:2] == schedule.stages[:2]


def test_auto_max_keeps_enough_weight_steps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    choose, _ = _chooser(monkeypatch, tmp_path, 2 * GiB, raise_batch=True)
    schedule = three_stages(batch_size=16).with_overrides(min_weight_steps=20)
    candidates = survivors(schedule, 0)
    chosen = choose(schedule, 2, candidates, candidates)
    assert chosen.stages[2].batch_size == 716 // 20  # digits: 716 images in the weight half


def test_the_scaled_learning_rate_is_what_a_stage_trains_with(tmp_path: Path) -> None:
    schedule = one_stage()
    stages = (schedule.stages[0].model_copy(update={"lr_scale": 2.0}),)
    scaled = schedule.model_copy(update={"stages": stages})
    run_search(scaled, SearchOptions(dataset="digits", device="cpu"), tmp_path / "r")
    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["lr"] == pytest.approx(2 * schedule.weights.lr)


def fake_profile(budget_bytes: int, peak_bytes: int, sizes: list[int]) -> MemoryProfile:
    schedule = load_schedule("paper-cifar10")
    stages = []
    for index, config in enumerate(schedule.stages):
        runs = tuple(Measurement(b, peak_bytes * b // sizes[-1]) for b in sizes)
        stages.append(
            StageProfile(
                stage=index + 1,
                cells=config.cells,
                ops_per_edge=config.ops_per_edge,
                channels=config.channels,
                measurements=runs,
                idle_bytes=700 * MiB,
                slope_bytes=peak_bytes / sizes[-1],
                intercept_bytes=0.0,
                recommended_batch=config.batch_size,
                confirmation=Measurement(config.batch_size, int(0.98 * budget_bytes)),
                candidates=stage_candidates(schedule, index),
                largest_fitting_batch=int(budget_bytes * sizes[-1] / peak_bytes),
            )
        )
    device, metric = "cuda:0", "torch.cuda.max_memory_reserved"
    return MemoryProfile(schedule.name, device, metric, budget_bytes, True, tuple(stages))


@pytest.mark.parametrize(
    ("budget_bytes", "peak_bytes"), [(9 * GiB, 12 * GiB), (130 * GiB, 140 * GiB)]
)
def test_the_table_fits_80_columns_and_says_which_candidates(
    budget_bytes: int, peak_bytes: int
) -> None:
    console = Console(width=80, record=True, color_system=None, highlight=False)
    console.print(memory_report(fake_profile(budget_bytes, peak_bytes, [16, 32, 64])))
    text = console.export_text()
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= 80
    assert "*" in text  # the largest batch is over the budget
    assert "stage 1: all 8 candidates on every edge" in text
    assert "stages 2-3: the k most memory-hungry candidates on every edge (upper bound)" in text
    assert "  3: sep_conv_3x3, sep_conv_5x5, dil_conv_3x3\n" in text


def test_the_json_report_names_the_candidates() -> None:
    report = fake_profile(GiB, GiB, [16, 32]).to_dict()
    first, second, _ = report["stages"]
    assert (first["candidates"], first["ops"]) == ("all", list(DARTS_OPS))
    assert second["candidates"] == "upper bound"
    assert set(second["ops"]) == CONVOLUTIONS | {"skip_connect"}
    assert "normal" not in second  # the same ops on every edge: ``ops`` says it all


# The search runs in a child, through the library, and reports its own peak resident memory.
LIBRARY_SEARCH_PEAK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pdarts_cli.memory.probe import peak_rss_bytes
    from pdarts_cli.schedule import read_schedule_file
    from pdarts_cli.searching import SearchOptions, run_search
    schedule = read_schedule_file(Path(sys.argv[1]))
    run_search(schedule, SearchOptions(dataset="digits", device="cpu"), sys.argv[2])
    print(peak_rss_bytes())
    """
)


@pytest.mark.slow
def test_a_three_stage_search_peaks_within_15_percent_of_its_last_stage_profiled_with_survivors(
    tmp_path: Path,
) -> None:
    at = 256
    schedule = three_stages(at)
    schedule_file, run = tmp_path / "three.json", tmp_path / "run"
    schedule_file.write_text(schedule_json(schedule))
    done = subprocess.run(
        [sys.executable, "-c", LIBRARY_SEARCH_PEAK, str(schedule_file), str(run)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = int(done.stdout.strip())
    held = read_resume_point(run)  # the complete run's checkpoint: the last stage's candidates
    assert held is not None
    assert all(CONVOLUTIONS & set(edge) for edge in held.normal + held.reduce)
    profile = profile_stage(
        schedule,
        2,
        [32, 96],
        64 * GiB,
        device="cpu",
        dataset="digits",
        confirm=False,
        normal=held.normal,
        reduce=held.reduce,
    )
    assert profile.candidates.source == "survivors"
    assert abs(profile.predict(at) - peak) <= 0.15 * peak


# ---------------------------------------------------------------------------------------------
# What profile-memory hands the search: picks per stage, a schedule file, the command to run.

TABLE_SNAPSHOT = Path(__file__).parent / "snapshots" / "profile-table-80.txt"


def test_the_table_at_80_columns_matches_its_snapshot() -> None:
    """The layout is an interface a user reads: change it on purpose only.

    After an intended change: PDARTS_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_memory.py
    -k snapshot, and commit the file.
    """
    console = Console(width=80, record=True, color_system=None, highlight=False)
    console.print(memory_report(fake_profile(9 * GiB, 12 * GiB, [16, 32, 64, 128])))
    text = console.export_text()
    if os.environ.get("PDARTS_UPDATE_SNAPSHOTS") == "1":
        TABLE_SNAPSHOT.write_text(text, encoding="utf-8")
    assert "…" not in text  # no figure cut
    assert max(map(len, text.splitlines())) <= 80
    assert text == TABLE_SNAPSHOT.read_text(encoding="utf-8")


def test_profile_memory_writes_the_schedule_and_prints_the_search_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(profiling, "run_probe", _affine_probe([]))
    written = tmp_path / "fitted.json"
    args = ["profile-memory", "-s", "quick", "-d", "digits", "--batch-sizes", "8,16"]
    result = runner.invoke(
        app,
        [*args, "--budget", "520MiB", "--device", "cpu", "--write-schedule", str(written)],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    picks = [stage.batch_size for stage in read_schedule_file(written).stages]
    assert picks in ([19] * 3, [20] * 3)  # 520 MiB = 500 MiB + 20 images, below quick's 32
    assert read_schedule_file(written).model_dump(exclude={"stages"}) == (
        load_schedule("quick").model_dump(exclude={"stages"})
    )
    assert f"pdarts search --dataset digits --schedule {written}" in result.output


def test_profile_memory_prints_per_stage_batch_sizes_without_a_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(profiling, "run_probe", _affine_probe([]))
    args = ["profile-memory", "-s", "quick", "-d", "digits", "--batch-sizes", "8,16"]
    result = runner.invoke(app, [*args, "--budget", "2GiB", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "pdarts search --dataset digits --schedule quick --batch-size 32,32,32" in result.output
    assert "larger batches fit (stage 1 up to 700" in result.output.replace("\n", " ")


def test_write_schedule_wants_a_json_file(tmp_path: Path) -> None:
    with pytest.raises(PdartsError, match=r"name the file \.json"):
        write_schedule_file(load_schedule("quick"), tmp_path / "s.toml")


def test_a_confirmation_over_the_budget_is_marked() -> None:
    """A pick that measured 2,051 MiB against a 2,048 MiB budget must not pass unflagged."""
    profile = fake_profile(2 * GiB, GiB, [16, 32])  # every measurement within the budget
    over = Measurement(96, 2 * GiB + 3 * MiB)
    stages = tuple(dataclasses.replace(s, confirmation=over) for s in profile.stages)
    console = Console(width=80, record=True, color_system=None, highlight=False)
    console.print(memory_report(dataclasses.replace(profile, stages=stages)))
    text = console.export_text()
    assert "/2,051*" in text
    assert "* over the budget" in text


def test_the_cpu_default_budget_is_the_ram_available_now_less_the_margin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdarts_cli.memory import fit

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    1000000 kB\n")
    monkeypatch.setattr(fit, "MEMINFO", meminfo)
    assert fit.available_ram_bytes() == 1000000 * 1024
    assert fit.device_budget("cpu") == int(1000000 * 1024 * (1 - fit.SAFETY_MARGIN))
    monkeypatch.setattr(fit, "MEMINFO", tmp_path / "absent")
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert fit.available_ram_bytes() == total


@pytest.mark.parametrize("confirm", [False, True])
def test_profile_memory_reports_every_child_run_with_an_eta(
    monkeypatch: pytest.MonkeyPatch, confirm: bool
) -> None:
    from pdarts_cli.memory import ProbeReport

    monkeypatch.setattr(profiling, "run_probe", _affine_probe([]))
    reports: list[ProbeReport] = []
    schedule = load_schedule("quick")
    profiling.profile_memory(
        schedule, [8, 16], 2 * GiB, "cpu", "digits", report=reports.append, confirm=confirm
    )
    # the idle baseline once, then per stage 2 batches and, when asked, the pick
    per_stage = ["measure", "measure", *(["confirm"] if confirm else [])]
    assert [r.kind for r in reports] == ["idle", *per_stage * len(schedule.stages)]
    assert [r.stage for r in reports] == [1, *(k for k in (1, 2, 3) for _ in per_stage)]
    total = 1 + 3 * len(per_stage)
    assert [r.done for r in reports] == list(range(1, total + 1))
    assert {r.total for r in reports} == {total}
    assert reports[-1].eta_seconds == 0
    assert all(r.eta_seconds >= 0 for r in reports)


def test_the_cpu_measures_small_batches_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[dict[str, object]] = []
    monkeypatch.setattr(profiling, "run_probe", _affine_probe(requests))
    result = profiling.profile_memory(load_schedule("quick"), None, 2 * GiB, "cpu", "digits")
    measured = [r["batch_size"] for r in requests if not r["idle"]]
    assert measured == [4, 8, 16] * 3
    assert all(stage.confirmation is None for stage in result.stages)


def test_what_the_search_process_holds_counts_against_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """500 MiB + 1 MiB per image in a child whose idle baseline is 504 MiB; a search process
    that holds 300 MiB more than that leaves 300 fewer images in a 1,000 MiB budget."""
    monkeypatch.setattr(profiling, "run_probe", _affine_probe([]))
    schedule = one_stage()

    def pick(resident_bytes: int | None) -> StageProfile:
        return profile_stage(
            schedule, 0, [4, 8, 16], 1000 * MiB, "cpu", "digits", resident_bytes=resident_bytes
        )

    alone, beside = pick(None), pick(804 * MiB)
    assert alone.recommended_batch == 500
    assert beside.overhead_bytes == 300 * MiB
    assert beside.largest_fitting_batch == 200
    assert beside.predict(200) == pytest.approx(1000 * MiB)
    assert pick(100 * MiB).overhead_bytes == 0  # a smaller process is no credit


def test_a_cpu_probe_adds_the_optimizer_state_of_a_second_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    child = {"peak_rss_bytes": 900 * MiB, "optimizer_state_bytes": 7 * MiB, "batch_size": 8}
    done = subprocess.CompletedProcess([], 0, stdout=json.dumps(child) + "\n", stderr="")
    monkeypatch.setattr(profiling.subprocess, "run", lambda *a, **k: done)
    measured = run_probe({"batch_size": 8}, cuda=False)
    assert measured.peak_bytes == 907 * MiB
    assert measured.rss_bytes == 900 * MiB
    from pdarts_cli.memory.probe import optimizer_state_bytes

    weights, alphas = [torch.zeros(10, 3)], [torch.zeros(14, 8), torch.zeros(14, 8)]
    assert optimizer_state_bytes(weights, alphas) == 4 * (30 + 2 * 224)


def test_each_child_run_is_one_line_with_the_runs_left() -> None:
    from pdarts_cli.cli.profile_memory import probe_line
    from pdarts_cli.memory import ProbeReport

    measured = Measurement(8, 508 * MiB, 508 * MiB)
    line = probe_line(ProbeReport(1, "measure", measured, 9.14, 1, 12, 100.6))
    assert line == "stage 1, batch 8: 508 MiB in 9.1 s (1 of 12, about 1 min 41 s left)"
    confirm = ProbeReport(3, "confirm", Measurement(32, None), 2.0, 12, 12, 0.0)
    assert probe_line(confirm) == (
        "stage 3, batch 32, confirming the pick: out of memory in 2.0 s (12 of 12)"
    )


def test_progress_stays_off_a_pipe_so_an_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(profiling, "run_probe", _affine_probe([]))
    args = ["profile-memory", "-s", "quick", "-d", "digits", "--batch-sizes", "8,16"]
    result = runner.invoke(app, [*args, "--budget", "2GiB", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "1 of 12" not in result.output

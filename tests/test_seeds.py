"""`pdarts search --seeds`: one run directory per seed, stability.json, the report, resume,
the refusals, and the one-seed-per-GPU path (its child commands and process pool) on the CPU."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from clihelpers import assert_one_error_line
from conftest import tiny_schedule_dict
from typer.testing import CliRunner

from pdarts_cli.cli.app import app
from pdarts_cli.errors import ArtifactError
from pdarts_cli.genotype import Genotype, genotype_json, read_genotype_file
from pdarts_cli.genotype.stability import (
    SeedOutcome,
    Stability,
    read_stability,
    stability_from_dict,
    stability_to_dict,
)
from pdarts_cli.schedule import Schedule, read_schedule_file, validate_schedule
from pdarts_cli.searching import SearchObserver, SearchOptions, resolve_for_dataset, seed_processes
from pdarts_cli.searching.seed_processes import (
    CHILD_FLAGS,
    ChildJob,
    SeedsFailedError,
    gpu_slots,
    resume_command,
    run_children,
    start_command,
    with_shared_cores,
)
from pdarts_cli.searching.seeds import seed_action
from pdarts_cli.searching.state import read_resume_point
from pdarts_cli.topology import Edge

runner = CliRunner()
WIDE = {"COLUMNS": "200"}  # keep table rows on one line

SEED_RUN_FILES = {
    "run.json",
    "schedule.json",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "stage-1.arch.json",
    "stage-1.safetensors",
    "final.arch.json",
    "genotype.json",
    "genotype-unrefined.json",
}


def tiny_seeds_schedule() -> dict[str, Any]:
    """One epoch of one stage, 2 nodes and 3 ops per edge: a search in under a second."""
    data = tiny_schedule_dict(
        name="tiny-seeds",
        steps=2,
        candidate_ops=["max_pool_3x3", "skip_connect", "sep_conv_3x3"],
    )
    stage = {**data["stages"][0], "ops_per_edge": 3, "epochs": 1, "warmup_epochs": 0}
    return {**data, "stages": [stage]}


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("seeds")
    schedule = root / "tiny.json"
    schedule.write_text(json.dumps(tiny_seeds_schedule()))
    out = root / "run"
    args = ["search", "-d", "digits", "-s", str(schedule), "--seeds", "0,1", "-o", str(out)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    return out, result.output


def edges_of(genotype: Genotype, cell_type: str) -> dict[str, str]:
    """{"input->node": op}, worked out here from the genotype's pairs (node k is 2 + k // 2)."""
    return {f"{i}->{2 + k // 2}": op for k, (op, i) in enumerate(genotype.cell(cell_type))}


def last_valid_accuracy(run_dir: Path) -> float:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return float(json.loads(lines[-1])["valid_accuracy"])


# ---------------------------------------------------------------------------------------------
# a two-seed run end to end


def test_each_seed_is_a_complete_search_run(seeds_run: tuple[Path, str]) -> None:
    out, _ = seeds_run
    assert {p.name for p in out.iterdir()} == {
        "run.json",
        "schedule.json",
        "seed-0",
        "seed-1",
        "stability.json",
    }
    record = json.loads((out / "run.json").read_text())
    assert (record["kind"], record["seeds"], record["gpus"]) == ("seeds", [0, 1], None)
    assert record["options"]["dataset"] == "digits"
    base = resolve_for_dataset(validate_schedule(tiny_seeds_schedule(), "t"), "digits")
    assert read_schedule_file(out / "schedule.json") == base
    for seed in (0, 1):
        run_dir = out / f"seed-{seed}"
        assert {p.name for p in run_dir.iterdir()} == SEED_RUN_FILES
        assert json.loads((run_dir / "run.json").read_text())["kind"] == "search"
        assert read_schedule_file(run_dir / "schedule.json") == base.with_overrides(seed=seed)
        point = read_resume_point(run_dir)
        assert point is not None
        assert point.complete


def test_stability_json_agrees_with_the_seeds_genotypes(seeds_run: tuple[Path, str]) -> None:
    out, _ = seeds_run
    data = json.loads((out / "stability.json").read_text())
    assert data["format"] == "pdarts-stability/1"
    assert data["seeds"] == [0, 1]
    genotypes = [read_genotype_file(out / f"seed-{k}" / "genotype.json") for k in (0, 1)]
    for k, run in enumerate(data["runs"]):
        assert run["genotype"] == json.loads(genotype_json(genotypes[k]))
        assert run["final_valid_accuracy"] == last_valid_accuracy(out / f"seed-{k}")
        assert run["skip_connects"] == {
            cell: genotypes[k].count("skip_connect", cell) for cell in ("normal", "reduce")
        }
    for cell in ("normal", "reduce"):
        edges = [edges_of(g, cell) for g in genotypes]
        rows = [row for row in data["edges"] if row["cell"] == cell]
        assert {row["edge"] for row in rows} == set(edges[0]) | set(edges[1])
        for row in rows:
            assert row["choices"] == [e.get(row["edge"]) for e in edges]
            assert row["unanimous"] == (edges[0].get(row["edge"]) == edges[1].get(row["edge"]))
        unanimous = sum(row["unanimous"] for row in rows)
        assert data["agreement"][cell] == {"unanimous": unanimous, "edges": len(rows)}
    same = all(edges_of(genotypes[0], c) == edges_of(genotypes[1], c) for c in ("normal", "reduce"))
    assert data["identical"] == same
    accuracies = [run["final_valid_accuracy"] for run in data["runs"]]
    spread = data["final_valid_accuracy"]
    assert spread["mean"] == pytest.approx(sum(accuracies) / 2)
    assert (spread["min"], spread["max"], spread["count"]) == (min(accuracies), max(accuracies), 2)


def test_the_report_names_both_seeds(seeds_run: tuple[Path, str]) -> None:
    out, output = seeds_run
    assert f"stability across seeds 0, 1 ({out / 'stability.json'})" in output
    assert "seed 0 (1 of 2): searching in" in output
    assert "seed 1 (2 of 2): searching in" in output
    for seed in (0, 1):
        genotype = read_genotype_file(out / f"seed-{seed}" / "genotype.json")
        assert f"seed {seed}: {genotype.to_darts()}" in output
    assert "final search accuracy (valid-acc of the last epoch) over 2 seeds: mean" in output
    assert "normal cell:" in output
    assert "edges alike in every seed" in output


@pytest.mark.parametrize("target", ["stability.json", ""])
def test_genotype_diff_shows_the_seeds_compared(seeds_run: tuple[Path, str], target: str) -> None:
    out, _ = seeds_run
    result = runner.invoke(app, ["genotype", "diff", str(out / target)], env=WIDE)
    assert result.exit_code == 0, result.output
    stability = read_stability(out)
    assert "stability across seeds 0, 1" in result.output
    for outcome in stability.seeds:
        assert f"seed {outcome.seed}: {outcome.genotype.to_darts()}" in result.output
    first = stability.edges[0]
    row = next(line for line in result.output.splitlines() if f" {first.edge.label} " in line)
    assert all((choice or "-") in row for choice in first.choices)
    assert ("all" if first.unanimous else "1/2") in row


# ---------------------------------------------------------------------------------------------
# resume


def test_resume_starts_a_seed_never_started_and_leaves_a_finished_one(
    seeds_run: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = seeds_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "seed-1")
    (copy / "stability.json").unlink()
    finished = {p.name: p.read_bytes() for p in (copy / "seed-0").iterdir()}
    result = runner.invoke(app, ["search", "--resume", str(copy), "--quiet"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in (copy / "seed-0").iterdir()} == finished
    assert {p.name for p in (copy / "seed-1").iterdir()} == SEED_RUN_FILES
    for name in ("seed-1/genotype.json", "stability.json"):  # seed 1 repeats bit for bit
        assert (copy / name).read_text() == (out / name).read_text()
    # --quiet: each seed's genotype on a line, in the order of the seeds
    expected = [read_genotype_file(out / f"seed-{k}" / "genotype.json").to_darts() for k in (0, 1)]
    assert result.output.splitlines() == expected


def test_a_resumed_seeds_run_finishes_resumes_or_starts_each_seed(
    seeds_run: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = seeds_run
    shutil.copytree(out / "seed-0", tmp_path / "finished")
    killed_early = tmp_path / "killed"  # killed before its first checkpoint
    killed_early.mkdir()
    for name in ("run.json", "schedule.json"):
        shutil.copy(out / "seed-1" / name, killed_early / name)
    (tmp_path / "empty").mkdir()  # killed between creating the folder and run.json
    assert seed_action(tmp_path / "finished") == "finished"
    assert seed_action(killed_early) == "resume"
    assert seed_action(tmp_path / "empty") == "start"
    assert seed_action(tmp_path / "missing") == "start"


# ---------------------------------------------------------------------------------------------
# refusals


NEW_RUN = ["-d", "digits", "-o", "{out}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*NEW_RUN, "--seeds", "0,1", "--nproc", "2"], "--seeds cannot be combined with --nproc"),
        ([*NEW_RUN, "--seeds", "0,1", "--seed", "3"], "--seeds cannot be combined with --seed"),
        (
            [*NEW_RUN, "--seeds", "0,x"],
            "--seeds takes seeds separated by commas (0,1,2), got '0,x'",
        ),
        (
            [*NEW_RUN, "--seeds", "4"],
            "--seeds: give at least two seeds to compare; for one, use --seed",
        ),
        ([*NEW_RUN, "--seeds", "1,2,1"], "--seeds: seed 1 is given twice"),
        ([*NEW_RUN, "--seeds", "0,-1"], "--seeds: seeds are whole numbers >= 0, got [0, -1]"),
        (["--resume", "{out}", "--seeds", "0,1"], "--seeds cannot be combined with --resume"),
    ],
)
def test_refusals_are_one_line_and_leave_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    args = [a.replace("{out}", str(out)) for a in args]
    result = runner.invoke(app, ["search", *args], env=WIDE)
    assert message in assert_one_error_line(result)
    assert not out.exists()


def test_a_first_seed_refused_before_it_started_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", "-d", "digits", "--seeds", "0,1", "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"seed 0 (1 of 2): searching in {out / 'seed-0'}",
        "error: stage 1: batch 96 gives 8 weight steps per epoch on 716 images, fewer than 20; "
        "use --batch-size 35 or less, or --force-batch to insist",
    ]
    assert not out.exists()  # the same --out can be given again


# ---------------------------------------------------------------------------------------------
# the agreement, worked out by hand

S3, S5, D3, SKIP, MAX, AVG = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "skip_connect",
    "max_pool_3x3",
    "avg_pool_3x3",
)


def two_node_genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> Genotype:
    return Genotype(tuple(normal), (2, 3), tuple(reduce), (2, 3))


# node 2 takes inputs 0, 1; node 3 takes 0, 1, 2. G2 lists some pairs in the other order.
G1 = two_node_genotype(
    [(S3, 0), (SKIP, 1), (S3, 0), (S3, 2)], [(MAX, 0), (MAX, 1), (SKIP, 2), (MAX, 1)]
)
G2 = two_node_genotype(
    [(SKIP, 1), (S3, 0), (D3, 1), (S3, 2)], [(MAX, 1), (MAX, 0), (MAX, 1), (SKIP, 2)]
)
G3 = two_node_genotype(
    [(S3, 0), (S5, 1), (SKIP, 0), (SKIP, 2)], [(MAX, 0), (AVG, 1), (SKIP, 2), (MAX, 1)]
)


def three_seeds() -> Stability:
    outcomes = zip((7, 8, 9), (G1, G2, G3), (0.5, 0.7, None))
    return Stability(tuple(SeedOutcome(s, g, a, f"seed-{s}") for s, g, a in outcomes))


def test_agreement_per_edge_of_three_hand_made_genotypes() -> None:
    rows = {(r.cell_type, r.edge): r for r in three_seeds().edges}
    expected = {
        ("normal", Edge(0, 2)): ((S3, S3, S3), S3, 3),
        ("normal", Edge(1, 2)): ((SKIP, SKIP, S5), SKIP, 2),
        ("normal", Edge(0, 3)): ((S3, None, SKIP), S3, 1),  # a three-way tie: the first seed's
        ("normal", Edge(1, 3)): ((None, D3, None), None, 2),  # not keeping it is a choice
        ("normal", Edge(2, 3)): ((S3, S3, SKIP), S3, 2),
        ("reduce", Edge(0, 2)): ((MAX, MAX, MAX), MAX, 3),
        ("reduce", Edge(1, 2)): ((MAX, MAX, AVG), MAX, 2),
        ("reduce", Edge(1, 3)): ((MAX, MAX, MAX), MAX, 3),
        ("reduce", Edge(2, 3)): ((SKIP, SKIP, SKIP), SKIP, 3),
    }
    assert list(rows) == list(expected)  # cell by cell, in the order of a cell's alphas
    for key, (choices, majority, agreeing) in expected.items():
        assert (rows[key].choices, rows[key].majority, rows[key].agreeing) == (
            choices,
            majority,
            agreeing,
        )
        assert rows[key].unanimous == (agreeing == 3)


def test_summary_of_three_hand_made_genotypes() -> None:
    stability = three_seeds()
    assert stability.unanimous_edges("normal") == (1, 5)
    assert stability.unanimous_edges("reduce") == (3, 4)
    assert not stability.identical
    assert [s.skip_connects for s in stability.seeds] == [
        {"normal": 1, "reduce": 1},
        {"normal": 1, "reduce": 1},
        {"normal": 2, "reduce": 1},
    ]
    spread = stability.spread
    assert spread is not None
    assert (spread.mean, spread.min, spread.max, spread.count) == pytest.approx((0.6, 0.5, 0.7, 2))
    assert spread.std == pytest.approx(0.2 / 2**0.5)  # sample standard deviation


def test_the_order_of_a_nodes_pairs_does_not_count() -> None:
    reordered = two_node_genotype([(SKIP, 1), (S3, 0), (S3, 2), (S3, 0)], list(G1.reduce))
    same = Stability((SeedOutcome(0, G1, None), SeedOutcome(1, reordered, None)))
    assert same.identical
    assert same.spread is None
    other_concat = Genotype(G1.normal, (3,), G1.reduce, G1.reduce_concat)
    assert not Stability((SeedOutcome(0, G1, None), SeedOutcome(1, other_concat, None))).identical


def test_stability_json_reads_back(tmp_path: Path) -> None:
    stability = three_seeds()
    data = stability_to_dict(stability)
    assert stability_from_dict(json.loads(json.dumps(data)), "t") == stability
    assert data["agreement"] == {
        "normal": {"unanimous": 1, "edges": 5},
        "reduce": {"unanimous": 3, "edges": 4},
    }
    genotype_file = tmp_path / "genotype.json"
    genotype_file.write_text(genotype_json(G1))
    with pytest.raises(ArtifactError, match="format must be 'pdarts-stability/1'"):
        read_stability(genotype_file)
    with pytest.raises(ArtifactError, match=r"holds no stability\.json"):
        read_stability(tmp_path)


# ---------------------------------------------------------------------------------------------
# one seed per GPU: what runs in the child processes, checked on the CPU


def test_children_side_by_side_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdarts_cli.searching import seed_processes

    monkeypatch.setattr(seed_processes, "usable_cores", lambda: 16)
    monkeypatch.delenv("PDARTS_THREADS", raising=False)
    options = SearchOptions(dataset="digits")
    assert with_shared_cores(options, 4).threads == 4
    assert with_shared_cores(options, 32).threads == 1
    given = SearchOptions(dataset="digits", threads=6)
    assert with_shared_cores(given, 4).threads == 6  # a count asked for is kept
    monkeypatch.setenv("PDARTS_THREADS", "2")
    assert with_shared_cores(options, 4).threads is None  # the children read the variable


def test_every_option_reaches_a_child() -> None:
    assert set(CHILD_FLAGS) == set(SearchOptions.model_fields)


def test_a_childs_search_is_the_seed_this_process_would_run(
    seeds_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pdarts_cli.searching

    calls: list[tuple[Schedule, SearchOptions, Path]] = []
    monkeypatch.setattr(
        pdarts_cli.searching,
        "run_search",
        lambda schedule, options, out, **_: calls.append((schedule, options, out)),
    )
    out, _ = seeds_run
    options = SearchOptions(
        dataset="digits",
        data_dir=tmp_path / "data",
        download=True,
        image_size=16,
        threads=3,
        auto_batch_size=True,
        raise_batch=True,
        memory_budget_bytes=12345678,
        force_batch=True,
    )
    command = start_command(out / "schedule.json", 5, tmp_path / "seed-5", options)
    assert command[:3] == (sys.executable, "-m", "pdarts_cli")
    runner.invoke(app, list(command[3:]))  # fails after run_search: its result is None
    [(schedule, child_options, child_out)] = calls
    assert schedule == read_schedule_file(out / "schedule.json").with_overrides(seed=5)
    assert child_options == options.model_copy(update={"device": "cuda"})
    assert child_out == tmp_path / "seed-5"


def test_a_childs_resume_keeps_what_was_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pdarts_cli.searching

    calls: list[tuple[Path, dict[str, Any]]] = []
    monkeypatch.setattr(
        pdarts_cli.searching,
        "resume_search",
        lambda run_dir, **moved: calls.append((run_dir, moved)),
    )
    command = resume_command(tmp_path / "seed-3", tmp_path / "data", "auto")
    runner.invoke(app, list(command[3:]))
    [(run_dir, moved)] = calls
    assert run_dir == tmp_path / "seed-3"
    assert (moved["device"], moved["data_dir"], moved["threads"]) == (
        "cuda",
        tmp_path / "data",
        "auto",
    )


def test_gpu_slots_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, GPU-5a")
    assert gpu_slots("auto") == ["3", "GPU-5a"]
    assert gpu_slots("cuda") == ["3", "GPU-5a"]
    assert gpu_slots("cpu") == gpu_slots("cuda:1") == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_slots("auto") == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_slots("auto") == []  # one GPU: the seeds run one after another, in-process


CHILD = textwrap.dedent(
    """
    import os, sys, time
    print("gpu", os.environ["CUDA_VISIBLE_DEVICES"], "start", time.monotonic(), flush=True)
    time.sleep(0.2)
    print("end", time.monotonic(), flush=True)
    if sys.argv[1] != "0":
        print("error: seed", sys.argv[1], "went wrong")
    sys.exit(int(sys.argv[1]))
    """
)


def fake_job(tmp_path: Path, seed: int, code: int = 0) -> ChildJob:
    return ChildJob(seed, (sys.executable, "-c", CHILD, str(code)), tmp_path / f"seed-{seed}.log")


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed_processes, "POLL_SECONDS", 0.02)


def test_children_run_one_per_gpu_at_a_time(tmp_path: Path, fast_polls: None) -> None:
    jobs = [fake_job(tmp_path, seed) for seed in range(3)]
    run_children(jobs, ["a", "b"], SearchObserver())
    spans = []
    for job in jobs:
        first, second = job.log.read_text().split("\n")[:2]
        _, gpu, _, start = first.split()
        spans.append((gpu, float(start), float(second.split()[1])))
    assert {gpu for gpu, _, _ in spans} == {"a", "b"}
    for gpu in ("a", "b"):
        on_gpu = sorted((s, e) for g, s, e in spans if g == gpu)
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(on_gpu))
    assert spans[0][1] < spans[1][2]  # the first two ran at the same time
    assert spans[1][1] < spans[0][2]


def test_after_a_failed_child_no_seed_starts(tmp_path: Path, fast_polls: None) -> None:
    jobs = [fake_job(tmp_path, 0), fake_job(tmp_path, 1, code=3), fake_job(tmp_path, 2)]
    with pytest.raises(SeedsFailedError) as failed:
        run_children(jobs, ["a"], SearchObserver())
    message = str(failed.value)
    assert message.startswith("seed 1 failed (exit 3): error: seed 3 went wrong (its output: ")
    assert message.endswith("; not started: seed(s) 2")
    assert failed.value.exit_code == 1
    assert not jobs[2].log.exists()


# ---------------------------------------------------------------------------------------------
# on a GPU machine: one seed per GPU when there are two or more, else one after another


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seeds_on_cuda(tmp_path: Path) -> None:
    schedule = tmp_path / "tiny.json"
    schedule.write_text(json.dumps(tiny_seeds_schedule()))
    out = tmp_path / "run"
    args = ["search", "-d", "digits", "-s", str(schedule), "--seeds", "0,1", "-o", str(out)]
    result = runner.invoke(app, [*args, "--device", "cuda"], env=WIDE)
    assert result.exit_code == 0, result.output
    gpus = gpu_slots("cuda")[:2]
    parallel = bool(gpus)
    assert json.loads((out / "run.json").read_text())["gpus"] == (gpus or None)
    for seed in (0, 1):
        record = json.loads((out / f"seed-{seed}" / "run.json").read_text())
        assert record["device"]["type"] == "cuda"
        assert (out / f"seed-{seed}.log").exists() == parallel
    assert "stability across seeds 0, 1" in result.output

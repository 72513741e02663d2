"""A search on two gloo processes: the ranks agree, and the run is the one-process run.

One torchrun launch runs, on two ranks, a search of the tiny schedule (global batch 128), and
the same search interrupted after stage 2's first epoch and resumed. The test process runs it
once more alone, with batch 128.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import tiny_schedule_dict
from safetensors import safe_open
from safetensors.torch import load_file
from searchhelpers import one_step_gradients, step_batch

from pdarts_cli.arch import read_arch
from pdarts_cli.distributed import Distributed
from pdarts_cli.errors import ConfigError
from pdarts_cli.schedule import Schedule
from pdarts_cli.searching import SearchOptions, resume_search, run_search
from pdarts_cli.searching.run import search_context
from pdarts_cli.searching.sharded import GlobalBatchNorm2d
from pdarts_cli.searching.step import all_candidates, build_stage
from pdarts_cli.searching.supernet import SkipDropout

# Smaller than the tiny schedule: a BatchNorm costs two all-reduces a step, a millisecond each
# over gloo on a busy CPU. Three weight steps of 256 (the last of 206) per epoch; stage 2
# drops skip-connects, so the masks are the global batch's.
OPS = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
STAGE = {"epochs": 2, "warmup_epochs": 1, "batch_size": 256, "channels": 4}
SCHEDULE = tiny_schedule_dict(
    candidate_ops=list(OPS),
    steps=2,
    stages=[
        {"cells": 3, "ops_per_edge": 4, "skip_dropout_rate": 0.0, **STAGE},
        {"cells": 4, "ops_per_edge": 2, "skip_dropout_rate": 0.4, **STAGE},
    ],
)

WORKER = textwrap.dedent(
    """
    import json, os, shutil, sys
    import torch
    from pdarts_cli.schedule import validate_schedule
    from pdarts_cli.searching import SearchObserver, SearchOptions, resume_search, run_search

    torch.set_num_threads(1)
    out, schedule_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, sys.argv[3])
    schedule = validate_schedule(json.loads(open(schedule_file).read()), "tiny")
    rank = int(os.environ["RANK"])

    from safetensors.torch import save_file
    from pdarts_cli.searching.run import search_context
    from searchhelpers import one_step_gradients, step_batch
    ctx = search_context(schedule, SearchOptions(dataset="digits", device="cpu", threads=1))
    x, y = step_batch()
    grads = one_step_gradients(schedule, ctx, x[rank::2], y[rank::2], skip_dropout_p=0.5)
    save_file(grads, os.path.join(out, f"step-rank{rank}.safetensors"))

    class Boundaries(SearchObserver):
        def __init__(self, stop_at=None):
            self.reports, self.stop_at = [], stop_at
        def stage_finished(self, report):
            cells = {}
            for name, edges in (("normal", report.normal), ("reduce", report.reduce)):
                cells[name] = [[list(e.ops), list(e.kept)] for e in edges]
            alphas = [[list(e.alpha) for e in cell] for cell in (report.arch.normal,
                      report.arch.reduce)]
            self.reports.append({"stage": report.stage, "cells": cells, "alphas": alphas})
        def epoch_finished(self, metrics):
            if (metrics.stage, metrics.epoch) == self.stop_at:
                raise KeyboardInterrupt

    options = SearchOptions(dataset="digits", device="cpu", threads=1)
    full = Boundaries()
    result = run_search(schedule, options, os.path.join(out, "two"), observer=full)
    try:
        run_search(schedule, options, os.path.join(out, "resumed"),
                   observer=Boundaries(stop_at=(2, 1)))
    except KeyboardInterrupt:
        torch.distributed.barrier()  # rank 0 wrote the checkpoint before it stopped
    else:
        raise SystemExit("the search was not interrupted")
    if rank == 0:
        shutil.copytree(os.path.join(out, "resumed"), os.path.join(out, "interrupted"))
    resume_search(os.path.join(out, "resumed"), threads=1)
    try:
        run_search(schedule, options, os.path.join(out, "two"))  # exists: rank 0 refuses
    except Exception as exc:
        refused = f"{type(exc).__name__}: {exc}"
    record = {"boundaries": full.reports, "genotype": result.genotype.to_darts(),
              "run_dir": None if result.run_dir is None else str(result.run_dir),
              "refused": refused}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(record, f)
    """
)


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*")}


def _final_alphas(run_dir: Path, name: str = "final.arch.json") -> torch.Tensor:
    arch = read_arch(run_dir / name)
    return torch.tensor([edge.alpha for edge in (*arch.normal, *arch.reduce)])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the two ranks worked in."""
    out = tmp_path_factory.mktemp("two-ranks")
    (out / "worker.py").write_text(WORKER)
    (out / "tiny.json").write_text(json.dumps(SCHEDULE))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(out / "worker.py"),
        str(out),
        str(out / "tiny.json"),
        str(Path(__file__).resolve().parent),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same search in one process, with the same (global) batch."""
    run_dir = tmp_path_factory.mktemp("one-rank") / "one"
    schedule = Schedule.model_validate(SCHEDULE)
    run_search(schedule, SearchOptions(dataset="digits", device="cpu", threads=1), run_dir)
    return run_dir


def test_both_ranks_hold_the_same_alphas_and_candidates_at_every_stage_boundary(
    two_ranks: Path,
) -> None:
    rank0 = json.loads((two_ranks / "rank0.json").read_text())
    rank1 = json.loads((two_ranks / "rank1.json").read_text())
    assert [b["stage"] for b in rank0["boundaries"]] == [1, 2]
    assert rank0["boundaries"] == rank1["boundaries"]
    assert rank0["genotype"] == rank1["genotype"]
    # Stage 2 searches what stage 1 kept: 2 ops on every edge.
    stage2_ops = [edge[0] for edge in rank0["boundaries"][1]["cells"]["normal"]]
    assert stage2_ops == [edge[1] for edge in rank0["boundaries"][0]["cells"]["normal"]]
    assert all(len(ops) == 2 for ops in stage2_ops)


def test_only_rank_0_writes_and_the_run_directory_is_a_one_process_runs(
    two_ranks: Path, one_rank: Path
) -> None:
    rank1 = json.loads((two_ranks / "rank1.json").read_text())
    assert rank1["run_dir"] is None  # rank 1 had no run directory to write into
    assert _files(two_ranks / "two") == _files(one_rank)
    run = json.loads((two_ranks / "two" / "run.json").read_text())
    assert run["world_size"] == 2
    with safe_open(str(two_ranks / "two" / "checkpoint.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["pdarts"])["complete"] is True


def test_every_rank_stops_when_rank_0_cannot_create_the_run_directory(two_ranks: Path) -> None:
    refused = [json.loads((two_ranks / f"rank{r}.json").read_text())["refused"] for r in (0, 1)]
    assert refused[0] == refused[1]
    assert refused[0].startswith("RunDirError")
    assert "--force" in refused[0]


def test_a_sharded_network_holds_global_batch_norms_on_its_device() -> None:
    schedule = Schedule.model_validate(SCHEDULE)
    ctx = search_context(schedule, SearchOptions(dataset="digits", device="cpu", threads=1))
    ranks = dataclasses.replace(ctx, dist=Distributed(rank=1, world_size=2))
    candidates = all_candidates(schedule)
    network = build_stage(schedule, 0, candidates, candidates, ranks).network
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    assert all(isinstance(m, GlobalBatchNorm2d) for m in norms)
    assert all(b.device == ctx.device for m in norms for b in m.buffers())
    dropouts = [m for m in network.modules() if isinstance(m, SkipDropout)]
    assert dropouts
    assert all(m.shard == (1, 2) for m in dropouts)


def test_one_step_on_two_ranks_computes_the_one_process_gradients(two_ranks: Path) -> None:
    """Same weights and batch in: the same alpha and weight gradients out, to float rounding,
    with BatchNorm statistics and skip-connect dropout masks of the global batch."""
    schedule = Schedule.model_validate(SCHEDULE)
    ctx = search_context(schedule, SearchOptions(dataset="digits", device="cpu", threads=1))
    alone = one_step_gradients(schedule, ctx, *step_batch(), skip_dropout_p=0.5)
    rank0 = load_file(str(two_ranks / "step-rank0.safetensors"))
    rank1 = load_file(str(two_ranks / "step-rank1.safetensors"))
    assert rank0.keys() == alone.keys()
    for name, gradient in alone.items():
        assert torch.equal(rank0[name], rank1[name]), name
        torch.testing.assert_close(rank0[name], gradient, rtol=1e-4, atol=1e-6, msg=name)


def test_two_ranks_with_global_batch_2b_end_as_one_rank_with_batch_2b(
    two_ranks: Path, one_rank: Path
) -> None:
    """A whole run amplifies float rounding (Adam's first steps follow the gradients' signs):
    here the same one-process run in the NCHW layout ends stage 1 about 1e-4 away. The two-rank
    run stays within 5% of the alphas' movement, and takes the same decisions."""
    distributed = _final_alphas(two_ranks / "two", "stage-1.arch.json")
    alone = _final_alphas(one_rank, "stage-1.arch.json")
    movement = float((alone - alone.mean()).abs().max())
    assert movement > 1e-3  # the alphas moved from their start
    torch.testing.assert_close(distributed, alone, rtol=0, atol=0.05 * movement)
    ops = [e.ops for e in read_arch(two_ranks / "two" / "final.arch.json").normal]
    assert ops == [e.ops for e in read_arch(one_rank / "final.arch.json").normal]


def test_a_distributed_search_resumes_bit_for_bit_on_as_many_ranks(two_ranks: Path) -> None:
    resumed, uninterrupted = two_ranks / "resumed", two_ranks / "two"
    assert torch.equal(_final_alphas(resumed), _final_alphas(uninterrupted))
    lines = (resumed / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((uninterrupted / "metrics.jsonl").read_text().splitlines())


def test_resuming_on_another_number_of_ranks_is_refused(two_ranks: Path) -> None:
    with pytest.raises(ConfigError, match=r"ran on 2 process\(es\).*--nproc 2"):
        resume_search(two_ranks / "interrupted", threads=1)


def test_search_nproc_refuses_a_batch_the_ranks_cannot_share_in_one_line(tmp_path: Path) -> None:
    """``--nproc`` hands over to torchrun; the ranks' mistake is one line, once, with no
    launcher log around it."""
    command = [sys.executable, "-m", "pdarts_cli", "search", "--dataset", "digits"]
    command += ["--schedule", "quick", "--batch-size", "7", "--nproc", "2", "--device", "cpu"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [
        "error: stage 1's batch size 7 does not split evenly over 2 processes: give a multiple of 2"
    ]
    assert not (tmp_path / "run").exists()

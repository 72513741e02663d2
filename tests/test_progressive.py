"""The stage loop's pure parts: skip-dropout schedule, cosine lr, seeds, and the stage report.

Expected values are worked out in the comments from ../shared/ALGORITHM.md ("Progressive
stages", "Search space approximation"). End-to-end runs are tested elsewhere.
"""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from pdarts_cli.arch import ArchWeights, EdgeWeights
from pdarts_cli.device import resolve_channels_last, resolve_precision
from pdarts_cli.genotype import Genotype, read_genotype_file
from pdarts_cli.rates import cosine_lr, skip_dropout_p
from pdarts_cli.schedule import DARTS_OPS, Schedule, SkipDropoutDecay, StageSchedule
from pdarts_cli.searching.derive import (
    approximate_search_space,
    derive_genotype,
    edge_probabilities,
)
from pdarts_cli.searching.epoch import evaluates_epoch
from pdarts_cli.searching.loop import derive_genotypes, stage_report
from pdarts_cli.searching.state import RunFiles
from pdarts_cli.seeding import derive_seed

EDGES = 14  # a 4-step cell

# ---------------------------------------------------------------------------------------------
# skip-connect dropout: rate r, E epochs, W warm-up epochs (the authors' code):
#   p = r * (E - e - 1) / E            for e < W
#   p = r * exp(-0.2 * (e - W))        for e >= W
# with r = 0.7 (stage 3, CIFAR-10), E = 25, W = 10

PDARTS_CODE = SkipDropoutDecay()


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 0.672),  # 0.7 * 24 / 25
        (4, 0.56),  # 0.7 * 20 / 25
        (9, 0.42),  # 0.7 * 15 / 25: the last warm-up epoch
        (10, 0.7),  # 0.7 * exp(0): the rule jumps back to r when the alphas start to train
        (11, 0.7 * math.exp(-0.2)),  # 0.5731
        (15, 0.7 * math.exp(-1.0)),  # 0.2575
        (24, 0.7 * math.exp(-2.8)),  # 0.0426: the last epoch
    ],
)
def test_skip_dropout_pdarts_code(epoch: int, expected: float) -> None:
    assert skip_dropout_p(0.7, epoch, 25, 10, PDARTS_CODE) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 0.672),  # 0.7 * 24 / 25
        (9, 0.42),  # 0.7 * 15 / 25
        (10, 0.392),  # 0.7 * 14 / 25: linear throughout, no jump
        (20, 0.112),  # 0.7 * 4 / 25
        (24, 0.0),  # 0.7 * 0 / 25
    ],
)
def test_skip_dropout_linear(epoch: int, expected: float) -> None:
    decay = SkipDropoutDecay(kind="linear")
    assert skip_dropout_p(0.7, epoch, 25, 10, decay) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("epoch", [0, 9, 10, 24])
def test_skip_dropout_constant(epoch: int) -> None:
    assert skip_dropout_p(0.7, epoch, 25, 10, SkipDropoutDecay(kind="constant")) == 0.7


def test_skip_dropout_factor_is_settable() -> None:
    # factor 0.5, two joint epochs in: 0.4 * exp(-0.5 * 2) = 0.4 / e
    decay = SkipDropoutDecay(factor=0.5)
    assert skip_dropout_p(0.4, 12, 25, 10, decay) == pytest.approx(0.4 / math.e, rel=1e-12)


@pytest.mark.parametrize("kind", ["pdarts-code", "linear", "constant"])
def test_skip_dropout_rate_zero_stays_zero(kind: str) -> None:
    # stage 1 on CIFAR-10 has r = 0
    decay = SkipDropoutDecay(kind=kind)  # type: ignore[arg-type]
    assert all(skip_dropout_p(0.0, e, 25, 10, decay) == 0.0 for e in range(25))


def test_skip_dropout_decreases_within_each_phase() -> None:
    ps = [skip_dropout_p(0.7, e, 25, 10, PDARTS_CODE) for e in range(25)]
    warmup, joint = ps[:10], ps[10:]
    assert all(a > b for a, b in pairwise(warmup))
    assert all(a > b for a, b in pairwise(joint))
    assert all(0.0 < p <= 0.7 for p in ps)


# ---------------------------------------------------------------------------------------------
# cosine learning rate, stepped per epoch


def test_cosine_lr_endpoints_and_midpoint() -> None:
    assert cosine_lr(0.025, 0.0, 0, 25) == 0.025
    # epoch E/2: cos(pi/2) = 0 -> halfway between lr and the floor
    assert cosine_lr(0.025, 0.0, 12, 24) == pytest.approx(0.0125, rel=1e-12)
    assert cosine_lr(0.025, 0.001, 12, 24) == pytest.approx(0.013, rel=1e-12)
    # epoch E: cos(pi) = -1 -> the floor
    assert cosine_lr(0.025, 0.001, 24, 24) == pytest.approx(0.001, rel=1e-12)


@pytest.mark.parametrize("lr_min", [0.0, 0.001])
def test_cosine_lr_never_below_the_floor(lr_min: float) -> None:
    lrs = [cosine_lr(0.025, lr_min, e, 25) for e in range(26)]
    assert all(lr >= lr_min for lr in lrs)
    assert all(a >= b for a, b in pairwise(lrs))
    assert lrs[0] == 0.025


# ---------------------------------------------------------------------------------------------
# seeds


def test_derive_seed_is_deterministic() -> None:
    assert derive_seed(0, 1, 2, 3) == derive_seed(0, 1, 2, 3)
    assert derive_seed(12345) == derive_seed(12345)


def test_derive_seed_separates_labels_and_seeds() -> None:
    keys = [(0,), (0, 0), (0, 1), (0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (2, 0), (3, 0)]
    seeds = [derive_seed(s, *labels) for s in (0, 1, 2) for labels in keys]
    assert len(set(seeds)) == len(seeds)
    assert derive_seed(0, 1, 2) != derive_seed(0, 2, 1)


def test_derive_seed_fits_torch_manual_seed() -> None:
    for labels in [(), (0,), (3, 2, 24)]:
        s = derive_seed(7, *labels)
        assert 0 <= s < 2**63


# ---------------------------------------------------------------------------------------------
# the stage report: what survives each edge at a stage transition


def arch_of(normal: list[EdgeWeights], reduce: list[EdgeWeights], stage: int) -> ArchWeights:
    return ArchWeights(4, tuple(normal), tuple(reduce), {"stage": stage})


ASCENDING = tuple(float(i) for i in range(8))  # later ops stronger


def test_stage_report_after_stage_one() -> None:
    normal = [EdgeWeights(DARTS_OPS, ASCENDING) for _ in range(EDGES)]
    # edge 0: earlier ops stronger; none (7) is the most probable and survives like any op
    normal[0] = EdgeWeights(DARTS_OPS, ASCENDING[::-1])
    reduce = [EdgeWeights(DARTS_OPS, (0.0,) * 8) for _ in range(EDGES)]
    # reduce edge 3: none, max, avg at 1, the rest at 0: of the five zeros the earliest three
    # (skip, sep3, sep5) go
    reduce[3] = EdgeWeights(DARTS_OPS, (1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    arch = arch_of(normal, reduce, stage=1)

    report = stage_report(arch, keep=5)
    assert report.stage == 1
    assert report.last is False
    assert report.arch is arch
    # ascending logits: the three lowest are none, max, avg
    assert report.normal[1].kept == (
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    # descending logits: the three lowest are sep5, dil3, dil5; none (the highest) stays
    assert report.normal[0].kept == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
    )
    # all logits equal: the earliest three go
    assert report.reduce[0].kept == (
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert report.reduce[3].kept == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    for reports, edges in ((report.normal, arch.normal), (report.reduce, arch.reduce)):
        assert len(reports) == EDGES
        for r, e in zip(reports, edges):
            assert r.ops == DARTS_OPS
            assert r.probabilities == tuple(edge_probabilities(e.alpha))
            assert len(r.kept) == 5
    # the report says exactly what the next stage searches
    assert tuple(r.kept for r in report.normal) == approximate_search_space(arch.normal, 5)
    assert tuple(r.kept for r in report.reduce) == approximate_search_space(arch.reduce, 5)


def test_stage_report_after_the_last_stage() -> None:
    # three candidates per edge; the survivor is the most probable op other than none
    default = EdgeWeights(("none", "max_pool_3x3", "sep_conv_5x5"), (0.0, 2.0, 1.0))
    normal = [default] * EDGES
    # none has the largest logit (5) but is never the final op: sep3 (2) > skip (1)
    normal[0] = EdgeWeights(("none", "skip_connect", "sep_conv_3x3"), (5.0, 1.0, 2.0))
    # sep3 and dil3 tie: the later op
    normal[1] = EdgeWeights(("skip_connect", "sep_conv_3x3", "dil_conv_3x3"), (0.0, 1.0, 1.0))
    reduce = [EdgeWeights(("avg_pool_3x3", "skip_connect", "dil_conv_5x5"), (3.0, 1.0, 2.0))]
    arch = arch_of(normal, reduce * EDGES, stage=3)

    report = stage_report(arch, keep=None)
    assert report.stage == 3
    assert report.last is True
    assert report.normal[0].kept == ("sep_conv_3x3",)
    assert report.normal[1].kept == ("dil_conv_3x3",)
    assert all(r.kept == ("max_pool_3x3",) for r in report.normal[2:])
    assert all(r.kept == ("avg_pool_3x3",) for r in report.reduce)
    assert report.normal[0].probabilities == tuple(edge_probabilities((5.0, 1.0, 2.0)))


def test_numerics_default_to_float32_and_channels_last_on_the_cpu_only() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu).dtype is None
    assert resolve_precision("bf16", cpu).dtype is None  # autocast is for CUDA only
    assert resolve_channels_last("auto", cpu) is True  # measured faster on the CPU
    assert resolve_channels_last("off", cpu) is False
    assert resolve_channels_last("auto", cuda) is False  # measured slower on an H200
    assert resolve_channels_last("on", cuda) is True


# ---------------------------------------------------------------------------------------------
# Evaluation epochs: the authors' loop evaluates when `epochs - epoch < 5` over range(epochs).


def test_search_evaluates_the_last_four_epochs_as_the_authors_code() -> None:
    schedule = Schedule(
        name="p", stages=(StageSchedule(cells=5, ops_per_edge=8, skip_dropout_rate=0),)
    )
    epochs = schedule.stages[0].epochs
    ours = [e for e in range(epochs) if evaluates_epoch(e, epochs, schedule.valid_last_epochs)]
    authors = [e for e in range(epochs) if epochs - e < 5]
    assert ours == authors == [21, 22, 23, 24]


@pytest.mark.parametrize(("last", "expected"), [(0, []), (1, [5]), (6, [0, 1, 2, 3, 4, 5])])
def test_valid_last_epochs_counts_epochs(last: int, expected: list[int]) -> None:
    assert [e for e in range(6) if evaluates_epoch(e, 6, last)] == expected


# ---------------------------------------------------------------------------------------------
# genotype.json is refined to at most max_skip normal skip-connects; the plain derivation sits
# beside it in genotype-unrefined.json.

SKIP_FIRST = EdgeWeights(("skip_connect", "sep_conv_3x3", "dil_conv_3x3"), (1.0, 0.0, -1.0))


def write_genotypes(
    run_dir: Path, arch: ArchWeights, schedule: Schedule, dataset: str
) -> tuple[Genotype, Genotype]:
    """The genotypes a search derives from ``arch``, written as a run writes them."""
    refined, unrefined = derive_genotypes(arch, schedule, dataset)
    RunFiles(run_dir).results(arch, refined, unrefined)
    return refined, unrefined


def _skip_heavy_arch() -> ArchWeights:
    """Every normal edge prefers skip_connect, its strength rising with the edge index."""
    normal = [EdgeWeights(SKIP_FIRST.ops, (1.0 + 0.01 * i, 0.0, -1.0)) for i in range(EDGES)]
    return arch_of(normal, [SKIP_FIRST] * EDGES, stage=3)


@pytest.mark.parametrize("max_skip", [0, 2, 5])
def test_genotype_json_is_refined_and_names_m(tmp_path: Path, max_skip: int) -> None:
    schedule = Schedule(
        name="p",
        stages=(StageSchedule(cells=5, ops_per_edge=8, skip_dropout_rate=0),),
        max_skip=max_skip,
    )
    arch = _skip_heavy_arch()
    refined, unrefined = write_genotypes(tmp_path, arch, schedule, "digits")
    assert unrefined.count("skip_connect") == 8
    assert refined.count("skip_connect") == max_skip
    assert read_genotype_file(tmp_path / "genotype.json") == derive_genotype(arch, max_skip)
    assert read_genotype_file(tmp_path / "genotype-unrefined.json") == derive_genotype(arch)
    saved = json.loads((tmp_path / "genotype.json").read_text())
    assert saved["meta"]["max_skip"] == max_skip
    assert refined.count("skip_connect", "reduce") == unrefined.count("skip_connect", "reduce")


def test_max_skip_null_leaves_the_derivation_unrefined(tmp_path: Path) -> None:
    schedule = Schedule(
        name="p",
        stages=(StageSchedule(cells=5, ops_per_edge=8, skip_dropout_rate=0),),
        max_skip=None,
    )
    refined, unrefined = write_genotypes(tmp_path, _skip_heavy_arch(), schedule, "digits")
    assert refined == unrefined
    assert refined.count("skip_connect") == 8
    assert json.loads((tmp_path / "genotype.json").read_text())["meta"]["max_skip"] is None


def test_paper_schedules_refine_to_two_skip_connects() -> None:
    from pdarts_cli.schedule import PAPER_MAX_SKIP, load_schedule

    assert PAPER_MAX_SKIP == 2
    assert load_schedule("paper-cifar10").max_skip == PAPER_MAX_SKIP
    assert load_schedule("paper-cifar100").max_skip == PAPER_MAX_SKIP

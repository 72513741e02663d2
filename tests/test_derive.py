"""Search space approximation, genotype derivation and skip-connect refinement, by hand.

Every expected answer below is worked out in the comments from ../shared/ALGORITHM.md. Edges
are built from the probabilities we want (alpha = log p, so the float32 softmax gives p back up
to rounding); where a case needs an exact tie, the tied values come from identical alphas, which
give identical float32 probabilities.

Edge numbering for steps = 4: node0 {inputs 0,1} -> edges 0,1; node1 {0,1,2} -> 2,3,4;
node2 {0..3} -> 5..8; node3 {0..4} -> 9..13.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from pdarts_cli.arch import ArchWeights, EdgeWeights, arch_from_dict
from pdarts_cli.errors import ArtifactError
from pdarts_cli.schedule import DARTS_OPS
from pdarts_cli.searching.derive import (
    approximate_search_space,
    derive_cell,
    derive_genotype,
    edge_probabilities,
    prune_edge,
)

STEPS = 4
EDGES = 14  # 2 + 3 + 4 + 5 edges for a 4-step cell
REFINE_VECTORS = Path(__file__).resolve().parents[2] / "shared/vectors/refine-examples.json"


def edge(**probs: float) -> EdgeWeights:
    """An edge whose softmax is ``probs`` (op -> probability), its ops in canonical order."""
    ops = tuple(op for op in DARTS_OPS if op in probs)
    assert len(ops) == len(probs), f"unknown op in {sorted(probs)}"
    return EdgeWeights(ops, tuple(math.log(probs[op]) for op in ops))


# The filler edge: strength 0.6 (sep_conv_3x3), identical alphas everywhere, so every filler
# edge ties every other filler edge exactly.
FILL = edge(none=0.1, sep_conv_3x3=0.6, dil_conv_3x3=0.3)


def cell(changes: Mapping[int, EdgeWeights] | None = None) -> tuple[EdgeWeights, ...]:
    changes = changes or {}
    return tuple(changes.get(e, FILL) for e in range(EDGES))


def arch(
    normal: Mapping[int, EdgeWeights] | None = None,
    reduce: Mapping[int, EdgeWeights] | None = None,
) -> ArchWeights:
    return ArchWeights(STEPS, cell(normal), cell(reduce))


S3, S5, D3, D5 = "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"
SKIP, MAX, AVG = "skip_connect", "max_pool_3x3", "avg_pool_3x3"

# All filler: every edge chooses sep_conv_3x3 with strength 0.6; every node's edges tie, so
# node0 keeps 0,1 (inputs 0,1), node1 the later two 3,4 (inputs 1,2), node2 7,8 (inputs 2,3),
# node3 12,13 (inputs 3,4).
FILL_GENE = [(S3, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)]

# Edges strong at 0.8 (sep_conv_5x5): identical alphas, so they tie each other exactly.
STRONG = edge(none=0.1, sep_conv_5x5=0.8, dil_conv_3x3=0.1)


# ---------------------------------------------------------------------------------------------
# edge probabilities


def test_edge_probabilities_equal_logits_give_equal_probabilities() -> None:
    assert edge_probabilities([0.0, 0.0, 0.0, 0.0]) == [0.25, 0.25, 0.25, 0.25]
    assert edge_probabilities([3.0, 3.0]) == [0.5, 0.5]


def test_edge_probabilities_of_log_values_give_the_chosen_ratios() -> None:
    # alpha = log p with sum(p) = 1 -> softmax = p (float32 rounding only)
    assert edge_probabilities([math.log(0.1), math.log(0.6), math.log(0.3)]) == pytest.approx(
        [0.1, 0.6, 0.3], rel=1e-6
    )
    # logits 0 and log 3: e^0 : e^log3 = 1 : 3 -> 0.25, 0.75
    assert edge_probabilities([0.0, math.log(3.0)]) == pytest.approx([0.25, 0.75], rel=1e-6)


def test_edge_probabilities_are_the_float32_softmax() -> None:
    alpha = [0.123, -1.7, 2.5, 0.0, 1e-3]
    probs = edge_probabilities(alpha)
    reference = torch.softmax(torch.tensor(alpha, dtype=torch.float32), dim=-1).tolist()
    assert probs == reference
    assert all(isinstance(p, float) for p in probs)
    assert all(float(torch.tensor(p, dtype=torch.float32)) == p for p in probs)
    # exp(-200) = 1.4e-87 exists in float64 but underflows to 0 in float32
    assert edge_probabilities([0.0, 200.0]) == [0.0, 1.0]
    # exp(-1e-8) rounds to exactly 1 in float32: two different logits, an exact tie
    assert edge_probabilities([1e-8, 0.0]) == [0.5, 0.5]


# ---------------------------------------------------------------------------------------------
# derivation (ALGORITHM.md, "Deriving the genotype", steps 1-4)

DERIVE_CASES: list[tuple[str, dict[int, EdgeWeights], list[tuple[str, int]]]] = [
    ("all-ties-go-to-the-later-edges", {}, FILL_GENE),
    (
        # edge 0: none 0.7 is the most probable, but never chosen: max_pool 0.2 > sep 0.1
        "none-is-never-chosen",
        {0: edge(none=0.7, max_pool_3x3=0.2, sep_conv_3x3=0.1)},
        [(MAX, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # edge 4 (node1, input 2): raw max 0.9 is none's; with none zeroed its strength is
        # 0.06 < 0.6, so node1 keeps edges 2,3 (inputs 0,1). Were none counted, edge 4 would
        # rank first and node1 would keep 3,4 as in FILL_GENE.
        "strength-zeroes-none",
        {4: edge(none=0.9, sep_conv_3x3=0.06, dil_conv_3x3=0.04)},
        [(S3, 0), (S3, 1), (S3, 0), (S3, 1), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # node0 keeps both edges even though both (strength 0.015, 0.01) are the weakest edges
        # of the cell: edge 0 -> max_pool (0.015 > avg 0.005), edge 1 -> dil_conv_3x3 (0.01 >
        # sep 0.005). Every other node is filler.
        "node0-keeps-both-edges",
        {
            0: edge(none=0.98, max_pool_3x3=0.015, avg_pool_3x3=0.005),
            1: edge(none=0.985, sep_conv_3x3=0.005, dil_conv_3x3=0.01),
        },
        [(MAX, 0), (D3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # node3: strengths 0.8, 0.6, 0.8, 0.6, 0.6 for edges 9..13 -> keeps 9 and 11
        # (inputs 0 and 2), both sep_conv_5x5
        "two-strongest-edges",
        {9: STRONG, 11: STRONG},
        [(S3, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S5, 0), (S5, 2)],
    ),
    (
        # node3: edges 9, 10, 11 tie exactly at 0.8 -> the later two, 10 and 11 (inputs 1, 2)
        "edge-ties-go-to-the-later-edge",
        {9: STRONG, 10: STRONG, 11: STRONG},
        [(S3, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S5, 1), (S5, 2)],
    ),
    (
        # node2: edge 5 leads (0.8); edges 6, 7, 8 tie for second place at 0.6 -> the latest,
        # edge 8: node2 keeps 5 and 8 (inputs 0 and 3)
        "tie-for-second-place-goes-to-the-later-edge",
        {5: STRONG},
        [(S3, 0), (S3, 1), (S3, 1), (S3, 2), (S5, 0), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # edge 1: max_pool and avg_pool tie exactly at 0.4 -> the later op, avg_pool
        "op-ties-go-to-the-later-op",
        {1: edge(none=0.2, max_pool_3x3=0.4, avg_pool_3x3=0.4)},
        [(S3, 0), (AVG, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # edge 0: none ties skip_connect at 0.4; none is never chosen -> skip_connect
        "a-tie-with-none-is-no-tie",
        {0: edge(none=0.4, skip_connect=0.4, sep_conv_3x3=0.2)},
        [(SKIP, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # edge 0: alphas 1e-8 and 0 give exactly 0.5, 0.5 in float32 -> the later op, dil
        "float32-tie-goes-to-the-later-op",
        {0: EdgeWeights((S3, D3), (1e-8, 0.0))},
        [(D3, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        # node3: edge 13 (input 4, dil_conv_5x5 0.9) is stronger than edge 9 (input 0, 0.8),
        # yet the genotype lists input 0 first
        "kept-edges-listed-input-ascending",
        {9: STRONG, 13: edge(none=0.05, sep_conv_5x5=0.05, dil_conv_5x5=0.9)},
        [(S3, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S5, 0), (D5, 4)],
    ),
]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [pytest.param(c, g, id=name) for name, c, g in DERIVE_CASES],
)
def test_derive_normal_cell(
    changes: dict[int, EdgeWeights], expected: list[tuple[str, int]]
) -> None:
    assert list(derive_cell(cell(changes), STEPS)) == expected
    # the same edges in the reduction cell derive the same way (no refinement asked)
    genotype = derive_genotype(arch(normal=changes, reduce=changes))
    assert list(genotype.normal) == expected
    assert list(genotype.reduce) == expected


def test_genotype_concat_and_meta() -> None:
    genotype = derive_genotype(arch())
    assert genotype.normal_concat == (2, 3, 4, 5)
    assert genotype.reduce_concat == (2, 3, 4, 5)
    assert len(genotype.normal) == len(genotype.reduce) == 2 * STEPS
    assert dict(genotype.meta) == {}
    assert dict(derive_genotype(arch(), max_skip=2).meta) == {"max_skip": 2}


def test_an_edge_with_only_none_that_is_kept_is_an_error() -> None:
    with pytest.raises(ArtifactError, match="edge 0"):
        derive_cell(cell({0: EdgeWeights(("none",), (0.0,))}), STEPS)


# ---------------------------------------------------------------------------------------------
# refinement: at most M skip-connects in the normal cell

# skip_connect edges of known skip probability; the other op is what remains once it is removed
SKIP7 = edge(none=0.1, skip_connect=0.7, sep_conv_3x3=0.2)  # falls back to sep_conv_3x3 0.2
SKIP8 = edge(none=0.1, skip_connect=0.8, dil_conv_3x3=0.1)  # falls back to dil_conv_3x3 0.1
SKIP9 = edge(none=0.05, skip_connect=0.9, sep_conv_5x5=0.05)  # falls back to sep_conv_5x5 0.05

# Three skips: edge 0 (0.7), edge 1 (0.8), edge 13 (0.9, kept by node3 with the later filler
# edge 12). Unrefined: 3 skip-connects.
THREE_SKIPS = {0: SKIP7, 1: SKIP8, 13: SKIP9}
THREE_SKIPS_GENES = {
    None: [(SKIP, 0), (SKIP, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (SKIP, 4)],
    # M=2: the lowest skip probability is edge 0's (0.7): it takes sep_conv_3x3 (node0 keeps it)
    2: [(S3, 0), (SKIP, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (SKIP, 4)],
    # M=1: then edge 1's (0.8): it takes dil_conv_3x3
    1: [(S3, 0), (D3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (SKIP, 4)],
    # M=0: then edge 13's (0.9): its strength falls to 0.05 (sep_conv_5x5), so node3 now keeps
    # the filler edges 11 and 12 (inputs 2, 3; ties go to the later edges)
    0: [(S3, 0), (D3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 2), (S3, 3)],
}

# node1: edge 2 skip 0.7 (kept), edge 3 filler 0.6 (kept), edge 4 avg 0.3 (dropped).
# M=0: edge 2 falls to sep 0.2 < 0.3, so node1 now keeps edges 3, 4 (inputs 1, 2).
NODE_CHANGES = {
    2: SKIP7,
    4: edge(none=0.5, avg_pool_3x3=0.3, dil_conv_3x3=0.2),
}

# node1: edge 2 skip 0.7 (kept), edge 3 filler 0.6 (kept), edge 4 skip 0.3 (dropped).
# M=0: edge 2 falls to sep 0.2, node1 now keeps 3 and 4, and edge 4 is a skip-connect: the
# cell has one again, so edge 4 loses it too and falls to avg 0.15 < edge 2's 0.2: node1
# keeps 2, 3 again, edge 2 now sep_conv_3x3.
SKIP_COMES_IN = {
    2: SKIP7,
    4: edge(none=0.55, skip_connect=0.3, avg_pool_3x3=0.15),
}

# edges 0 and 1 are identical skip edges: an exact tie at 0.8; the first edge loses first
TIED_SKIPS = {0: SKIP8, 1: SKIP8}

# the weaker skip sits on the later edge: edge 1 (0.7) loses before edge 0 (0.9)
WEAK_SKIP_LATER = {0: SKIP9, 1: SKIP7}

REFINE_CASES: list[tuple[str, dict[int, EdgeWeights], int | None, list[tuple[str, int]]]] = [
    *[(f"three-skips-M{m}", THREE_SKIPS, m, g) for m, g in THREE_SKIPS_GENES.items()],
    ("three-skips-M3-unchanged", THREE_SKIPS, 3, THREE_SKIPS_GENES[None]),
    ("three-skips-M8-unchanged", THREE_SKIPS, 8, THREE_SKIPS_GENES[None]),
    (
        "node-keeps-other-edges-unrefined",
        NODE_CHANGES,
        None,
        [(S3, 0), (S3, 1), (SKIP, 0), (S3, 1), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        "node-keeps-other-edges-M0",
        NODE_CHANGES,
        0,
        [(S3, 0), (S3, 1), (S3, 1), (AVG, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        "skip-comes-in-M1-unchanged",
        SKIP_COMES_IN,
        1,
        [(S3, 0), (S3, 1), (SKIP, 0), (S3, 1), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        "skip-comes-in-M0",
        SKIP_COMES_IN,
        0,
        [(S3, 0), (S3, 1), (S3, 0), (S3, 1), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        "tie-first-edge-loses-M1",
        TIED_SKIPS,
        1,
        [(D3, 0), (SKIP, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        "tie-both-lose-M0",
        TIED_SKIPS,
        0,
        [(D3, 0), (D3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
    (
        "lowest-probability-not-first-edge-M1",
        WEAK_SKIP_LATER,
        1,
        [(SKIP, 0), (S3, 1), (S3, 1), (S3, 2), (S3, 2), (S3, 3), (S3, 3), (S3, 4)],
    ),
]


@pytest.mark.parametrize(
    ("changes", "max_skip", "expected"),
    [pytest.param(c, m, g, id=name) for name, c, m, g in REFINE_CASES],
)
def test_refine_normal_cell(
    changes: dict[int, EdgeWeights], max_skip: int | None, expected: list[tuple[str, int]]
) -> None:
    genotype = derive_genotype(arch(normal=changes), max_skip=max_skip)
    assert list(genotype.normal) == expected
    assert list(derive_cell(cell(changes), STEPS, max_skip)) == expected


@pytest.mark.parametrize("changes", [THREE_SKIPS, NODE_CHANGES, SKIP_COMES_IN, TIED_SKIPS])
def test_max_skip_zero_leaves_no_skip_connect(changes: dict[int, EdgeWeights]) -> None:
    assert derive_genotype(arch(normal=changes), max_skip=0).count(SKIP) == 0


def test_reduction_cell_is_never_refined() -> None:
    both = arch(normal=THREE_SKIPS, reduce=THREE_SKIPS)
    unrefined = derive_genotype(both)
    assert unrefined.count(SKIP, "reduce") == 3
    for max_skip in range(4):
        refined = derive_genotype(both, max_skip=max_skip)
        assert refined.reduce == unrefined.reduce
        assert list(refined.normal) == THREE_SKIPS_GENES.get(max_skip, THREE_SKIPS_GENES[None])


@pytest.mark.parametrize("max_skip", [-1, -5])
def test_negative_max_skip_is_an_error(max_skip: int) -> None:
    with pytest.raises(ArtifactError):
        derive_genotype(arch(), max_skip=max_skip)
    with pytest.raises(ArtifactError):
        derive_cell(cell(), STEPS, max_skip)


# ---------------------------------------------------------------------------------------------
# search space approximation (between stages)

OPS8 = DARTS_OPS  # none, max, avg, skip, sep3, sep5, dil3, dil5

PRUNE_CASES: list[tuple[str, tuple[str, ...], list[float], int, tuple[str, ...]]] = [
    (
        # logits none 3, max 0, avg 1, skip 2, sep3 0.5, sep5 5, dil3 4, dil5 1.5: the three
        # lowest are max (0), sep3 (0.5), avg (1). none (3) survives like any op would.
        "drops-the-three-lowest",
        OPS8,
        [3.0, 0.0, 1.0, 2.0, 0.5, 5.0, 4.0, 1.5],
        5,
        ("none", SKIP, S5, D3, D5),
    ),
    (
        # none is the lowest (-1) and is dropped like any op, with max (0) and avg (1)
        "none-is-dropped-like-any-op",
        OPS8,
        [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        5,
        (SKIP, S3, S5, D3, D5),
    ),
    (
        # every logit equal: the earlier ops go first
        "all-tied-drop-the-earliest",
        OPS8,
        [0.0] * 8,
        5,
        (SKIP, S3, S5, D3, D5),
    ),
    (
        # dil3 (0) goes; then max, avg, sep5 tie at 1 and two must go: the earlier two, max
        # and avg; sep5 survives
        "ties-at-the-cut-drop-the-earlier",
        OPS8,
        [2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 0.0, 2.0],
        5,
        ("none", SKIP, S3, S5, D5),
    ),
    (
        # stage 2 -> 3: none 2, skip 0, sep5 1, dil3 0, dil5 3: skip and dil3 (both 0) go
        "five-to-three",
        ("none", SKIP, S5, D3, D5),
        [2.0, 0.0, 1.0, 0.0, 3.0],
        3,
        ("none", S5, D5),
    ),
    (
        # logits 1e-8 and 0 tie exactly in float32: the earlier (sep3) goes
        "float32-tie",
        (S3, D3),
        [1e-8, 0.0],
        1,
        (D3,),
    ),
    ("keep-all", (SKIP, S3, D3), [0.3, -2.0, 1.0], 3, (SKIP, S3, D3)),
]


@pytest.mark.parametrize(
    ("ops", "alpha", "keep", "expected"),
    [pytest.param(o, a, k, x, id=name) for name, o, a, k, x in PRUNE_CASES],
)
def test_prune_edge(
    ops: tuple[str, ...], alpha: list[float], keep: int, expected: tuple[str, ...]
) -> None:
    assert prune_edge(ops, edge_probabilities(alpha), keep) == expected
    weights = EdgeWeights(tuple(ops), tuple(alpha))
    assert approximate_search_space([weights], keep) == (expected,)


def test_prune_edge_cannot_keep_more_than_it_has() -> None:
    with pytest.raises(ValueError, match="cannot keep 4 of 3"):
        prune_edge((SKIP, S3, D3), [0.2, 0.3, 0.5], 4)


def test_search_space_shrinks_eight_five_three() -> None:
    # stage 1: every edge logits 0..7 (later ops stronger), except edge 5 reversed
    ascending = tuple(float(i) for i in range(8))
    stage1 = [EdgeWeights(OPS8, ascending) for _ in range(EDGES)]
    stage1[5] = EdgeWeights(OPS8, ascending[::-1])
    five = approximate_search_space(stage1, 5)
    assert len(five) == EDGES
    assert all(len(ops) == 5 for ops in five)
    assert five[0] == (SKIP, S3, S5, D3, D5)
    assert five[5] == ("none", MAX, AVG, SKIP, S3)

    # stage 2: logits 0..4 over the five survivors -> the last three
    stage2 = [EdgeWeights(ops, (0.0, 1.0, 2.0, 3.0, 4.0)) for ops in five]
    three = approximate_search_space(stage2, 3)
    assert all(len(ops) == 3 for ops in three)
    assert three[0] == (S5, D3, D5)
    assert three[5] == (AVG, SKIP, S3)


# ---------------------------------------------------------------------------------------------
# reference vectors from the authors' functions (../shared/vectors/refine-examples.json)


def _load_vectors() -> list[dict[str, Any]] | None:
    if not REFINE_VECTORS.exists():
        return None
    cases: list[dict[str, Any]] = json.loads(REFINE_VECTORS.read_text(encoding="utf-8"))
    return cases


def _vector_params() -> list[Any]:
    cases = _load_vectors()
    if cases is None:
        return [pytest.param(None, id="vectors-absent")]
    return [pytest.param(case, id=f"case{i}") for i, case in enumerate(cases)]


def _skip_if_absent(case: object) -> None:
    if case is None:
        pytest.skip(f"{REFINE_VECTORS} is absent; the hand-worked cases above still run")


def test_refine_vectors_are_complete() -> None:
    cases = _load_vectors()
    _skip_if_absent(cases)
    assert cases is not None
    assert len(cases) == 12
    for case in cases:
        assert set(case["expected"]) == {"unrefined", *(str(m) for m in range(9))}


@pytest.mark.parametrize("case", _vector_params())
def test_refine_vectors(case: dict[str, Any] | None) -> None:
    _skip_if_absent(case)
    assert case is not None
    weights = arch_from_dict(case["arch"], source="refine-examples.json")
    for key, expected in case["expected"].items():
        max_skip = None if key == "unrefined" else int(key)
        got = derive_genotype(weights, max_skip=max_skip).to_dict()
        got = {k: got[k] for k in ("normal", "normal_concat", "reduce", "reduce_concat")}
        assert got == expected, f"max_skip={key}"
        if max_skip is not None:
            assert derive_genotype(weights, max_skip=max_skip).count(SKIP) <= max_skip

"""From architecture weights to ops: search space approximation, derivation, refinement.

Pure functions, worked exactly as ../shared/ALGORITHM.md states (and the authors' code does),
ties included. Probabilities are the float32 softmax of each edge's alphas, as the search
network computes them, so a tie here is a tie there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pdarts_ops import IDENTITY_OP, ZERO_OP

from pdarts_cli.arch import ArchWeights, EdgeWeights
from pdarts_cli.errors import ArtifactError
from pdarts_cli.genotype import Genotype
from pdarts_cli.topology import CELL_INPUTS, INPUTS_PER_NODE, node_edges


def edge_probabilities(alpha: Sequence[float]) -> list[float]:
    """Softmax of one edge's alphas in float32 (the values are exact float32 numbers)."""
    logits = torch.tensor(list(alpha), dtype=torch.float32)
    return [float(p) for p in torch.softmax(logits, dim=-1)]


def prune_edge(ops: Sequence[str], probs: Sequence[float], keep: int) -> tuple[str, ...]:
    """Keep the ``keep`` most probable candidates of an edge, in canonical order.

    ``none`` counts as any other op. The lowest are dropped first; among equal
    probabilities the earlier op is dropped first, so the later one survives.
    """
    drop = len(ops) - keep
    if drop < 0:
        raise ValueError(f"cannot keep {keep} of {len(ops)} ops")
    lowest_first = sorted(range(len(ops)), key=lambda i: probs[i])  # stable: earlier first
    dropped = set(lowest_first[:drop])
    return tuple(op for i, op in enumerate(ops) if i not in dropped)


def chosen_op(
    ops: Sequence[str], probs: Sequence[float], excluded: frozenset[int] = frozenset()
) -> int:
    """Index of the most probable op other than ``none``; ties go to the later op."""
    best = -1
    for i, op in enumerate(ops):
        if op == ZERO_OP or i in excluded:
            continue
        if best < 0 or probs[i] >= probs[best]:
            best = i
    return best


def edge_strength(ops: Sequence[str], probs: Sequence[float]) -> float:
    """The largest probability of the edge with that of ``none`` set to 0."""
    return max(0.0 if op == ZERO_OP else p for op, p in zip(ops, probs))


def kept_edges(strengths: Sequence[float], steps: int) -> list[int]:
    """Each node keeps its 2 strongest incoming edges (ties go to the later edge), in order."""
    kept = []
    for edges in node_edges(steps):
        ranked = sorted(edges, key=lambda e: strengths[e])  # stable: later edges rank higher
        kept.extend(sorted(ranked[-INPUTS_PER_NODE:]))
    return kept


def _cell_gene(
    edges: Sequence[EdgeWeights],
    probs: Sequence[Sequence[float]],
    steps: int,
    excluded: Sequence[frozenset[int]],
) -> tuple[list[int], list[int]]:
    """Per edge the chosen op index, and the kept edges, for (possibly modified) probabilities."""
    chosen = [chosen_op(e.ops, p, x) for e, p, x in zip(edges, probs, excluded)]
    strengths = [edge_strength(e.ops, p) for e, p in zip(edges, probs)]
    return chosen, kept_edges(strengths, steps)


def _gene(
    edges: Sequence[EdgeWeights], chosen: Sequence[int], kept: Sequence[int], steps: int
) -> tuple[tuple[str, int], ...]:
    inputs = {e: e - r.start for r in node_edges(steps) for e in r}
    gene = []
    for e in kept:
        if chosen[e] < 0:
            raise ArtifactError(f"edge {e} has no candidate op other than none")
        gene.append((edges[e].ops[chosen[e]], inputs[e]))
    return tuple(gene)


def derive_cell(
    edges: Sequence[EdgeWeights], steps: int, max_skip: int | None = None
) -> tuple[tuple[str, int], ...]:
    """One cell's genotype; with ``max_skip``, at most that many skip-connects (refinement).

    Refinement (ALGORITHM.md): while the cell has more than ``max_skip`` skip-connects, the
    kept skip-connect edge with the lowest skip probability (the first on ties) has that
    probability set to 0, without renormalising, and the cell is derived again.
    """
    if max_skip is not None and max_skip < 0:
        raise ArtifactError(f"max skip-connects must be >= 0, got {max_skip}")
    probs = [
        [0.0 if op == ZERO_OP else p for op, p in zip(e.ops, edge_probabilities(e.alpha))]
        for e in edges
    ]
    excluded: list[frozenset[int]] = [frozenset() for _ in edges]
    chosen, kept = _cell_gene(edges, probs, steps, excluded)

    def skip_edges() -> list[int]:
        return [e for e in kept if chosen[e] >= 0 and edges[e].ops[chosen[e]] == IDENTITY_OP]

    while max_skip is not None and len(skip_edges()) > max_skip:
        candidates = skip_edges()
        weakest = min(candidates, key=lambda e: probs[e][chosen[e]])  # first on ties
        probs[weakest][chosen[weakest]] = 0.0
        # A removed skip-connect never comes back, even where every other op underflowed to 0.
        excluded[weakest] = excluded[weakest] | {chosen[weakest]}
        chosen, kept = _cell_gene(edges, probs, steps, excluded)
    return _gene(edges, chosen, kept, steps)


def derive_genotype(arch: ArchWeights, max_skip: int | None = None) -> Genotype:
    """The genotype of an architecture; ``max_skip`` refines the normal cell only."""
    concat = tuple(range(CELL_INPUTS, CELL_INPUTS + arch.steps))
    meta = {"max_skip": max_skip} if max_skip is not None else {}
    return Genotype(
        normal=derive_cell(arch.normal, arch.steps, max_skip),
        normal_concat=concat,
        reduce=derive_cell(arch.reduce, arch.steps),
        reduce_concat=concat,
        meta=meta,
    )


def approximate_search_space(
    edges: Sequence[EdgeWeights], keep: int
) -> tuple[tuple[str, ...], ...]:
    """The candidates each edge keeps for the next stage (search space approximation)."""
    return tuple(prune_edge(e.ops, edge_probabilities(e.alpha), keep) for e in edges)

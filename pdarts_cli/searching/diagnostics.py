"""Collapse diagnostics: what a stage's alphas say at the end of each epoch.

A differentiable search can drift towards parameter-free ops, skip-connects above all, as it
gets deeper (the "collapse" the P-DARTS refinement guards against). These numbers show it
while the search runs, from the alphas alone:

- the genotype the alphas would give now: exactly ``derive.derive_genotype`` of the current
  alphas, unrefined (no ``max_skip``), and its skip-connects per cell type;
- the entropy of each edge's op weights: in nats, of the float32 softmax over the edge's
  current candidates (``none`` included, as the supernet weighs it); ln k when the k
  candidates are weighted equally, 0 when one op has all the weight;
- the edges whose chosen op changed since the previous epoch: the chosen op is the one the
  derivation picks (``derive.chosen_op``: ``none`` left out, ties to the later op). Candidate
  sets change between stages, so epochs are compared within a stage only; a stage's first
  epoch has no previous epoch and reports None.

Pure functions of the alphas: no random numbers, nothing written back; one small softmax per
edge, so an epoch's diagnostics cost a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pdarts_ops import IDENTITY_OP, ZERO_OP

from pdarts_cli.arch import ArchWeights, EdgeWeights
from pdarts_cli.genotype import Genotype
from pdarts_cli.searching.derive import chosen_op, derive_genotype, edge_probabilities
from pdarts_cli.topology import CELL_TYPES

# Per cell type, the op each edge's derivation picks, in edge order.
ChosenOps = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class EpochDiagnostics:
    genotype: Genotype  # the plain derivation of the current alphas
    skip_connects: dict[str, int]  # per cell type, in that genotype
    edge_entropy: dict[str, list[float]]  # per cell type, per edge, nats
    chosen: ChosenOps  # what the next epoch is compared with
    changed_edges: dict[str, int] | None  # per cell type; None without a previous epoch


def entropy_nats(probabilities: Sequence[float]) -> float:
    """-sum p ln p; ops with probability 0 add nothing."""
    return -sum(p * math.log(p) for p in probabilities if p > 0)


def edge_entropy(edge: EdgeWeights) -> float:
    """Entropy (nats) of the softmax over the edge's current candidates."""
    return entropy_nats(edge_probabilities(edge.alpha))


def edge_choice(edge: EdgeWeights) -> str:
    """The op the derivation picks on this edge (``none`` only if it is the sole candidate)."""
    best = chosen_op(edge.ops, edge_probabilities(edge.alpha))
    return edge.ops[best] if best >= 0 else ZERO_OP


def chosen_ops(arch: ArchWeights) -> ChosenOps:
    """Per cell type, each edge's chosen op."""
    return {cell: tuple(edge_choice(e) for e in arch.cell(cell)) for cell in CELL_TYPES}


def changed_edges(previous: Sequence[str], current: Sequence[str]) -> int:
    """How many edges chose another op; both epochs must be of one stage (same edges)."""
    if len(previous) != len(current):
        raise ValueError(f"cannot compare {len(previous)} edges with {len(current)}")
    return sum(a != b for a, b in zip(previous, current))


def diagnose(arch: ArchWeights, previous: Mapping[str, Sequence[str]] | None) -> EpochDiagnostics:
    """The diagnostics of ``arch``; ``previous`` is the previous epoch's ``chosen`` in the same
    stage, or None in a stage's first epoch."""
    genotype = derive_genotype(arch)
    chosen = chosen_ops(arch)
    changed = None
    if previous is not None:
        changed = {cell: changed_edges(previous[cell], chosen[cell]) for cell in CELL_TYPES}
    return EpochDiagnostics(
        genotype=genotype,
        skip_connects={cell: genotype.count(IDENTITY_OP, cell) for cell in CELL_TYPES},
        edge_entropy={cell: [edge_entropy(e) for e in arch.cell(cell)] for cell in CELL_TYPES},
        chosen=chosen,
        changed_edges=changed,
    )


def skip_warning(
    stage: int, epoch: int, normal_skips: int, max_skip: int | None, joint: bool
) -> str | None:
    """The warning for a normal cell above M skip-connects (1-based stage and epoch), or None.

    Only for ``joint`` epochs, those that trained the alphas: during the warm-up the alphas
    are still their random initial values, and so is the genotype they give."""
    if not joint or max_skip is None or normal_skips <= max_skip:
        return None
    plural = "" if normal_skips == 1 else "s"
    return (
        f"stage {stage} epoch {epoch}: the alphas give {normal_skips} skip-connect{plural} in "
        f"the normal cell, more than max_skip = {max_skip} (refinement would remove "
        f"{normal_skips - max_skip}): the search may be collapsing into skip-connects"
    )

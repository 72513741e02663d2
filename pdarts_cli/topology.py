"""The shape of a DARTS cell, defined once.

A cell has two inputs (states 0 and 1: the outputs of the two previous cells) and ``steps``
intermediate nodes (states 2 .. steps + 1). Node ``j`` (state ``j + 2``) has an edge from every
earlier state, so the edges, in the order alphas and arch files list them, are
``(0->2), (1->2), (0->3), (1->3), (2->3), (0->4), ...``. A derived cell keeps
``INPUTS_PER_NODE`` of each node's edges; a genotype lists them node by node, so its gene ``k``
feeds state ``k // INPUTS_PER_NODE + 2``.
"""

from __future__ import annotations

from typing import NamedTuple

CELL_TYPES = ("normal", "reduce")
CELL_INPUTS = 2  # the outputs of the two previous cells
INPUTS_PER_NODE = 2  # edges a derived cell keeps per intermediate node


class Edge(NamedTuple):
    """One edge of a cell: from state ``source`` to state ``target`` (both 0-based states;
    targets start at ``CELL_INPUTS``)."""

    source: int
    target: int

    @property
    def label(self) -> str:
        """``source->target``, as genotype tables and plots name an edge."""
        return f"{self.source}->{self.target}"


def edges_per_cell(steps: int) -> int:
    """Edges of a cell with ``steps`` intermediate nodes (14 for DARTS' 4)."""
    return sum(CELL_INPUTS + node for node in range(steps))


def cell_edges(steps: int) -> tuple[Edge, ...]:
    """Every edge of a cell, in the order of its alphas."""
    return tuple(
        Edge(source, CELL_INPUTS + node)
        for node in range(steps)
        for source in range(CELL_INPUTS + node)
    )


def node_edges(steps: int) -> tuple[range, ...]:
    """Per intermediate node, the positions of its incoming edges in ``cell_edges``."""
    ranges, start = [], 0
    for node in range(steps):
        count = CELL_INPUTS + node
        ranges.append(range(start, start + count))
        start += count
    return tuple(ranges)


def cell_steps(edges: int) -> int | None:
    """The number of intermediate nodes of a cell with ``edges`` edges; None when no cell
    has that many."""
    steps = 1  # a cell has at least one intermediate node
    while edges_per_cell(steps) < edges:
        steps += 1
    return steps if edges_per_cell(steps) == edges else None


def gene_target(gene: int) -> int:
    """The state that gene ``gene`` of a genotype's cell feeds."""
    return gene // INPUTS_PER_NODE + CELL_INPUTS


def reduction_indices(cells: int) -> tuple[int, int]:
    """Cells at one and two thirds of the depth reduce (DARTS)."""
    return cells // 3, 2 * cells // 3

"""Comparing two genotypes node by node: ``pdarts genotype diff A B``.

The genotypes of several seeds are compared edge by edge in :mod:`.stability`
(``pdarts genotype diff RUN/stability.json``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pdarts_cli.genotype.model import Gene, Genotype
from pdarts_cli.topology import CELL_TYPES, INPUTS_PER_NODE


@dataclass(frozen=True)
class NodeDifference:
    cell_type: str
    node: int  # intermediate node index, 0-based (node k is graph node k + 2)
    only_a: Gene
    only_b: Gene


@dataclass(frozen=True)
class GenotypeDiff:
    nodes: tuple[NodeDifference, ...]
    concat: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # (cell type, a, b)

    @property
    def identical(self) -> bool:
        return not self.nodes and not self.concat


def genotype_diff(a: Genotype, b: Genotype) -> GenotypeDiff:
    """Per cell and node, the (op, input) pairs one genotype has and the other has not."""
    nodes, concat = [], []
    for cell_type in CELL_TYPES:
        gene_a, gene_b = a.cell(cell_type), b.cell(cell_type)
        for node in range(max(len(gene_a), len(gene_b)) // INPUTS_PER_NODE):
            pairs = slice(INPUTS_PER_NODE * node, INPUTS_PER_NODE * (node + 1))
            count_a, count_b = Counter(gene_a[pairs]), Counter(gene_b[pairs])
            only_a, only_b = (
                tuple((count_a - count_b).elements()),
                tuple((count_b - count_a).elements()),
            )
            if only_a or only_b:
                nodes.append(NodeDifference(cell_type, node, only_a, only_b))
        if a.concat(cell_type) != b.concat(cell_type):
            concat.append((cell_type, a.concat(cell_type), b.concat(cell_type)))
    return GenotypeDiff(tuple(nodes), tuple(concat))

"""The genotype type, its validation and its ``pdarts-genotype/1`` JSON form.

A genotype lists, node by node, the ``(op, input)`` pairs of each cell type, as DARTS does.
Every reader checks op names against the op registry unless told otherwise, so no command
accepts a genotype nobody can build.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdarts_cli.errors import ArtifactError
from pdarts_cli.registry import KnownOps, op_registry
from pdarts_cli.topology import CELL_INPUTS, INPUTS_PER_NODE

GENOTYPE_FORMAT = "pdarts-genotype/1"

Gene = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Genotype:
    normal: Gene
    normal_concat: tuple[int, ...]
    reduce: Gene
    reduce_concat: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def steps(self) -> int:
        return len(self.normal) // INPUTS_PER_NODE

    def cell(self, cell_type: str) -> Gene:
        return self.normal if cell_type == "normal" else self.reduce

    def concat(self, cell_type: str) -> tuple[int, ...]:
        return self.normal_concat if cell_type == "normal" else self.reduce_concat

    def count(self, op: str, cell_type: str = "normal") -> int:
        return sum(1 for name, _ in self.cell(cell_type) if name == op)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": GENOTYPE_FORMAT,
            "normal": [[op, i] for op, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, i] for op, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }
        if self.meta:
            data["meta"] = dict(self.meta)
        return data

    def to_darts(self) -> str:
        """DARTS syntax, as the DARTS and P-DARTS code print and store genotypes."""

        def gene(cell: Gene) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in cell) + "]"

        def concat(nodes: tuple[int, ...]) -> str:
            if nodes and list(nodes) == list(range(nodes[0], nodes[-1] + 1)):
                return f"range({nodes[0]}, {nodes[-1] + 1})"
            return "[" + ", ".join(str(n) for n in nodes) + "]"

        return (
            f"Genotype(normal={gene(self.normal)}, normal_concat={concat(self.normal_concat)}, "
            f"reduce={gene(self.reduce)}, reduce_concat={concat(self.reduce_concat)})"
        )


def _check_gene(gene: object, name: str, known: KnownOps) -> Gene:
    if not isinstance(gene, (list, tuple)) or not gene:
        raise ArtifactError(f"{name}: expected a list of [op, input] pairs")
    if len(gene) % INPUTS_PER_NODE:
        raise ArtifactError(
            f"{name}: every node takes {INPUTS_PER_NODE} inputs, got {len(gene)} ops"
        )
    pairs = []
    for k, pair in enumerate(gene):
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], int)
            or isinstance(pair[1], bool)
        ):
            raise ArtifactError(f"{name}.{k}: expected [op name, input index]")
        op, index = pair
        node = k // INPUTS_PER_NODE
        known.require(op, f"{name}.{k}")
        if not 0 <= index < CELL_INPUTS + node:
            raise ArtifactError(
                f"{name}.{k}: node {node} takes inputs 0..{CELL_INPUTS + node - 1}, "
                f"got input {index}"
            )
        pairs.append((op, index))
    return tuple(pairs)


def _check_concat(concat: object, name: str, steps: int) -> tuple[int, ...]:
    if not isinstance(concat, (list, tuple, range)) or not concat:
        raise ArtifactError(f"{name}: expected a non-empty list of node indices")
    nodes = tuple(concat)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in nodes):
        raise ArtifactError(f"{name}: node indices must be integers")
    states = range(CELL_INPUTS, CELL_INPUTS + steps)  # the intermediate nodes
    if any(n not in states for n in nodes) or len(set(nodes)) != len(nodes):
        raise ArtifactError(f"{name}: nodes must be distinct and in {list(states)}")
    return nodes


def genotype_from_dict(
    data: object, source: str = "genotype", known_ops: Collection[str] | None = None
) -> Genotype:
    """Validate a genotype object (the JSON format, ``format`` key optional).

    Op names are checked against ``known_ops``, by default the op registry's at this moment.
    """
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{source}: expected a JSON object")
    fmt = data.get("format", GENOTYPE_FORMAT)
    if fmt != GENOTYPE_FORMAT:
        raise ArtifactError(f"{source}: format must be {GENOTYPE_FORMAT!r}, got {fmt!r}")
    allowed = {"format", "normal", "normal_concat", "reduce", "reduce_concat", "meta"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ArtifactError(f"{source}: unknown field {unknown[0]!r}")
    missing = [k for k in ("normal", "normal_concat", "reduce", "reduce_concat") if k not in data]
    if missing:
        raise ArtifactError(f"{source}: missing field {missing[0]!r}")
    known = KnownOps.of(known_ops)
    normal = _check_gene(data["normal"], f"{source}: normal", known)
    reduce = _check_gene(data["reduce"], f"{source}: reduce", known)
    if len(normal) != len(reduce):
        raise ArtifactError(f"{source}: normal and reduce cells must have the same number of nodes")
    steps = len(normal) // INPUTS_PER_NODE
    meta = data.get("meta", {})
    if not isinstance(meta, Mapping):
        raise ArtifactError(f"{source}: meta must be an object")
    return Genotype(
        normal=normal,
        normal_concat=_check_concat(data["normal_concat"], f"{source}: normal_concat", steps),
        reduce=reduce,
        reduce_concat=_check_concat(data["reduce_concat"], f"{source}: reduce_concat", steps),
        meta=dict(meta),
    )


def known_op_names() -> list[str]:
    return op_registry().names()


def genotype_json(genotype: Genotype) -> str:
    return json.dumps(genotype.to_dict(), indent=2) + "\n"


def write_genotype(genotype: Genotype, path: Path) -> None:
    path.write_text(genotype_json(genotype), encoding="utf-8")

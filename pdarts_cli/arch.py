"""The architecture weights file ``pdarts-arch/1``: each edge's candidate ops and raw alphas.

Search writes one at the end of every stage; refine and derivation read them. Unknown extra
keys (``stage``, ``cells_in_network``, ``dataset``, ...) are kept as they are. Every op name
must be registered (see :class:`pdarts_cli.registry.KnownOps`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdarts_cli.errors import ArtifactError
from pdarts_cli.files import parse_json, read_text
from pdarts_cli.registry import KnownOps
from pdarts_cli.topology import CELL_TYPES, edges_per_cell

ARCH_FORMAT = "pdarts-arch/1"


@dataclass(frozen=True)
class EdgeWeights:
    """One edge: its current candidate ops in canonical order and their raw logits."""

    ops: tuple[str, ...]
    alpha: tuple[float, ...]


@dataclass(frozen=True)
class ArchWeights:
    steps: int
    normal: tuple[EdgeWeights, ...]
    reduce: tuple[EdgeWeights, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def cell(self, cell_type: str) -> tuple[EdgeWeights, ...]:
        return self.normal if cell_type == "normal" else self.reduce

    def to_dict(self) -> dict[str, Any]:
        cells = {
            name: [{"ops": list(e.ops), "alpha": list(e.alpha)} for e in self.cell(name)]
            for name in CELL_TYPES
        }
        return {"format": ARCH_FORMAT, "steps": self.steps, "cells": cells, **self.extra}


def _parse_edge(raw: object, where: str, known: KnownOps) -> EdgeWeights:
    if not isinstance(raw, Mapping) or set(raw) != {"ops", "alpha"}:
        raise ArtifactError(f"{where}: expected an object with 'ops' and 'alpha'")
    ops, alpha = raw["ops"], raw["alpha"]
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops) or not ops:
        raise ArtifactError(f"{where}.ops: expected a non-empty list of op names")
    if len(set(ops)) != len(ops):
        raise ArtifactError(f"{where}.ops: an op is listed twice")
    for op in ops:
        known.require(op, f"{where}.ops")
    if (
        not isinstance(alpha, list)
        or len(alpha) != len(ops)
        or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in alpha)
    ):
        raise ArtifactError(f"{where}.alpha: expected {len(ops)} numbers, one per op")
    if not all(math.isfinite(a) for a in alpha):
        raise ArtifactError(f"{where}.alpha: every alpha must be a finite number")
    return EdgeWeights(tuple(ops), tuple(float(a) for a in alpha))


def arch_from_dict(
    data: object, source: str = "architecture", known_ops: Collection[str] | None = None
) -> ArchWeights:
    """Validate a parsed ``pdarts-arch/1`` object.

    Op names are checked against ``known_ops``, by default the op registry's: an architecture
    naming an op nothing provides would otherwise yield genotypes nobody can train.
    """
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{source}: expected a JSON object")
    if data.get("format") != ARCH_FORMAT:
        raise ArtifactError(f"{source}: format must be {ARCH_FORMAT!r}, got {data.get('format')!r}")
    steps = data.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ArtifactError(f"{source}: steps must be a positive integer")
    cells = data.get("cells")
    if not isinstance(cells, Mapping) or set(cells) != set(CELL_TYPES):
        raise ArtifactError(f"{source}: cells must hold exactly 'normal' and 'reduce'")
    expected = edges_per_cell(steps)
    known = KnownOps.of(known_ops)
    parsed = {}
    for name in CELL_TYPES:
        edges = cells[name]
        if not isinstance(edges, list) or len(edges) != expected:
            raise ArtifactError(
                f"{source}: cells.{name} must list {expected} edges for {steps} steps"
            )
        parsed[name] = tuple(
            _parse_edge(e, f"{source}: cells.{name}.{i}", known) for i, e in enumerate(edges)
        )
    extra = {k: v for k, v in data.items() if k not in {"format", "steps", "cells"}}
    return ArchWeights(steps, parsed["normal"], parsed["reduce"], extra)


def read_arch(path: Path, known_ops: Collection[str] | None = None) -> ArchWeights:
    """A ``pdarts-arch/1`` file; op names as :func:`arch_from_dict` checks them."""
    data = parse_json(read_text(path, ArtifactError), ArtifactError, f"{path} is not valid JSON")
    return arch_from_dict(data, source=str(path), known_ops=known_ops)


def arch_json(arch: ArchWeights) -> str:
    return json.dumps(arch.to_dict(), indent=2) + "\n"

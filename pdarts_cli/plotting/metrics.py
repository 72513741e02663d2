"""Reading and checking a run's metrics.jsonl: pure Python, no torch, no matplotlib."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pdarts_cli.errors import RunDirError
from pdarts_cli.files import read_text
from pdarts_cli.topology import CELL_TYPES

# The names pdarts_cli.runlog gives these files (a test keeps them equal); importing runlog
# would import torch through pdarts_cli.checkpoint, a second or two for a picture.
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"

Record = dict[str, Any]
Line = tuple[int, Record]  # 1-based line number in metrics.jsonl, the parsed object
OpSeries = dict[str, tuple[list[int], list[float]]]  # op -> (global epochs, probabilities)


def read_metrics(path: Path) -> list[Line]:
    """The JSON objects of metrics.jsonl with their line numbers; blank lines are skipped."""
    text = read_text(path, RunDirError) if path.is_file() else ""
    lines: list[Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} line {number} is not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise RunDirError(f"{path} line {number} is not a JSON object")
        lines.append((number, record))
    if not lines:
        raise RunDirError(f"{path.parent} has no metrics yet ({METRICS_FILE} is missing or empty)")
    return lines


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Metrics:
    """Typed access to the fields of metrics.jsonl, naming the file and line of a bad value.
    Only the fields a figure draws are read, so they are the only ones required."""

    def __init__(self, path: Path, lines: Sequence[Line]) -> None:
        self.path = path
        self.lines = lines

    def error(self, number: int, message: str) -> RunDirError:
        return RunDirError(f"{self.path} line {number}: {message}")

    def column(self, key: str, nullable: bool = False, optional: bool = False) -> list[float]:
        """``key`` of every line; NaN (a gap in the plotted line) for null or non-finite.
        An ``optional`` key, one that older runs do not write, reads as null when missing."""
        values = []
        for number, record in self.lines:
            if key not in record and not optional:
                raise self.error(number, f"{key!r} is missing")
            value: Any = record.get(key)
            if value is None and (nullable or optional):
                values.append(math.nan)
            elif _is_number(value):
                values.append(float(value) if math.isfinite(value) else math.nan)
            else:
                expected = "a number or null" if nullable or optional else "a number"
                raise self.error(number, f"{key!r} must be {expected}, got {value!r}")
        return values

    def counts(self, key: str) -> list[int]:
        """A 1-based counter (stage, epoch) of every line."""
        values = []
        for number, record in self.lines:
            value: Any = record.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.error(number, f"{key!r} must be a positive integer, got {value!r}")
            values.append(value)
        return values

    def per_cell(self, key: str) -> dict[str, list[float]]:
        """``key`` as {cell type: number} of every line (a collapse diagnostic), per cell
        type; NaN where the line, or an older run's line, has none."""
        cells: dict[str, list[float]] = {cell: [] for cell in CELL_TYPES}
        for number, record in self.lines:
            value: Any = record.get(key)
            if value is not None and not isinstance(value, dict):
                raise self.error(number, f"{key!r} must map cell types to numbers")
            for cell, values in cells.items():
                item = (value or {}).get(cell)
                if item is not None and not _is_number(item):
                    raise self.error(number, f"{key}.{cell} must be a number, got {item!r}")
                values.append(math.nan if item is None else float(item))
        return cells

    def mean_entropy(self) -> dict[str, list[float]]:
        """Per cell type, the mean of ``edge_entropy`` over its edges; NaN where missing."""
        cells: dict[str, list[float]] = {cell: [] for cell in CELL_TYPES}
        for number, record in self.lines:
            value: Any = record.get("edge_entropy") or {}
            if not isinstance(value, dict):
                raise self.error(number, "'edge_entropy' must map cell types to lists of numbers")
            for cell, means in cells.items():
                edges = value.get(cell) or []
                if not isinstance(edges, list) or not all(map(_is_number, edges)):
                    raise self.error(number, f"edge_entropy.{cell} must be a list of numbers")
                means.append(sum(edges) / len(edges) if edges else math.nan)
        return cells

    def ops_per_edge(self) -> list[float]:
        """The candidates of the first normal edge on every line (all edges of a stage have
        as many); NaN without alphas. Call after :meth:`alphas`, which checks them."""
        counts = []
        for _, record in self.lines:
            edges = (record.get("alphas") or {}).get("normal") or []
            counts.append(float(len(edges[0])) if edges else math.nan)
        return counts

    def alphas(self, epochs: Sequence[int]) -> dict[str, list[OpSeries]]:
        """For each cell type and edge, each op's probability over the global epochs. An op
        that a later stage drops has no points after its last stage."""
        cells: dict[str, list[OpSeries]] = {cell: [] for cell in CELL_TYPES}
        for (number, record), epoch in zip(self.lines, epochs):
            alphas = record.get("alphas") or {}
            if not isinstance(alphas, dict):
                raise self.error(number, "'alphas' must map cell types to lists of edges")
            for cell, series in cells.items():
                edges = alphas.get(cell, [])
                if not isinstance(edges, list):
                    raise self.error(number, f"alphas.{cell} must be a list of edges")
                series.extend({} for _ in range(len(edges) - len(series)))
                for index, probs in enumerate(edges):
                    if not isinstance(probs, dict) or not all(map(_is_number, probs.values())):
                        raise self.error(number, f"alphas.{cell}.{index} must map ops to numbers")
                    for op, p in probs.items():
                        xs, ps = series[index].setdefault(op, ([], []))
                        xs.append(epoch)
                        ps.append(float(p))
        return cells


def global_epochs(stages: Sequence[int], epochs: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Each line's epoch counted across stages (1-based), and the global epoch each stage
    starts at. A stage is as long as its last recorded epoch."""
    last: dict[int, int] = {}
    for stage, epoch in zip(stages, epochs):
        last[stage] = max(epoch, last.get(stage, 0))
    first: dict[int, int] = {}
    done = 0
    for stage in sorted(last):
        first[stage] = done + 1
        done += last[stage]
    return [first[stage] + epoch - 1 for stage, epoch in zip(stages, epochs)], first

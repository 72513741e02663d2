"""What the search loop reports while it runs. The CLI renders it; the library never prints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdarts_cli.arch import ArchWeights
from pdarts_cli.context import Observer
from pdarts_cli.genotype import Genotype


@dataclass(frozen=True)
class StageStart:
    stage: int  # 1-based
    stages: int
    cells: int
    ops_per_edge: int
    epochs: int
    first_epoch: int  # 1-based; above 1 when resumed mid-stage
    batches_per_epoch: int
    batch_size: int
    parameters: int  # network weights, alphas excluded


@dataclass(frozen=True)
class BatchProgress:
    stage: int
    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based batch of this epoch
    steps: int
    loss: float  # running mean of this epoch's weight-step loss
    accuracy: float  # running top-1 of this epoch's weight batches, in [0, 1]
    joint: bool  # True once alphas are updated too


@dataclass(frozen=True)
class EpochMetrics:
    """One line of metrics.jsonl."""

    stage: int
    epoch: int
    lr: float
    skip_dropout_p: float
    train_loss: float
    train_accuracy: float
    alpha_loss: float | None  # on the alpha half, during joint epochs
    alpha_accuracy: float | None
    valid_loss: float | None  # alpha half in eval mode, last epochs of a stage
    valid_accuracy: float | None
    seconds: float
    # softmax(alpha) per edge at the end of the epoch: {"normal": [{op: p, ...}, ...], ...}
    alphas: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    # Collapse diagnostics (searching.diagnostics); empty or None in lines of older runs.
    genotype: str | None = None  # DARTS string of the plain derivation of the current alphas
    skip_connects: dict[str, int] = field(default_factory=dict)  # per cell type, in genotype
    edge_entropy: dict[str, list[float]] = field(default_factory=dict)  # nats, per edge
    changed_edges: dict[str, int] | None = None  # chosen op changed; None: stage's 1st epoch
    max_skip: int | None = None  # the schedule's M, which the warning compares with

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def mean_entropy(self) -> dict[str, float]:
        """Per cell type, the mean over its edges of ``edge_entropy``."""
        return {cell: sum(v) / len(v) for cell, v in self.edge_entropy.items() if v}

    @property
    def changed_edge_count(self) -> int | None:
        """Edges of both cell types whose chosen op changed, or None."""
        return None if self.changed_edges is None else sum(self.changed_edges.values())


@dataclass(frozen=True)
class EdgeReport:
    ops: tuple[str, ...]
    probabilities: tuple[float, ...]
    kept: tuple[str, ...]  # what the next stage searches, or the final op after the last stage


@dataclass(frozen=True)
class StageReport:
    stage: int
    last: bool
    normal: tuple[EdgeReport, ...]
    reduce: tuple[EdgeReport, ...]
    arch: ArchWeights


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path | None  # None for a search that wrote no files
    genotype: Genotype
    arch: ArchWeights
    seconds: float
    metrics: list[EpochMetrics] = field(default_factory=list)
    unrefined: Genotype | None = None  # the plain derivation, before refinement

    @property
    def skips_removed(self) -> int:
        """Normal-cell skip-connects that the refinement took out."""
        if self.unrefined is None:
            return 0
        return self.unrefined.count("skip_connect") - self.genotype.count("skip_connect")


class SearchObserver(Observer):
    """No-op hooks; subclass and override what you want to see."""

    def stage_started(self, start: StageStart) -> None:
        pass

    def batch_finished(self, progress: BatchProgress) -> None:
        pass

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        pass

    def warning(self, text: str) -> None:
        """Something the user should look at (a possible collapse); by default a note."""
        self.note(text)

    def stage_finished(self, report: StageReport) -> None:
        pass

    def search_finished(self, result: SearchResult) -> None:
        pass

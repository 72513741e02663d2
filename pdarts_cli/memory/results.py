"""What the profiler reports: a stage's candidates, its measurements and fit, the whole
profile and its JSON form, and the schedule with the recommended batches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pdarts_cli.errors import PdartsError
from pdarts_cli.schedule import Schedule, with_stage_values

EdgeOps = tuple[tuple[str, ...], ...]  # per edge of one cell type, its candidate op names
CandidateSource = Literal["all", "survivors", "upper bound"]


@dataclass(frozen=True)
class StageCandidates:
    """The candidate ops a profiled stage holds on each edge, and where they come from: every
    candidate (a first stage), the survivors of the previous stage (known during a search), or
    the ``ops_per_edge`` most memory-hungry candidates on every edge (an upper bound)."""

    source: CandidateSource
    normal: EdgeOps
    reduce: EdgeOps
    ops: tuple[str, ...]  # every op the stage holds, in the schedule's canonical order


ProbeKind = Literal["measure", "idle", "confirm"]


@dataclass(frozen=True)
class ProbeReport:
    """One finished child run, as the profiler reports it while it works."""

    stage: int  # 1-based
    kind: ProbeKind  # a fitted batch, the idle baseline, or the recommended batch confirmed
    measurement: Measurement
    seconds: float
    done: int  # child runs finished so far, this one included
    total: int  # child runs the whole profile makes
    eta_seconds: float  # the mean time of a run so far, times the runs left


@dataclass(frozen=True)
class Measurement:
    batch_size: int
    peak_bytes: int | None  # the fitted figure; None when the child ran out of memory
    rss_bytes: int | None = None
    cuda_allocated_bytes: int | None = None
    cuda_reserved_bytes: int | None = None
    error: str | None = None
    images_per_half: int | None = None  # a batch cannot exceed the weight half of the data


@dataclass(frozen=True)
class StageProfile:
    stage: int  # 1-based
    cells: int
    ops_per_edge: int
    channels: int
    measurements: tuple[Measurement, ...]
    idle_bytes: int
    slope_bytes: float
    intercept_bytes: float
    recommended_batch: int | None  # the largest that fits, capped (by default at the schedule's)
    confirmation: Measurement | None
    candidates: StageCandidates
    largest_fitting_batch: int | None = None  # before the cap
    overhead_bytes: int = 0  # what the running process holds beyond an idle child

    def predict(self, batch_size: int) -> float:
        """The peak of the process that runs the stage at ``batch_size``."""
        return self.intercept_bytes + self.overhead_bytes + self.slope_bytes * batch_size


@dataclass(frozen=True)
class MemoryProfile:
    schedule: str
    device: str
    metric: str  # what peak_bytes is
    budget_bytes: int
    checkpoint_cells: bool
    stages: tuple[StageProfile, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "device": self.device,
            "metric": self.metric,
            "budget_bytes": self.budget_bytes,
            "checkpoint_cells": self.checkpoint_cells,
            "stages": [_stage_dict(s) for s in self.stages],
        }


def _stage_dict(stage: StageProfile) -> dict[str, Any]:
    """One stage of the JSON report. ``candidates`` says which ops were profiled and ``ops``
    names them; survivors, which differ from edge to edge, are also listed per edge."""
    held = stage.candidates
    per_edge = {"normal": [list(e) for e in held.normal], "reduce": [list(e) for e in held.reduce]}
    recommended = stage.recommended_batch
    return {
        "stage": stage.stage,
        "cells": stage.cells,
        "ops_per_edge": stage.ops_per_edge,
        "channels": stage.channels,
        "candidates": held.source,
        "ops": list(held.ops),
        **(per_edge if held.source == "survivors" else {}),
        "idle_bytes": stage.idle_bytes,
        "slope_bytes_per_image": stage.slope_bytes,
        "intercept_bytes": stage.intercept_bytes,
        "overhead_bytes": stage.overhead_bytes,
        "measurements": [dataclasses.asdict(m) for m in stage.measurements],
        "recommended_batch": recommended,
        "largest_fitting_batch": stage.largest_fitting_batch,
        "predicted_bytes": stage.predict(recommended) if recommended else None,
        "confirmation": dataclasses.asdict(stage.confirmation) if stage.confirmation else None,
    }


def schedule_with_picks(schedule: Schedule, profile: MemoryProfile) -> Schedule:
    """``schedule`` with each stage's batch size set to the profile's recommendation."""
    picks = [stage.recommended_batch for stage in profile.stages]
    if any(pick is None for pick in picks):
        raise PdartsError("a stage has no recommended batch size; nothing to write")
    return with_stage_values(schedule, "batch_size", picks)

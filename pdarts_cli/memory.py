"""profile-memory: measure a search iteration's peak memory per stage, fit, recommend a batch.

Every measurement runs in a fresh child process (``pdarts_cli.memory_probe``), so its peak is
its own. On CUDA the figure that matters is ``max_memory_reserved`` (what the allocator holds);
on the CPU it is the child's peak resident memory, shown beside the peak of an idle child
that only imported torch and built the data. For a fixed stage, memory is affine in the batch
size: peak = intercept + slope * batch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pdarts_cli.errors import PdartsError
from pdarts_cli.schedule import Schedule

SAFETY_MARGIN = 0.10  # share of the device's memory left free by the default budget
MAX_RECOMMENDED_BATCH = 8192  # when the fitted slope is ~0, the fit says little beyond this
RANKING_INPUT_SHAPE = (2, 8, 16, 16)  # batch, channels, height, width: enough to rank, in ms
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "kib": 2**10, "kb": 10**3,
    "m": 2**20, "mib": 2**20, "mb": 10**6,
    "g": 2**30, "gib": 2**30, "gb": 10**9,
    "t": 2**40, "tib": 2**40, "tb": 10**12,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes from ``16GiB``, ``16 GB``, ``16g``, ``16000MB``: KiB/MiB/GiB and single letters
    are powers of 1024, kB/MB/GB powers of 1000."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise PdartsError(f"cannot read {text!r} as a size; write it like 16GiB, 16 GB or 16000MB")
    size = float(match.group(1)) * _UNITS[unit]
    if size <= 0:
        raise PdartsError(f"a size must be positive, got {text!r}")
    return int(size)


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise PdartsError(f"--batch-sizes takes integers such as 32,64,96, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise PdartsError(f"batch sizes must be at least 1, got {text!r}")
    if len(sizes) < 2:
        raise PdartsError("give at least two batch sizes: the fit needs two points")
    return sizes


def mib(size: float) -> float:
    return size / 2**20


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

    def predict(self, batch_size: int) -> float:
        return self.intercept_bytes + self.slope_bytes * batch_size


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
        "measurements": [dataclasses.asdict(m) for m in stage.measurements],
        "recommended_batch": recommended,
        "largest_fitting_batch": stage.largest_fitting_batch,
        "predicted_bytes": stage.predict(recommended) if recommended else None,
        "confirmation": dataclasses.asdict(stage.confirmation) if stage.confirmation else None,
    }


def schedule_with_picks(schedule: Schedule, profile: MemoryProfile) -> Schedule:
    """``schedule`` with each stage's batch size set to the profile's recommendation."""
    from pdarts_cli.schedule import with_stage_values

    picks = [stage.recommended_batch for stage in profile.stages]
    if any(pick is None for pick in picks):
        raise PdartsError("a stage has no recommended batch size; nothing to write")
    return with_stage_values(schedule, "batch_size", picks)


def saved_activation_bytes(name: str, stride: int) -> int:
    """Bytes of the tensors autograd saves for the backward pass in one forward of op ``name``,
    built as a search edge holds it (pools followed by their BatchNorm), on a small input.

    These saved activations are what a candidate adds to a search step's peak. Each storage
    counts once; the input (shared by every candidate of the edge) and the op's parameters and
    buffers (no activations) do not count. Sizes do not depend on the values; the caller's
    random state is left as it was.
    """
    import torch

    from pdarts_cli.registry import op_registry
    from pdarts_cli.search.supernet import build_candidate

    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        channels = RANKING_INPUT_SHAPE[1]
        op = build_candidate(name, op_registry().get(name), channels, stride).train()
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(RANKING_INPUT_SHAPE, generator=generator, requires_grad=True)
        not_activations = {t.untyped_storage().data_ptr() for t in (x, *op.state_dict().values())}
        saved: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in not_activations:
                saved[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = op(x)
        del out
    return sum(saved.values())


@functools.cache
def memory_ranking(ops: tuple[str, ...]) -> tuple[str, ...]:
    """``ops`` from the most memory-hungry to the least: by the activations each saves at
    stride 1 plus those at stride 2 (normal and reduction edges). Ties keep the order of
    ``ops``; measured, not listed, so that plugin ops rank too."""
    saved_bytes = {
        name: sum(saved_activation_bytes(name, stride) for stride in (1, 2)) for name in ops
    }
    return tuple(sorted(ops, key=lambda name: -saved_bytes[name]))


def _canonical(schedule: Schedule, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` once each, in the order of ``schedule.candidate_ops`` (others after, sorted)."""
    wanted = set(names)
    known = [op for op in schedule.candidate_ops if op in wanted]
    return (*known, *sorted(wanted.difference(known)))


def stage_candidates(
    schedule: Schedule, index: int, normal: EdgeOps | None = None, reduce: EdgeOps | None = None
) -> StageCandidates:
    """What stage ``index`` (0-based) is profiled with: ``normal`` and ``reduce`` when given
    (a search's survivors); otherwise every candidate when the stage holds them all, else
    the ``ops_per_edge`` most memory-hungry candidates on every edge, an upper bound."""
    if (normal is None) != (reduce is None):
        raise ValueError("give both the normal and the reduce candidates, or neither")
    every = tuple(tuple(schedule.candidate_ops) for _ in range(schedule.edges_per_cell))
    keep = schedule.stages[index].ops_per_edge
    source: CandidateSource
    if normal is not None and reduce is not None:
        normal, reduce = tuple(map(tuple, normal)), tuple(map(tuple, reduce))
        source = "all" if normal == every and reduce == every else "survivors"
    elif keep == len(schedule.candidate_ops):
        source, normal, reduce = "all", every, every
    else:
        hungriest = _canonical(schedule, memory_ranking(schedule.candidate_ops)[:keep])
        source = "upper bound"
        normal = reduce = tuple(hungriest for _ in range(schedule.edges_per_cell))
    ops = _canonical(schedule, (op for cell in (normal, reduce) for edge in cell for op in edge))
    return StageCandidates(source, normal, reduce, ops)


def _probe(request: dict[str, Any], cuda: bool) -> Measurement:
    """Run one measurement in a fresh Python process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pdarts_cli.memory_probe", json.dumps(request)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    batch = request["batch_size"]
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        last = lines[-1]
        if "out of memory" in done.stderr.lower() or done.returncode in (-9, 137):
            return Measurement(batch, None, error=f"out of memory ({last})")
        raise RuntimeError(f"memory probe failed at batch {batch}: {last}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    peak = data["cuda_max_reserved_bytes"] if cuda else data["peak_rss_bytes"]
    return Measurement(
        batch_size=batch,
        peak_bytes=peak,
        rss_bytes=data["peak_rss_bytes"],
        cuda_allocated_bytes=data.get("cuda_max_allocated_bytes"),
        cuda_reserved_bytes=data.get("cuda_max_reserved_bytes"),
        images_per_half=data.get("images_per_half"),
    )


def fit_affine(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of peak bytes against batch size."""
    batches = np.array([b for b, _ in points], dtype=np.float64)
    peaks = np.array([p for _, p in points], dtype=np.float64)
    slope, intercept = np.polyfit(batches, peaks, 1)
    return float(slope), float(intercept)


def recommend(slope: float, intercept: float, budget_bytes: int) -> int:
    """The largest batch whose predicted peak fits the budget."""
    if slope <= 0:
        return MAX_RECOMMENDED_BATCH
    return min(MAX_RECOMMENDED_BATCH, math.floor((budget_bytes - intercept) / slope))


def device_budget(device: str) -> int:
    """The device's memory less the safety margin."""
    import torch

    from pdarts_cli.device import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        total = torch.cuda.get_device_properties(resolved).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * (1 - SAFETY_MARGIN))


def _request(
    schedule: Schedule,
    stage: int,
    batch: int,
    dataset: str | None,
    data_dir: Path | None,
    device: str,
    idle: bool,
    candidates: StageCandidates,
) -> dict[str, Any]:
    return {
        "schedule": schedule.model_dump(mode="json"),
        "stage": stage,
        "batch_size": batch,
        "dataset": dataset,
        "data_dir": str(data_dir) if data_dir else None,
        "device": device,
        "idle": idle,
        "normal": [list(edge) for edge in candidates.normal],
        "reduce": [list(edge) for edge in candidates.reduce],
    }


def profile_stage(
    schedule: Schedule,
    index: int,
    batch_sizes: list[int],
    budget_bytes: int,
    device: str = "auto",
    dataset: str | None = None,
    data_dir: Path | None = None,
    cuda: bool = False,
    confirm: bool = True,
    normal: EdgeOps | None = None,
    reduce: EdgeOps | None = None,
    max_batch: int | None = None,
) -> StageProfile:
    """Measure one stage (0-based ``index``) at each batch size, fit, recommend, confirm.

    ``normal`` and ``reduce``: the per-edge candidates the stage will hold (a search knows
    them); without them, see ``stage_candidates``. The recommendation is the largest batch
    within the budget and the data's weight half, at most ``max_batch``.
    """
    config = schedule.stages[index]
    candidates = stage_candidates(schedule, index, normal, reduce)

    def probe(batch: int, idle: bool = False) -> Measurement:
        request = _request(schedule, index, batch, dataset, data_dir, device, idle, candidates)
        return _probe(request, cuda)

    measurements = [probe(b) for b in batch_sizes]
    idle = probe(batch_sizes[0], idle=True)
    points = [(m.batch_size, m.peak_bytes) for m in measurements if m.peak_bytes is not None]
    if len(points) < 2:
        raise PdartsError(
            f"stage {index + 1}: fewer than two batch sizes ran without running out of memory; "
            "try smaller --batch-sizes"
        )
    slope, intercept = fit_affine(points)
    fitting = recommend(slope, intercept, budget_bytes)
    available = measurements[0].images_per_half
    if available is not None:
        fitting = min(fitting, available)
    recommended = fitting if max_batch is None else min(fitting, max_batch)
    if recommended < 1:
        needs = intercept + slope
        raise PdartsError(
            f"stage {index + 1} needs about {mib(needs):.0f} MiB at batch 1, more than the "
            f"budget of {mib(budget_bytes):.0f} MiB"
        )
    confirmation = probe(recommended) if confirm else None
    return StageProfile(
        stage=index + 1,
        cells=config.cells,
        ops_per_edge=config.ops_per_edge,
        channels=config.channels,
        measurements=tuple(measurements),
        idle_bytes=idle.rss_bytes or 0,
        slope_bytes=slope,
        intercept_bytes=intercept,
        recommended_batch=recommended,
        confirmation=confirmation,
        candidates=candidates,
        largest_fitting_batch=fitting,
    )


def profile_memory(
    schedule: Schedule,
    batch_sizes: list[int],
    budget_bytes: int | None = None,
    device: str = "auto",
    dataset: str | None = None,
    data_dir: Path | None = None,
) -> MemoryProfile:
    """Every stage of ``schedule``, measured at ``batch_sizes``.

    Each stage's recommendation is at most the schedule's batch, as ``--batch-size auto``
    picks (lower a batch to fit a smaller device, never raise it silently).
    """
    from pdarts_cli.device import resolve_device

    resolved = resolve_device(device)
    cuda = resolved.type == "cuda"
    budget = budget_bytes if budget_bytes is not None else device_budget(device)
    stages = tuple(
        profile_stage(
            schedule,
            k,
            batch_sizes,
            budget,
            str(resolved),
            dataset,
            data_dir,
            cuda,
            max_batch=stage.batch_size,
        )
        for k, stage in enumerate(schedule.stages)
    )
    return MemoryProfile(
        schedule=schedule.name,
        device=str(resolved),
        metric="torch.cuda.max_memory_reserved" if cuda else "peak resident memory (RSS)",
        budget_bytes=budget,
        checkpoint_cells=schedule.checkpoint_cells,
        stages=stages,
    )

"""Measuring: each batch size of a stage in its own child process (``pdarts_cli.memory.probe``),
then the fit, the pick within the budget and, when asked, a confirming measurement at the
pick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pdarts_cli.errors import PdartsError
from pdarts_cli.memory.candidates import stage_candidates
from pdarts_cli.memory.fit import device_budget, fit_affine, recommend
from pdarts_cli.memory.results import (
    EdgeOps,
    Measurement,
    MemoryProfile,
    ProbeKind,
    ProbeReport,
    StageCandidates,
    StageProfile,
)
from pdarts_cli.memory.sizes import mib
from pdarts_cli.schedule import Schedule
from pdarts_cli.threads import THREADS_ENV, ThreadRequest, choose_threads, using_threads

PROBE_MODULE = "pdarts_cli.memory.probe"


def probe_request(
    schedule: Schedule,
    stage: int,
    batch: int,
    dataset: str | None,
    data_dir: Path | None,
    device: str,
    idle: bool,
    candidates: StageCandidates,
) -> dict[str, Any]:
    """What the child measures, as the JSON its command line carries."""
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


def run_probe(request: dict[str, Any], cuda: bool) -> Measurement:
    """Run one measurement in a fresh Python process, computing with this process's torch
    thread count."""
    import torch  # here: only a measurement needs it

    env = {**os.environ, "PYTHONUNBUFFERED": "1", THREADS_ENV: str(torch.get_num_threads())}
    done = subprocess.run(
        [sys.executable, "-m", PROBE_MODULE, json.dumps(request)],
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
    state = data.get("optimizer_state_bytes", 0)  # one CPU iteration: add what a second holds
    peak = data["cuda_max_reserved_bytes"] if cuda else data["peak_rss_bytes"] + state
    return Measurement(
        batch_size=batch,
        peak_bytes=peak,
        rss_bytes=data["peak_rss_bytes"],
        cuda_allocated_bytes=data.get("cuda_max_allocated_bytes"),
        cuda_reserved_bytes=data.get("cuda_max_reserved_bytes"),
        images_per_half=data.get("images_per_half"),
    )


CPU_BATCH_SIZES = (4, 8, 16)  # one iteration each: a CPU profile in about a minute
CUDA_BATCH_SIZES = (16, 32, 64)


def default_batch_sizes(device: str) -> list[int]:
    """The batches a profile measures when not told: small on the CPU, where peak memory is
    as affine in the batch as anywhere and every image costs seconds; larger on a GPU."""
    from pdarts_cli.device import resolve_device

    cuda = resolve_device(device).type == "cuda"
    return list(CUDA_BATCH_SIZES if cuda else CPU_BATCH_SIZES)


def runs_per_stage(batch_sizes: list[int], confirm: bool, idle: bool = True) -> int:
    """Child runs of one stage: each batch size, the idle baseline (unless measured once for
    every stage), the confirmation."""
    return len(batch_sizes) + int(idle) + int(confirm)


class ProbeProgress:
    """Counts the child runs of a profile and passes each, with an ETA, to ``report``."""

    def __init__(self, total: int, report: Callable[[ProbeReport], None] | None = None) -> None:
        self.total = total
        self.report = report
        self.done = 0
        self.seconds = 0.0

    def measure(
        self, request: dict[str, Any], cuda: bool, stage: int, kind: ProbeKind
    ) -> Measurement:
        """Run one child (``run_probe``), timed, and report it."""
        started = time.perf_counter()
        measurement = run_probe(request, cuda)
        self.finished(stage, kind, measurement, time.perf_counter() - started)
        return measurement

    def finished(
        self, stage: int, kind: ProbeKind, measurement: Measurement, seconds: float
    ) -> None:
        self.done += 1
        self.seconds += seconds
        eta = self.seconds / self.done * max(0, self.total - self.done)
        if self.report is not None:
            self.report(ProbeReport(stage, kind, measurement, seconds, self.done, self.total, eta))


def profile_stage(
    schedule: Schedule,
    index: int,
    batch_sizes: list[int],
    budget_bytes: int,
    device: str = "auto",
    dataset: str | None = None,
    data_dir: Path | None = None,
    cuda: bool = False,
    confirm: bool = False,
    normal: EdgeOps | None = None,
    reduce: EdgeOps | None = None,
    max_batch: int | None = None,
    progress: ProbeProgress | None = None,
    idle: Measurement | None = None,
    resident_bytes: int | None = None,
) -> StageProfile:
    """Measure one stage (0-based ``index``) at each batch size, fit, recommend and, with
    ``confirm``, measure the pick.

    ``normal`` and ``reduce``: the per-edge candidates the stage will hold (a search knows
    them); without them, see ``stage_candidates``. The recommendation is the largest batch
    within the budget and the data's weight half, at most ``max_batch``. ``progress`` hears of
    every child run as it finishes. ``idle``: the idle baseline, when already measured.
    ``resident_bytes``: the memory of the process that will run the stage (a search's own,
    on the CPU); what it holds beyond an idle child counts against the budget too.
    """
    config = schedule.stages[index]
    candidates = stage_candidates(schedule, index, normal, reduce)
    progress = progress or ProbeProgress(runs_per_stage(batch_sizes, confirm, idle is None))

    def probe(batch: int, kind: ProbeKind = "measure") -> Measurement:
        idle = kind == "idle"
        request = probe_request(schedule, index, batch, dataset, data_dir, device, idle, candidates)
        return progress.measure(request, cuda, index + 1, kind)

    measurements = [probe(b) for b in batch_sizes]
    idle = idle or probe(batch_sizes[0], "idle")
    idle_bytes = idle.rss_bytes or 0
    overhead = max(0, resident_bytes - idle_bytes) if resident_bytes is not None else 0
    points = [(m.batch_size, m.peak_bytes) for m in measurements if m.peak_bytes is not None]
    if len(points) < 2:
        raise PdartsError(
            f"stage {index + 1}: fewer than two batch sizes ran without running out of memory; "
            "try smaller --batch-sizes"
        )
    slope, intercept = fit_affine(points)
    fitting = recommend(slope, intercept + overhead, budget_bytes)
    available = measurements[0].images_per_half
    if available is not None:
        fitting = min(fitting, available)
    recommended = fitting if max_batch is None else min(fitting, max_batch)
    if recommended < 1:
        needs = intercept + overhead + slope
        raise PdartsError(
            f"stage {index + 1} needs about {mib(needs):.0f} MiB at batch 1, more than the "
            f"budget of {mib(budget_bytes):.0f} MiB"
        )
    confirmation = probe(recommended, "confirm") if confirm else None
    return StageProfile(
        stage=index + 1,
        cells=config.cells,
        ops_per_edge=config.ops_per_edge,
        channels=config.channels,
        measurements=tuple(measurements),
        idle_bytes=idle_bytes,
        slope_bytes=slope,
        intercept_bytes=intercept,
        overhead_bytes=overhead,
        recommended_batch=recommended,
        confirmation=confirmation,
        candidates=candidates,
        largest_fitting_batch=fitting,
    )


def _idle_baseline(
    schedule: Schedule,
    batch: int,
    dataset: str | None,
    data_dir: Path | None,
    device: str,
    cuda: bool,
    progress: ProbeProgress,
) -> Measurement:
    """One child that imports torch and builds the data, the same for every stage."""
    candidates = stage_candidates(schedule, 0)
    request = probe_request(schedule, 0, batch, dataset, data_dir, device, True, candidates)
    return progress.measure(request, cuda, 1, "idle")


def profile_memory(
    schedule: Schedule,
    batch_sizes: list[int] | None = None,
    budget_bytes: int | None = None,
    device: str = "auto",
    dataset: str | None = None,
    data_dir: Path | None = None,
    threads: ThreadRequest | None = None,
    report: Callable[[ProbeReport], None] | None = None,
    confirm: bool = False,
) -> MemoryProfile:
    """Every stage of ``schedule``, measured at ``batch_sizes`` (default: see
    ``default_batch_sizes``), the children computing with ``threads`` CPU threads (see
    ``pdarts_cli.threads``); ``report`` hears of every child run as it finishes, with an
    estimate of the time left. ``confirm`` measures each stage again at its pick.

    Each stage's recommendation is at most the schedule's batch, as ``--batch-size auto``
    picks (lower a batch to fit a smaller device, never raise it silently).
    """
    sizes = batch_sizes or default_batch_sizes(device)
    total = 1 + len(schedule.stages) * runs_per_stage(sizes, confirm, idle=False)
    progress = ProbeProgress(total, report)
    with using_threads(choose_threads(threads).threads):
        return _profile_memory(
            schedule, sizes, budget_bytes, device, dataset, data_dir, progress, confirm
        )


def _profile_memory(
    schedule: Schedule,
    batch_sizes: list[int],
    budget_bytes: int | None,
    device: str,
    dataset: str | None,
    data_dir: Path | None,
    progress: ProbeProgress,
    confirm: bool,
) -> MemoryProfile:
    from pdarts_cli.device import resolve_device

    resolved = resolve_device(device)
    cuda = resolved.type == "cuda"
    budget = budget_bytes if budget_bytes is not None else device_budget(device)
    idle = _idle_baseline(
        schedule, batch_sizes[0], dataset, data_dir, str(resolved), cuda, progress
    )
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
            confirm=confirm,
            max_batch=stage.batch_size,
            progress=progress,
            idle=idle,
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

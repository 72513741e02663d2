"""P-DARTS search as a library: ``run_search`` starts a run, ``resume_search`` continues one.

>>> from pdarts_cli.schedule import load_schedule
>>> from pdarts_cli.search import SearchOptions, run_search
>>> result = run_search(load_schedule("quick"), SearchOptions(dataset="digits"), "runs/demo")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from pdarts_cli.data import resolve_dataset, resolve_split
from pdarts_cli.device import resolve_channels_last, resolve_device, resolve_precision
from pdarts_cli.errors import RunDirError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.provenance import run_record
from pdarts_cli.runlog import (
    RUN_FILE,
    SCHEDULE_FILE,
    create_run_dir,
    is_run_dir,
    read_json,
    write_json,
)
from pdarts_cli.schedule import Schedule, schedule_json, validate_schedule
from pdarts_cli.search.batching import Halves, check_batches, largest_meaningful_batch
from pdarts_cli.search.events import SearchObserver, SearchResult
from pdarts_cli.search.progressive import (
    BatchChooser,
    SearchEnvironment,
    finished_result,
    read_resume_point,
    run_stages,
    weight_alpha_split,
)
from pdarts_cli.search.supernet import CellCandidates

__all__ = [
    "SearchObserver",
    "SearchOptions",
    "SearchResult",
    "resolve_for_dataset",
    "resume_search",
    "run_search",
]


class SearchOptions(BaseModel):
    """Where the data comes from and what runs it; the schedule says what is computed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(description="Dataset spec: cifar10, cifar100, digits, npz:PATH, ...")
    data_dir: Path | None = Field(default=None, description="Root of downloaded datasets.")
    download: bool = False
    image_size: int | None = Field(default=None, ge=4, description="For image folders.")
    device: str = "auto"
    auto_batch_size: bool = Field(
        default=False,
        description="Pick each stage's batch size with the memory profiler before it starts.",
    )
    memory_budget_bytes: int | None = Field(
        default=None, gt=0, description="Budget for auto_batch_size (default: the device's)."
    )
    raise_batch: bool = Field(
        default=False,
        description="With auto_batch_size: allow a batch above the schedule's (auto-max), "
        "scaling the stage's learning rates linearly (lr_scale = batch / schedule batch).",
    )
    force_batch: bool = Field(
        default=False,
        description="Run batch sizes that leave a stage fewer than the schedule's "
        "min_weight_steps weight steps per epoch, or exceed a half of the data.",
    )


def _environment(schedule: Schedule, options: SearchOptions) -> SearchEnvironment:
    device = resolve_device(options.device)
    data = resolve_dataset(options.dataset, options.data_dir, options.download, options.image_size)
    return SearchEnvironment(
        data=data,
        device=device,
        precision=resolve_precision(schedule.amp, device),
        channels_last=resolve_channels_last(schedule.channels_last, device),
        dataset=options.dataset,
    )


def auto_batch_sizes(schedule_batch: int) -> list[int]:
    """The two batches each stage is measured at to fit memory = a + b * batch: the schedule's
    and a quarter of it, far enough apart that noise in the peaks barely moves the slope."""
    low = max(1, schedule_batch // 4)
    return [low, schedule_batch] if low < schedule_batch else [schedule_batch, schedule_batch + 1]


def _batch_cap(
    schedule: Schedule, index: int, options: SearchOptions, halves: Halves
) -> int | None:
    """The largest batch ``auto`` may pick for a stage: the schedule's; with ``raise_batch``
    (auto-max), the largest that still gives min_weight_steps weight steps per epoch."""
    if not options.raise_batch:
        return schedule.stages[index].batch_size
    if options.force_batch:
        return None
    return largest_meaningful_batch(halves, schedule.min_weight_steps)


def with_stage_batch(schedule: Schedule, index: int, batch_size: int, scale_lr: bool) -> Schedule:
    """``schedule`` with stage ``index`` at ``batch_size``; ``scale_lr`` scales its learning
    rates by batch / the schedule's batch (the linear scaling rule) when the batch is raised."""
    stage = schedule.stages[index]
    update: dict[str, Any] = {"batch_size": batch_size}
    if scale_lr and batch_size > stage.batch_size:
        update["lr_scale"] = stage.lr_scale * batch_size / stage.batch_size
    stages = list(schedule.stages)
    stages[index] = stage.model_copy(update=update)
    return schedule.model_copy(update={"stages": tuple(stages)})


def _batch_chooser(
    options: SearchOptions, env: SearchEnvironment, run_dir: Path, observer: SearchObserver
) -> BatchChooser | None:
    """``--batch-size auto`` / ``auto-max``: profile each stage, with the candidates it will
    hold, before it starts; pick, record in schedule.json and say what was chosen."""
    if not options.auto_batch_size:
        return None
    from pdarts_cli.memory import device_budget, mib, profile_stage

    budget = options.memory_budget_bytes or device_budget(str(env.device))

    def choose(
        schedule: Schedule, index: int, normal: CellCandidates, reduce: CellCandidates
    ) -> Schedule:
        given = schedule.stages[index]
        profile = profile_stage(
            schedule,
            index,
            auto_batch_sizes(given.batch_size),
            budget,
            str(env.device),
            options.dataset,
            options.data_dir,
            cuda=env.device.type == "cuda",
            confirm=False,
            normal=normal,
            reduce=reduce,
            max_batch=_batch_cap(schedule, index, options, data_halves(schedule, env)),
        )
        batch = profile.recommended_batch
        assert batch is not None
        chosen = with_stage_batch(schedule, index, batch, scale_lr=options.raise_batch)
        atomic_write_text(run_dir / SCHEDULE_FILE, schedule_json(chosen))
        scale = chosen.stages[index].lr_scale / given.lr_scale
        scaled = f"; learning rates x{scale:.3g} (linear scaling)" if scale != 1 else ""
        observer.note(
            f"stage {index + 1}: batch size {batch} (schedule: {given.batch_size}; predicted "
            f"peak {mib(profile.predict(batch)):,.0f} MiB of a {mib(budget):,.0f} MiB "
            f"budget){scaled}"
        )
        return chosen

    return choose


def resolve_for_dataset(schedule: Schedule, dataset: str) -> Schedule:
    """The schedule with its dataset-dependent choices made (``data.split = "auto"``), as
    schedule.json records it."""
    split = resolve_split(schedule.data.split, dataset)
    return schedule.model_copy(update={"data": schedule.data.model_copy(update={"split": split})})


def _announce(env: SearchEnvironment, observer: SearchObserver) -> None:
    info = env.data.info
    observer.note(
        f"dataset {env.dataset}: {info.num_classes} classes, {info.channels}x{info.image_size}"
        f"x{info.image_size}; device {env.device} ({env.precision.label}"
        f"{', channels_last' if env.channels_last else ''})"
    )


def data_halves(schedule: Schedule, env: SearchEnvironment) -> Halves:
    """The sizes of the weight half and the alpha half of ``env``'s training set."""
    weights, alphas = weight_alpha_split(schedule, env.data, env.dataset)
    return Halves(int(weights.numel()), int(alphas.numel()))


def run_search(
    schedule: Schedule,
    options: SearchOptions,
    out_dir: str | Path,
    force: bool = False,
    observer: SearchObserver | None = None,
) -> SearchResult:
    """Run every stage of ``schedule`` and leave a complete run directory in ``out_dir``."""
    observer = observer or SearchObserver()
    schedule = resolve_for_dataset(schedule, options.dataset)
    env = _environment(schedule, options)
    if not options.raise_batch:  # auto only lowers a stage's batch: check the schedule's
        check_batches(schedule, data_halves(schedule, env), options.force_batch)
    run_dir = create_run_dir(Path(out_dir), force)
    write_json(
        run_dir / RUN_FILE, run_record("search", options.model_dump(mode="json"), env.device)
    )
    atomic_write_text(run_dir / SCHEDULE_FILE, schedule_json(schedule))
    _announce(env, observer)
    return run_stages(
        schedule,
        env,
        run_dir,
        observer,
        choose_batch=_batch_chooser(options, env, run_dir, observer),
    )


def _warn_if_threads_differ(run: dict[str, Any], observer: SearchObserver) -> None:
    """Bit-for-bit resumption needs the thread count the run started with."""
    started_with = run.get("torch_threads")
    if started_with is not None and started_with != torch.get_num_threads():
        observer.note(
            f"this run started with {started_with} torch threads and continues with "
            f"{torch.get_num_threads()}: the result will not repeat an uninterrupted run bit "
            "for bit"
        )


def resume_search(
    run_dir: str | Path,
    device: str | None = None,
    data_dir: Path | None = None,
    observer: SearchObserver | None = None,
) -> SearchResult:
    """Continue a killed run where its last checkpoint left it."""
    observer = observer or SearchObserver()
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise RunDirError(f"--resume {run_dir} holds no pdarts run (no {RUN_FILE})")
    run = read_json(run_dir / RUN_FILE)
    if not isinstance(run, dict) or run.get("kind") != "search":
        raise RunDirError(f"--resume {run_dir} is not a search run")
    schedule = validate_schedule(read_json(run_dir / SCHEDULE_FILE), str(run_dir / SCHEDULE_FILE))
    point = read_resume_point(run_dir)
    if point is not None and point.complete:
        observer.note(f"the run in {run_dir} is already complete; nothing to resume")
        return finished_result(run_dir)
    overrides = {k: v for k, v in {"device": device, "data_dir": data_dir}.items() if v is not None}
    options = SearchOptions.model_validate({**run["options"], **overrides})
    env = _environment(schedule, options)
    _announce(env, observer)
    _warn_if_threads_differ(run, observer)
    chooser = _batch_chooser(options, env, run_dir, observer)
    return run_stages(schedule, env, run_dir, observer, resume=point, choose_batch=chooser)

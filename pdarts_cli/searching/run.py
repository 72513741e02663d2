"""Starting and resuming a search: the run directory, its records, and the run context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdarts_cli.context import RunContext, resume_record, resumed_options, threads_warning
from pdarts_cli.data import ImageDataset, resolve_dataset, resolve_split
from pdarts_cli.device import resolve_channels_last, resolve_device, resolve_precision
from pdarts_cli.distributed import Distributed, join_processes, on_main
from pdarts_cli.errors import ConfigError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.provenance import check_identity, checkpoint_identity, run_record
from pdarts_cli.runlock import run_lock
from pdarts_cli.runlog import (
    CHECKPOINT_FILE,
    RUN_FILE,
    SCHEDULE_FILE,
    create_run_dir,
    read_json,
    write_json,
)
from pdarts_cli.schedule import Schedule, schedule_json, validate_schedule
from pdarts_cli.searching.autobatch import batch_chooser
from pdarts_cli.searching.batching import check_batches
from pdarts_cli.searching.data import data_halves
from pdarts_cli.searching.events import SearchObserver, SearchResult
from pdarts_cli.searching.loop import run_stages
from pdarts_cli.searching.options import SearchOptions
from pdarts_cli.searching.state import RunFiles, finished_result, read_resume_point
from pdarts_cli.threads import (
    ThreadChoice,
    ThreadRequest,
    choose_threads,
    describe_threads,
    resumed_threads,
    using_threads,
)


def search_context(
    schedule: Schedule, options: SearchOptions, data: ImageDataset | None = None
) -> RunContext:
    """The device, numerics and data a search runs on; ``data`` given in memory replaces
    reading ``options.dataset``."""
    device, setup = join_processes(resolve_device(options.device))
    if data is None:
        data = resolve_dataset(
            options.dataset, options.data_dir, options.download, options.image_size
        )
    return RunContext(
        data=data,
        device=device,
        precision=resolve_precision(schedule.amp, device),
        channels_last=resolve_channels_last(schedule.channels_last, device),
        dataset=options.dataset,
        dist=setup,
    )


def check_processes(schedule: Schedule, options: SearchOptions, setup: Distributed) -> None:
    """A distributed search splits each stage's batch evenly over its ranks, and profiles
    no batch size (the profiler measures one process)."""
    if not setup.enabled:
        return
    if options.auto_batch_size:
        raise ConfigError(
            "--batch-size auto profiles one process: give the batch sizes of a search on "
            f"{setup.world_size} processes (the global batch, split over them)"
        )
    for number, stage in enumerate(schedule.stages, start=1):
        if stage.batch_size % setup.world_size:
            raise ConfigError(
                f"stage {number}'s batch size {stage.batch_size} does not split evenly over "
                f"{setup.world_size} processes: give a multiple of {setup.world_size}"
            )


def check_world_size(run: dict[str, Any], setup: Distributed) -> None:
    """A search resumes on as many processes as it started with: its data shards, and so its
    result, depend on the count."""
    started = int(run.get("world_size", 1))
    if started != setup.world_size:
        raise ConfigError(
            f"this search ran on {started} process(es) and is resumed on {setup.world_size}: "
            f"resume it with --nproc {started} (or torchrun --nproc-per-node {started})"
        )


def resolve_for_dataset(schedule: Schedule, dataset: str) -> Schedule:
    """The schedule with its dataset-dependent choices made (``data.split = "auto"``), as
    schedule.json records it."""
    split = resolve_split(schedule.data.split, dataset)
    return schedule.model_copy(update={"data": schedule.data.model_copy(update={"split": split})})


def search_identity(run: dict[str, Any], schedule: Schedule) -> dict[str, Any]:
    """What this search's checkpoints record of it (see ``provenance.check_identity``)."""
    return checkpoint_identity(run, schedule=schedule.name, seed=schedule.seed)


def announce(ctx: RunContext, observer: SearchObserver, threads: ThreadChoice) -> None:
    info = ctx.data.info
    cpu = f", {describe_threads(threads)}" if ctx.device.type == "cpu" else ""
    ranks = f", {ctx.dist.world_size} processes" if ctx.dist.enabled else ""
    observer.note(
        f"dataset {ctx.dataset}: {info.num_classes} classes, {info.channels}x{info.image_size}"
        f"x{info.image_size}; device {ctx.device} ({ctx.precision.label}"
        f"{', channels_last' if ctx.channels_last else ''}{cpu}){ranks}"
    )


def run_search(
    schedule: Schedule,
    options: SearchOptions,
    out_dir: str | Path | None,
    force: bool = False,
    observer: SearchObserver | None = None,
    data: ImageDataset | None = None,
) -> SearchResult:
    """Run every stage of ``schedule`` and leave a complete run directory in ``out_dir``;
    with ``out_dir`` None nothing is written and the result alone holds what was found.

    ``data`` searches an in-memory dataset instead of reading ``options.dataset`` (which then
    only names it in the records). torch computes with ``options.threads`` threads (see
    ``pdarts_cli.threads``); the caller's count is restored afterwards.
    """
    observer = observer or SearchObserver()
    if data is not None and options.auto_batch_size:
        raise ConfigError(
            "an automatic batch size profiles the data in child processes: give a dataset "
            "spec, not data in memory, or choose the batch sizes"
        )
    threads = choose_threads(options.threads)
    with using_threads(threads.threads):
        return _run_search(schedule, options, out_dir, force, observer, data, threads)


def _run_search(
    schedule: Schedule,
    options: SearchOptions,
    out_dir: str | Path | None,
    force: bool,
    observer: SearchObserver,
    data: ImageDataset | None,
    threads: ThreadChoice,
) -> SearchResult:
    schedule = resolve_for_dataset(schedule, options.dataset)
    ctx = search_context(schedule, options, data)
    check_processes(schedule, options, ctx.dist)
    if not options.raise_batch:  # auto only lowers a stage's batch: check the schedule's
        check_batches(schedule, data_halves(schedule, ctx), options.force_batch)
    files = RunFiles(None)
    record = run_record(
        "search",
        options.model_dump(mode="json"),
        ctx.device,
        world_size=ctx.dist.world_size,
        threads=threads.to_dict(),
    )
    if out_dir is not None:
        run_dir = on_main(lambda: create_run_dir(Path(out_dir), force), Path(out_dir), ctx.dist)
        if ctx.dist.is_main:  # only rank 0 writes
            files = RunFiles(run_dir, search_identity(record, schedule))
    with run_lock(files.run_dir):
        if files.run_dir is not None:
            write_json(files.run_dir / RUN_FILE, record)
            atomic_write_text(files.run_dir / SCHEDULE_FILE, schedule_json(schedule))
        announce(ctx, observer, threads)
        chooser = batch_chooser(options, ctx, files, observer)
        return run_stages(schedule, ctx, files, observer, choose_batch=chooser)


def resume_search(
    run_dir: str | Path,
    device: str | None = None,
    data_dir: Path | None = None,
    observer: SearchObserver | None = None,
    threads: ThreadRequest | None = None,
) -> SearchResult:
    """Continue a killed run where its last checkpoint left it, with the thread count it
    started with unless ``threads`` (or PDARTS_THREADS) says otherwise."""
    observer = observer or SearchObserver()
    run_dir = Path(run_dir)
    run = resume_record(run_dir, "search")
    schedule = validate_schedule(read_json(run_dir / SCHEDULE_FILE), str(run_dir / SCHEDULE_FILE))
    point = read_resume_point(run_dir)
    identity = search_identity(run, schedule)
    if point is not None:
        check_identity(run_dir / CHECKPOINT_FILE, point.metadata.get("identity"), identity)
    if point is not None and point.complete:
        observer.note(f"the run in {run_dir} is already complete; nothing to resume")
        return finished_result(run_dir)
    options = SearchOptions.model_validate(resumed_options(run, device=device, data_dir=data_dir))
    choice = resumed_threads(run.get("torch_threads"), threads)
    with using_threads(choice.threads):
        ctx = search_context(schedule, options)
        check_world_size(run, ctx.dist)
        with run_lock(run_dir, enabled=ctx.dist.is_main):
            announce(ctx, observer, choice)
            warning = threads_warning(run)
            if warning is not None:
                observer.note(warning)
            files = RunFiles(run_dir if ctx.dist.is_main else None, identity)
            chooser = batch_chooser(options, ctx, files, observer)
            return run_stages(schedule, ctx, files, observer, resume=point, choose_batch=chooser)

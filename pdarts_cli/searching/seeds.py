"""``pdarts search --seeds 0,1,2``: one schedule searched once per seed, the seeds compared.

A seeds run directory is recognised by its ``run.json`` of kind ``"seeds"``:

- ``run.json``: format, kind ``"seeds"``, the seeds, the options every seed runs with, the
  GPUs the seeds were started on one per child process (null: one after another here);
- ``schedule.json``: the schedule of every seed, resolved for the dataset; each seed's run
  replaces its ``seed`` (the seed's own ``schedule.json`` says so);
- ``seed-K/``: seed K's search, an ordinary run directory (``pdarts train RUN/seed-K``);
- ``seed-K.log``: with one GPU per seed, the output of seed K's process;
- ``stability.json``: the seeds compared (``genotype.stability``), once every seed finished.

With two or more GPUs visible (device ``auto`` or ``cuda``) each seed runs in a child process
on one GPU (``seed_processes``); otherwise the seeds run one after another in this process
through ``run_search``. ``resume_seeds`` leaves finished seeds as they are, resumes unfinished
ones (``resume_search``) and starts those never started.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pdarts_cli import __version__
from pdarts_cli.context import resume_record, resumed_options
from pdarts_cli.data import resolve_dataset
from pdarts_cli.device import resolve_device
from pdarts_cli.errors import ConfigError, PdartsError, RunDirError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import read_genotype_file
from pdarts_cli.genotype.stability import (
    STABILITY_FILE,
    SeedOutcome,
    Stability,
    stability_json,
)
from pdarts_cli.runlock import run_lock
from pdarts_cli.runlog import (
    GENOTYPE_FILE,
    METRICS_FILE,
    RUN_FILE,
    RUN_FORMAT,
    SCHEDULE_FILE,
    MetricsLog,
    create_run_dir,
    is_run_dir,
    read_json,
    write_json,
)
from pdarts_cli.schedule import Schedule, schedule_json, validate_schedule
from pdarts_cli.searching.events import SearchObserver
from pdarts_cli.searching.options import SearchOptions
from pdarts_cli.searching.run import resolve_for_dataset, resume_search, run_search
from pdarts_cli.searching.seed_processes import (
    ChildJob,
    gpu_slots,
    resume_command,
    run_children,
    start_command,
    with_shared_cores,
)
from pdarts_cli.searching.state import read_resume_point
from pdarts_cli.threads import ThreadRequest

SEEDS_KIND = "seeds"
Action = Literal["start", "resume", "finished"]
ACTION_WORDS: dict[Action, str] = {
    "start": "searching in",
    "resume": "resuming",
    "finished": "finished; left as it is:",
}


@dataclass(frozen=True)
class SeedsResult:
    run_dir: Path
    stability: Stability
    gpus: tuple[str, ...]  # one child process per GPU; empty: the seeds ran in this process


@dataclass(frozen=True)
class Moved:
    """What a resumed run may change (None: as it started)."""

    device: str | None = None
    data_dir: Path | None = None
    threads: ThreadRequest | None = None


def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed-{seed}"


def seed_log(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed-{seed}.log"


def is_seeds_run(path: Path) -> bool:
    """Whether ``path`` holds a ``pdarts search --seeds`` run."""
    if not is_run_dir(path):
        return False
    record = read_json(path / RUN_FILE)
    return isinstance(record, dict) and record.get("kind") == SEEDS_KIND


def check_seeds(seeds: Sequence[object], source: str = "--seeds") -> tuple[int, ...]:
    """Two or more distinct seeds, each a whole number >= 0; else a one-line ConfigError."""
    valid = [s for s in seeds if isinstance(s, int) and not isinstance(s, bool) and s >= 0]
    if len(valid) != len(seeds):
        raise ConfigError(f"{source}: seeds are whole numbers >= 0, got {list(seeds)}")
    if len(valid) < 2:
        raise ConfigError(f"{source}: give at least two seeds to compare; for one, use --seed")
    repeated = sorted({s for s in valid if valid.count(s) > 1})
    if repeated:
        raise ConfigError(f"{source}: seed {repeated[0]} is given twice")
    return tuple(valid)


def seeds_record(
    seeds: Sequence[int], options: SearchOptions, gpus: Sequence[str]
) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "kind": SEEDS_KIND,
        "seeds": list(seeds),
        "options": options.model_dump(mode="json"),
        "gpus": list(gpus) or None,
        "pdarts": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def seed_action(path: Path) -> Action:
    """What a resumed seeds run does with one seed's run directory."""
    if not is_run_dir(path):  # never started, or killed before its run.json
        return "start"
    point = read_resume_point(path)
    return "finished" if point is not None and point.complete else "resume"


def final_accuracy(run_dir: Path) -> float | None:
    """The last epoch's ``valid_accuracy`` in the run's metrics.jsonl."""
    records = MetricsLog(run_dir / METRICS_FILE).read()
    value = records[-1].get("valid_accuracy") if records else None
    return None if value is None else float(value)


def compare_seeds(run_dir: Path, seeds: Sequence[int], gpus: Sequence[str]) -> SeedsResult:
    """stability.json of the finished seeds."""
    outcomes = []
    for seed in seeds:
        path = seed_dir(run_dir, seed)
        genotype = read_genotype_file(path / GENOTYPE_FILE)
        outcomes.append(SeedOutcome(seed, genotype, final_accuracy(path), path.name))
    stability = Stability(tuple(outcomes))
    atomic_write_text(run_dir / STABILITY_FILE, stability_json(stability))
    return SeedsResult(run_dir, stability, tuple(gpus))


def run_in_process(
    run_dir: Path,
    schedule: Schedule,
    options: SearchOptions,
    plan: Sequence[tuple[int, Action]],
    moved: Moved,
    observer: SearchObserver,
) -> None:
    for number, (seed, action) in enumerate(plan, start=1):
        path = seed_dir(run_dir, seed)
        observer.note(f"seed {seed} ({number} of {len(plan)}): {ACTION_WORDS[action]} {path}")
        if action == "start":
            run_search(schedule.with_overrides(seed=seed), options, path, observer=observer)
        elif action == "resume":
            resume_search(
                path,
                device=moved.device,
                data_dir=moved.data_dir,
                observer=observer,
                threads=moved.threads,
            )


def run_on_gpus(
    run_dir: Path,
    options: SearchOptions,
    plan: Sequence[tuple[int, Action]],
    moved: Moved,
    gpus: Sequence[str],
    observer: SearchObserver,
) -> None:
    jobs = []
    start_options = with_shared_cores(options, len(gpus))
    for seed, action in plan:
        path = seed_dir(run_dir, seed)
        if action == "finished":
            observer.note(f"seed {seed}: {ACTION_WORDS[action]} {path}")
        elif action == "start":
            command = start_command(run_dir / SCHEDULE_FILE, seed, path, start_options)
            jobs.append(ChildJob(seed, command, seed_log(run_dir, seed)))
        else:
            command = resume_command(path, moved.data_dir, moved.threads)
            jobs.append(ChildJob(seed, command, seed_log(run_dir, seed)))
    if any(action == "start" for _, action in plan):  # download once, not in every child
        resolve_dataset(options.dataset, options.data_dir, options.download, options.image_size)
    run_children(jobs, gpus, observer)


def run_plan(
    run_dir: Path,
    schedule: Schedule,
    options: SearchOptions,
    plan: Sequence[tuple[int, Action]],
    moved: Moved,
    observer: SearchObserver,
) -> SeedsResult:
    gpus = gpu_slots(options.device)[: len(plan)]
    if gpus:
        run_on_gpus(run_dir, options, plan, moved, gpus, observer)
    else:
        run_in_process(run_dir, schedule, options, plan, moved, observer)
    return compare_seeds(run_dir, [seed for seed, _ in plan], gpus)


def run_seeds(
    schedule: Schedule,
    seeds: Sequence[int],
    options: SearchOptions,
    out_dir: str | Path,
    force: bool = False,
    observer: SearchObserver | None = None,
) -> SeedsResult:
    """Search ``schedule`` once per seed, each into ``out_dir/seed-K`` (its ``seed``
    replaced), and compare the results in ``out_dir/stability.json``.

    When the first seed is refused before its run directory exists (a batch too large for
    the data, say), nothing was started and what was written in ``out_dir`` is removed."""
    observer = observer or SearchObserver()
    seeds = check_seeds(seeds)
    resolve_device(options.device)  # an unavailable device: one line before anything is written
    schedule = resolve_for_dataset(schedule, options.dataset)
    run_dir = create_run_dir(Path(out_dir), force)
    plan: list[tuple[int, Action]] = [(seed, "start") for seed in seeds]
    try:
        with run_lock(run_dir):
            gpus = gpu_slots(options.device)[: len(seeds)]
            write_json(run_dir / RUN_FILE, seeds_record(seeds, options, gpus))
            atomic_write_text(run_dir / SCHEDULE_FILE, schedule_json(schedule))
            return run_plan(run_dir, schedule, options, plan, Moved(), observer)
    except PdartsError:
        forget_unstarted(run_dir, seeds)
        raise


def forget_unstarted(run_dir: Path, seeds: Sequence[int]) -> None:
    """Remove what ``run_seeds`` wrote when no seed got as far as its run directory or its
    log, so that the same ``--out`` can be given again."""
    if any(seed_dir(run_dir, s).exists() or seed_log(run_dir, s).exists() for s in seeds):
        return
    for name in (RUN_FILE, SCHEDULE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # a folder that holds something else is kept
        run_dir.rmdir()


def resume_seeds(
    run_dir: str | Path,
    device: str | None = None,
    data_dir: Path | None = None,
    observer: SearchObserver | None = None,
    threads: ThreadRequest | None = None,
) -> SeedsResult:
    """Continue a seeds run: finished seeds are left, unfinished ones resumed, those never
    started started; then stability.json is written again."""
    observer = observer or SearchObserver()
    run_dir = Path(run_dir)
    run = resume_record(run_dir, SEEDS_KIND)
    seeds = run.get("seeds")
    if not isinstance(seeds, list):
        raise RunDirError(f"{run_dir / RUN_FILE}: seeds must be a list")
    seeds = list(check_seeds(seeds, f"{run_dir / RUN_FILE}"))
    schedule = validate_schedule(read_json(run_dir / SCHEDULE_FILE), str(run_dir / SCHEDULE_FILE))
    options = SearchOptions.model_validate(resumed_options(run, device=device, data_dir=data_dir))
    if threads is not None:
        options = options.model_copy(update={"threads": threads})
    with run_lock(run_dir):
        plan = [(seed, seed_action(seed_dir(run_dir, seed))) for seed in seeds]
        moved = Moved(device, data_dir, threads)
        return run_plan(run_dir, schedule, options, plan, moved, observer)

"""``--batch-size auto`` and ``auto-max``: each stage's batch chosen by the memory profiler
before the stage starts, knowing the candidates it will hold."""

from __future__ import annotations

from typing import Any

from pdarts_cli.context import RunContext
from pdarts_cli.files import atomic_write_text
from pdarts_cli.runlog import SCHEDULE_FILE
from pdarts_cli.schedule import Schedule, schedule_json
from pdarts_cli.searching.batching import Halves, largest_meaningful_batch
from pdarts_cli.searching.data import data_halves
from pdarts_cli.searching.events import SearchObserver
from pdarts_cli.searching.loop import BatchChooser
from pdarts_cli.searching.options import SearchOptions
from pdarts_cli.searching.state import RunFiles
from pdarts_cli.searching.supernet import CellCandidates


def auto_batch_sizes(schedule_batch: int) -> list[int]:
    """The two batches each stage is measured at to fit memory = a + b * batch: the schedule's
    and a quarter of it, far enough apart that noise in the peaks barely moves the slope."""
    low = max(1, schedule_batch // 4)
    return [low, schedule_batch] if low < schedule_batch else [schedule_batch, schedule_batch + 1]


def batch_cap(schedule: Schedule, index: int, options: SearchOptions, halves: Halves) -> int | None:
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


def search_resident_bytes() -> int | None:
    """What this search process holds on the CPU as a stage starts (the data, the records,
    torch), once the pages the last stage freed are handed back: a budget is a promise about
    the whole process, not only about the step a child measures."""
    from pdarts_cli.memory.process import release_free_memory, resident_bytes

    release_free_memory()
    return resident_bytes()


def batch_chooser(
    options: SearchOptions, ctx: RunContext, files: RunFiles, observer: SearchObserver
) -> BatchChooser | None:
    """``--batch-size auto`` / ``auto-max``: profile each stage, with the candidates it will
    hold, before it starts; pick, record in schedule.json and say what was chosen."""
    if not options.auto_batch_size:
        return None
    from pdarts_cli.memory import device_budget, mib, profile_stage

    budget = options.memory_budget_bytes or device_budget(str(ctx.device))
    cuda = ctx.device.type == "cuda"

    def choose(
        schedule: Schedule, index: int, normal: CellCandidates, reduce: CellCandidates
    ) -> Schedule:
        given = schedule.stages[index]
        profile = profile_stage(
            schedule,
            index,
            auto_batch_sizes(given.batch_size),
            budget,
            str(ctx.device),
            options.dataset,
            options.data_dir,
            cuda=cuda,
            normal=normal,
            reduce=reduce,
            max_batch=batch_cap(schedule, index, options, data_halves(schedule, ctx)),
            resident_bytes=None if cuda else search_resident_bytes(),
        )
        batch = profile.recommended_batch
        assert batch is not None
        chosen = with_stage_batch(schedule, index, batch, scale_lr=options.raise_batch)
        if files.run_dir is not None:
            atomic_write_text(files.run_dir / SCHEDULE_FILE, schedule_json(chosen))
        scale = chosen.stages[index].lr_scale / given.lr_scale
        scaled = f"; learning rates x{scale:.3g} (linear scaling)" if scale != 1 else ""
        observer.note(
            f"stage {index + 1}: batch size {batch} (schedule: {given.batch_size}; predicted "
            f"peak {mib(profile.predict(batch)):,.0f} MiB of a {mib(budget):,.0f} MiB "
            f"budget){scaled}"
        )
        return chosen

    return choose

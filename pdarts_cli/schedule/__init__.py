"""Search schedules: pydantic models, the paper's presets, file loading and flag overrides.

A schedule is everything that decides what ``pdarts search`` computes, apart from the data and
the device. ``models`` defines the fields and their rules, ``presets`` the built-in schedules,
``files`` reading and writing schedule files; everything is importable from here. Dotted
overrides (``alphas.order=second``) are ``pdarts_cli.overrides``, shared with training recipes.
"""

from pdarts_cli.schedule.files import (
    load_schedule,
    read_schedule_file,
    schedule_json,
    write_schedule_file,
)
from pdarts_cli.schedule.models import (
    DARTS_OPS,
    MAX_SKIP_LIMIT,
    PAPER_MAX_SKIP,
    SCHEDULE_FORMAT,
    ArchOptimizer,
    DataSchedule,
    Schedule,
    SkipDropoutDecay,
    StageSchedule,
    WeightOptimizer,
    validate_schedule,
    with_stage_values,
)
from pdarts_cli.schedule.presets import PRESETS, preset_for_dataset

__all__ = [
    "DARTS_OPS",
    "MAX_SKIP_LIMIT",
    "PAPER_MAX_SKIP",
    "PRESETS",
    "SCHEDULE_FORMAT",
    "ArchOptimizer",
    "DataSchedule",
    "Schedule",
    "SkipDropoutDecay",
    "StageSchedule",
    "WeightOptimizer",
    "load_schedule",
    "preset_for_dataset",
    "read_schedule_file",
    "schedule_json",
    "validate_schedule",
    "with_stage_values",
    "write_schedule_file",
]

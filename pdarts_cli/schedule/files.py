"""Schedule files: read a .toml or .json file (or a preset by name), write one that loads back."""

from __future__ import annotations

from pathlib import Path

from pdarts_cli.config import config_json, load_config, read_config_file
from pdarts_cli.errors import ConfigError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.schedule.models import Schedule
from pdarts_cli.schedule.presets import PRESETS


def read_schedule_file(path: Path) -> Schedule:
    """A schedule from a .toml or .json file."""
    return read_config_file(Schedule, path, "schedule")


def load_schedule(name_or_path: str) -> Schedule:
    """A preset by name, or a schedule file."""
    return load_config(Schedule, name_or_path, PRESETS, "schedule")


def write_schedule_file(schedule: Schedule, path: Path) -> None:
    """``schedule`` as a JSON schedule file (it loads back unchanged with ``--schedule``)."""
    if path.suffix.lower() != ".json":
        raise ConfigError(f"schedules are written as JSON: name the file .json, got {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, schedule_json(schedule))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def schedule_json(schedule: Schedule) -> str:
    """The schedule as a file that loads back unchanged."""
    return config_json(schedule)

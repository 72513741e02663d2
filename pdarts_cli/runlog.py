"""Run directories: creation rules, the files in them, and metrics.jsonl."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pdarts_cli.errors import RunDirError
from pdarts_cli.files import atomic_write_text, parse_json, read_text, write_failure
from pdarts_cli.runlock import check_unlocked

RUN_FORMAT = "pdarts-run/1"
RUN_FILE = "run.json"
SCHEDULE_FILE = "schedule.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.safetensors"
FINAL_ARCH_FILE = "final.arch.json"
GENOTYPE_FILE = "genotype.json"  # the refined genotype: at most max_skip normal skip-connects
UNREFINED_GENOTYPE_FILE = "genotype-unrefined.json"


def stage_arch_file(stage: int) -> str:
    return f"stage-{stage}.arch.json"


def stage_weights_file(stage: int) -> str:
    return f"stage-{stage}.safetensors"


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def create_run_dir(path: Path, force: bool) -> Path:
    """An empty, writable run directory. An existing run is replaced only with ``force``;
    a non-empty folder that is not a run is never emptied."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not is_run_dir(path):
            raise RunDirError(
                f"--out {path} is not empty and holds no pdarts run; choose another folder"
            )
        if not force:
            raise RunDirError(
                f"--out {path} already holds a run; use --force to overwrite it, "
                f"or --resume {path} to continue it"
            )
        check_unlocked(path)  # --force never replaces a run that is running
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot write to --out {path}: {exc.strerror or exc}") from exc
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    return parse_json(read_text(path, RunDirError), RunDirError, f"{path} is not valid JSON")


class MetricsLog:
    """Append-only metrics.jsonl, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(dict(record)) + "\n"
        try:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)
        except OSError as exc:
            raise write_failure(self.path, exc, len(line)) from exc

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line]
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == len(lines):  # cut short by a kill or a full disk: written again
                    break
                raise RunDirError(f"{self.path} line {number} is not valid JSON: {exc}") from exc
        return records

    def keep(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Drop the records a resumed run will write again."""
        kept: Iterable[dict[str, Any]] = [r for r in self.read() if predicate(r)]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

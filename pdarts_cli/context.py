"""What a run computes on, and how a run is resumed: shared by search and training.

``RunContext`` holds the choices made once at the start of a run that are not part of its
schedule or recipe (the data, the device, the numerics, the processes); ``Observer`` is the
base of the hooks through which a run reports while it runs (the library never prints).
The resume policy is the same for every kind of run: ``--resume`` continues with the
settings the run started with, refuses flags that would change them, and may move it to
another device or data folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pdarts_cli.data import ImageDataset
from pdarts_cli.device import Precision
from pdarts_cli.distributed import Distributed
from pdarts_cli.errors import ConfigError, RunDirError
from pdarts_cli.runlog import RUN_FILE, is_run_dir, read_json

# Steps between progress reports: every step on the CPU, where steps are slow; on an
# accelerator a report costs a device synchronisation, so every 20th.
CPU_REPORT_EVERY = 1
ACCELERATOR_REPORT_EVERY = 20


@dataclass(frozen=True)
class RunContext:
    """Data, device, numerics and processes of one run; not part of its schedule or recipe."""

    data: ImageDataset
    device: torch.device
    precision: Precision
    channels_last: bool
    dataset: str  # the spec the data came from, as run.json records it
    dist: Distributed = field(default_factory=Distributed)

    @property
    def report_every(self) -> int:
        """Steps between progress reports."""
        return CPU_REPORT_EVERY if self.device.type == "cpu" else ACCELERATOR_REPORT_EVERY


class Observer:
    """No-op hooks every run reports through; subclass and override what you want to see."""

    def note(self, text: str) -> None:
        """A one-line remark (resuming, device chosen, ...)."""


# Options a resumed run may change: where it runs and where its data lies.
RESUMABLE_OPTIONS = ("device", "data_dir")


def refuse_resume_flags(given: Mapping[str, object]) -> None:
    """``--resume`` keeps the run's settings: any flag in ``given`` that is set (not None)
    would change them, and is refused by its flag name."""
    clashing = [name for name, value in given.items() if value is not None]
    if clashing:
        flag = "--" + clashing[0].replace("_", "-")
        raise ConfigError(
            f"{flag} cannot be combined with --resume: a resumed run keeps its settings"
        )


def resume_record(run_dir: Path, kind: str) -> dict[str, Any]:
    """run.json of the ``kind`` run (``search``, ``train``) in ``run_dir``, or a clear error."""
    if not is_run_dir(run_dir):
        raise RunDirError(f"--resume {run_dir} holds no pdarts run (no {RUN_FILE})")
    run = read_json(run_dir / RUN_FILE)
    if not isinstance(run, dict) or run.get("kind") != kind:
        article = "a training" if kind == "train" else f"a {kind}"
        raise RunDirError(f"--resume {run_dir} is not {article} run")
    return run


def resumed_options(run: Mapping[str, Any], **moved: object) -> dict[str, Any]:
    """The options the run started with, with those of ``RESUMABLE_OPTIONS`` in ``moved``
    that are given (not None) replacing them."""
    unknown = sorted(set(moved) - set(RESUMABLE_OPTIONS))
    if unknown:
        raise ValueError(f"a resumed run cannot change {', '.join(unknown)}")
    overrides = {k: v for k, v in moved.items() if v is not None}
    return {**run["options"], **overrides}


def threads_warning(run: Mapping[str, Any]) -> str | None:
    """Bit-for-bit resumption needs the thread count the run started with: what to tell the
    user when it differs, else None."""
    started_with = run.get("torch_threads")
    if started_with is None or started_with == torch.get_num_threads():
        return None
    return (
        f"this run started with {started_with} torch threads and continues with "
        f"{torch.get_num_threads()}: the result will not repeat an uninterrupted run bit for bit"
    )

"""What a run was computed with, for run.json: enough to say when results repeat bit for bit.

On one device, a result repeats bit for bit with the same seed, the same torch thread count
and the same versions of torch, numpy and (on GPUs) CUDA and cuDNN. Float reductions are
ordered differently with another thread count, so a genotype can differ between thread counts.
"""

from __future__ import annotations

import datetime as dt
import platform
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdarts_cli import __version__
from pdarts_cli.errors import RunDirError
from pdarts_cli.runlog import RUN_FORMAT


def device_description(device: torch.device) -> dict[str, Any]:
    """The device a run computes on, by type and model name."""
    description: dict[str, Any] = {"type": device.type, "name": str(device)}
    if device.type == "cuda":
        description["model"] = torch.cuda.get_device_name(device)
    else:
        description["model"] = platform.processor() or platform.machine()
    return description


def versions() -> dict[str, str | None]:
    """The versions a result depends on."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "pdarts": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn is not None else None,
    }


def run_record(
    kind: str, options: Mapping[str, Any], device: torch.device, **extra: Any
) -> dict[str, Any]:
    """The contents of run.json: kind, options, device, torch threads, versions, time."""
    return {
        "format": RUN_FORMAT,
        "kind": kind,
        "run_id": uuid.uuid4().hex,  # what its checkpoints carry, to be resumed by no other
        "options": dict(options),
        **extra,
        "device": device_description(device),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def checkpoint_identity(run: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """What a checkpoint records of the run that wrote it: the run's id, this pdarts version,
    the dataset and ``fields`` (the schedule or recipe, the seed)."""
    return {
        "run_id": run.get("run_id"),
        "pdarts": __version__,
        "dataset": run.get("options", {}).get("dataset"),
        **fields,
    }


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_identity(path: Path, saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
    """Refuse a checkpoint written by a newer pdarts, or by another run than ``current``
    (``checkpoint_identity`` of this run), saying what differs. Checkpoints from before
    identities were recorded pass."""
    if not saved:
        return
    written_by = str(saved.get("pdarts", "0"))
    if _version(written_by) > _version(__version__):
        raise RunDirError(
            f"{path} was written by pdarts {written_by}, newer than this pdarts "
            f"{__version__}; upgrade pdarts to resume it"
        )
    if not saved.get("run_id") or not current.get("run_id") or saved["run_id"] == current["run_id"]:
        return
    fields = [k for k in current if k not in ("run_id", "pdarts")]
    differs = [
        f"{k} {saved.get(k)!r} in the checkpoint, {current[k]!r} in this run"
        for k in fields
        if saved.get(k) != current[k]
    ]
    detail = "; ".join(differs) if differs else "the same settings, but another run"
    raise RunDirError(
        f"{path} comes from another run ({detail}); resume that run's directory instead"
    )

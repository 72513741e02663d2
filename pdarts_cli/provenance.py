"""What a run was computed with, for run.json: enough to say when results repeat bit for bit.

On one device, a result repeats bit for bit with the same seed, the same torch thread count
and the same versions of torch, numpy and (on GPUs) CUDA and cuDNN. Float reductions are
ordered differently with another thread count, so a genotype can differ between thread counts.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pdarts_cli import __version__
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
        "options": dict(options),
        **extra,
        "device": device_description(device),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }

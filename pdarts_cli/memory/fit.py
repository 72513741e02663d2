"""The fit and the pick: peak memory is affine in the batch size for a fixed stage
(peak = intercept + slope * batch); the pick is the largest batch whose predicted peak fits
the budget, by default the memory the device has for this run less a safety margin."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

SAFETY_MARGIN = 0.10  # share of the device's memory left free by the default budget
MEMINFO = Path("/proc/meminfo")
MAX_RECOMMENDED_BATCH = 8192  # when the fitted slope is ~0, the fit says little beyond this


def fit_affine(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of peak bytes against batch size."""
    batches = np.array([b for b, _ in points], dtype=np.float64)
    peaks = np.array([p for _, p in points], dtype=np.float64)
    slope, intercept = np.polyfit(batches, peaks, 1)
    return float(slope), float(intercept)


def recommend(slope: float, intercept: float, budget_bytes: int) -> int:
    """The largest batch whose predicted peak fits the budget."""
    if slope <= 0:
        return MAX_RECOMMENDED_BATCH
    return min(MAX_RECOMMENDED_BATCH, math.floor((budget_bytes - intercept) / slope))


def available_ram_bytes() -> int:
    """Memory the OS can give a new process now (``MemAvailable``), else all of it: on a CPU
    the machine's RAM is shared with every other process, and a budget must hold for this
    run's whole process."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return min(total, int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return total


def device_budget(device: str) -> int:
    """The default budget: a GPU's memory, or on the CPU the RAM available now, less the
    safety margin."""
    import torch

    from pdarts_cli.device import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        total = torch.cuda.get_device_properties(resolved).total_memory
    else:
        total = available_ram_bytes()
    return int(total * (1 - SAFETY_MARGIN))

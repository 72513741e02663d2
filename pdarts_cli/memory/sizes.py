"""Sizes as people write them (``16GiB``, ``16 GB``), the batch sizes to measure, and MiB."""

from __future__ import annotations

import re

from pdarts_cli.errors import PdartsError

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "kib": 2**10, "kb": 10**3,
    "m": 2**20, "mib": 2**20, "mb": 10**6,
    "g": 2**30, "gib": 2**30, "gb": 10**9,
    "t": 2**40, "tib": 2**40, "tb": 10**12,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes from ``16GiB``, ``16 GB``, ``16g``, ``16000MB``: KiB/MiB/GiB and single letters
    are powers of 1024, kB/MB/GB powers of 1000."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise PdartsError(f"cannot read {text!r} as a size; write it like 16GiB, 16 GB or 16000MB")
    size = float(match.group(1)) * _UNITS[unit]
    if size <= 0:
        raise PdartsError(f"a size must be positive, got {text!r}")
    return int(size)


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise PdartsError(f"--batch-sizes takes integers such as 32,64,96, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise PdartsError(f"batch sizes must be at least 1, got {text!r}")
    if len(sizes) < 2:
        raise PdartsError("give at least two batch sizes: the fit needs two points")
    return sizes


def mib(size: float) -> float:
    return size / 2**20

"""This process's memory as the operating system sees it: its peak and current resident sets,
and handing freed heap memory back so that the current figure means what is in use."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
from collections.abc import Callable
from pathlib import Path

STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        for line in STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's own peak resident memory.

    Linux's ``VmHWM`` is the high-water mark of the current address space; ``ru_maxrss``
    would also carry the parent's resident size at fork/exec, so a child started by a large
    process would report at least that.
    """
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return kib * 1024


def resident_bytes() -> int | None:
    """This process's resident memory now (``VmRSS``), where the OS says."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    After a search stage, glibc keeps the pages its tensors used; the process's resident
    size then overstates what it will need again by up to the last stage's peak."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

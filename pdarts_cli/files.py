"""Files in and out: text a user hands us (schedules, genotypes, architectures) read with one
clear error, and every file the tool writes written atomically, here and nowhere else."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pdarts_cli.errors import PdartsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Schedules, genotypes and architectures are kilobytes; anything this large is not one, and is
# refused before it is read, so that a hostile file costs neither time nor memory.
MAX_TEXT_BYTES = 16 * 2**20


def read_text(path: Path, error: type[PdartsError], what: str = "") -> str:
    """The UTF-8 text of ``path``; an unreadable, binary or oversized file is one ``error``
    line."""
    name = f"{what} {path}" if what else str(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise error(
                f"cannot read {name}: {size:,} bytes, more than the {MAX_TEXT_BYTES:,} a "
                "schedule, genotype or architecture file may have"
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {name}: not UTF-8 text ({exc.reason})") from exc


def parse_json(text: str, error: type[PdartsError], failure: str) -> Any:
    """JSON ``text``; malformed or nested too deep for the parser, one ``error`` line that
    starts with ``failure``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{failure}: {exc}") from exc
    except RecursionError as exc:
        raise error(f"{failure}: nested too deep") from exc


def parse_toml(text: str, error: type[PdartsError], failure: str) -> dict[str, Any]:
    """TOML ``text``; malformed or nested too deep for the parser, one ``error`` line that
    starts with ``failure``."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{failure}: {exc}") from exc
    except RecursionError as exc:
        raise error(f"{failure}: nested too deep") from exc
    return data


class WriteError(PdartsError):
    """A file the run must write could not be (a full disk, a read-only folder); the previous
    version of the file is kept. A failure during work: exit 1."""

    exit_code = 1


def write_failure(path: Path, exc: BaseException, size_bytes: int | None) -> WriteError:
    """One line naming ``path``, the reason and, for a full disk, the space needed."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    message = f"cannot write {path}: {reason}"
    if full:
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        needed = f"about {size_bytes / 2**20:,.1f} MiB" if size_bytes else "more"
        message += f"; it needs {needed} and {free / 2**20:,.1f} MiB are free"
    if path.exists():
        message += f"; the previous {path.name} is kept"
    return WriteError(message)


@contextlib.contextmanager
def atomic_replace(path: Path, size_bytes: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error the
    file is flushed to disk and renamed over ``path``, so ``path`` is always either the old
    file or the whole new one. On an error the temporary file is removed; an OS error (a full
    disk, a read-only folder) becomes one ``WriteError`` line, ``size_bytes`` being what the
    file needs."""
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_failure(path, exc, size_bytes) from exc
    os.close(handle)
    try:
        yield Path(temp)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise write_failure(path, exc, size_bytes) from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_replace(path, len(data)) as temp:
        temp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))

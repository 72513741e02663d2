"""Files in and out: text a user hands us (schedules, genotypes, architectures) read with one
clear error, and every file the tool writes written atomically, here and nowhere else."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pdarts_cli.errors import PdartsError


def read_text(path: Path, error: type[PdartsError], what: str = "") -> str:
    """The UTF-8 text of ``path``; an unreadable or binary file is one ``error`` line."""
    name = f"{what} {path}" if what else str(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {name}: not UTF-8 text ({exc.reason})") from exc


@contextlib.contextmanager
def atomic_replace(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error the
    file is flushed to disk and renamed over ``path``, so ``path`` is always either the old
    file or the whole new one. On an error the temporary file is removed."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temp)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_replace(path) as temp:
        temp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))

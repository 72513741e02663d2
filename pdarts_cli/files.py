"""The small text files a user hands us or gets back (schedules, genotypes, architectures):
read with one clear error, written atomically."""

from __future__ import annotations

import os
import tempfile
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))

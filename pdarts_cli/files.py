"""Reading the small text files a user hands us (schedules, genotypes, architectures)."""

from __future__ import annotations

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

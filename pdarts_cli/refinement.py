"""``refine``: derive genotypes with at most M skip-connects from a search's architecture."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from pdarts_cli.arch import read_arch
from pdarts_cli.errors import ArtifactError, PdartsError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import Genotype, genotype_json
from pdarts_cli.runlog import FINAL_ARCH_FILE
from pdarts_cli.schedule import MAX_SKIP_LIMIT
from pdarts_cli.searching.derive import derive_genotype

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_max_skip(text: str) -> list[int]:
    """``2`` -> [2]; ``0-4`` -> [0, 1, 2, 3, 4]."""
    match = _RANGE.match(text)
    if match is None:
        raise PdartsError(
            f"--max-skip takes a count >= 0 or a range such as 0-4, got {text.strip()!r}"
        )
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if high < low:
        raise PdartsError(f"--max-skip range {text.strip()!r} is empty: {high} < {low}")
    if high > MAX_SKIP_LIMIT:
        raise PdartsError(
            f"--max-skip {high} is above {MAX_SKIP_LIMIT}; a normal cell keeps 2 edges per node, "
            "so any M of at least that many keeps every skip-connect"
        )
    return list(range(low, high + 1))


def arch_path(source: Path) -> Path:
    """A run directory's final.arch.json, or the file itself."""
    if source.is_dir():
        path = source / FINAL_ARCH_FILE
        if not path.is_file():
            raise ArtifactError(f"{source} holds no {FINAL_ARCH_FILE}: is it a finished search?")
        return path
    if not source.exists():
        raise ArtifactError(f"{source} does not exist")
    return source


@dataclass(frozen=True)
class Refined:
    max_skip: int | None
    genotype: Genotype
    path: Path | None  # where it was written


def refine(source: Path, max_skips: list[int] | None, output: Path | None = None) -> list[Refined]:
    """Genotypes of ``source`` with at most M skip-connects in the normal cell, for each M.

    Each is written to ``output`` (one M only) or to ``genotype-mM.json`` next to the source.
    Without ``max_skips``: the plain derivation, written only when ``output`` is given.
    """
    if output is not None and max_skips is not None and len(max_skips) > 1:
        raise PdartsError("--output names one file; with a range of M the files go beside SOURCE")
    path = arch_path(source)
    arch = read_arch(path)
    folder = source if source.is_dir() else path.parent
    results = []
    for m in max_skips if max_skips is not None else [None]:
        genotype = dataclasses.replace(
            derive_genotype(arch, m), meta={"source": str(path), "max_skip": m}
        )
        target = (
            output
            if output is not None
            else (folder / f"genotype-m{m}.json" if m is not None else None)
        )
        if target is not None:
            try:
                atomic_write_text(target, genotype_json(genotype))
            except OSError as exc:
                raise PdartsError(f"cannot write {target}: {exc.strerror or exc}") from exc
        results.append(Refined(m, genotype, target))
    return results

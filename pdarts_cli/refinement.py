"""``refine``: derive genotypes with at most M skip-connects from a search's architecture.

``build_ladder``: the genotypes of every M with their evaluation networks' sizes (counted by
a function the caller gives: the API passes ``training.dry_run``, so that search and training
stay apart), written as one ``pdarts-ladder/1`` file; with a budget, the M of the largest
network within it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from pdarts_ops import IDENTITY_OP

from pdarts_cli.arch import ArchWeights, read_arch
from pdarts_cli.errors import ArtifactError, PdartsError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import Genotype, genotype_json
from pdarts_cli.runlog import FINAL_ARCH_FILE, write_json
from pdarts_cli.schedule import MAX_SKIP_LIMIT
from pdarts_cli.searching.derive import derive_genotype
from pdarts_cli.topology import INPUTS_PER_NODE

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
    folder = beside(source)
    results = []
    for m in max_skips if max_skips is not None else [None]:
        genotype = dataclasses.replace(
            derive_genotype(arch, m), meta={"source": str(path), "max_skip": m}
        )
        target = (
            output
            if output is not None
            else (folder / refined_file_name(m) if m is not None else None)
        )
        if target is not None:
            write_refined(target, genotype)
        results.append(Refined(m, genotype, target))
    return results


def beside(source: Path) -> Path:
    """The folder whose files sit beside SOURCE: the run directory, or the file's folder."""
    return source if source.is_dir() else source.parent


def refined_file_name(max_skip: int) -> str:
    """The file ``refine --max-skip M`` writes beside its source."""
    return f"genotype-m{max_skip}.json"


def write_refined(target: Path, genotype: Genotype) -> None:
    """``genotype`` as a ``pdarts-genotype/1`` file, or one line saying why it cannot be."""
    try:
        atomic_write_text(target, genotype_json(genotype))
    except OSError as exc:
        raise PdartsError(f"cannot write {target}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------------------------
# The ladder: every M with its evaluation network's size, and the largest network in a budget

LADDER_FORMAT: Final = "pdarts-ladder/1"
LADDER_FILE: Final = "ladder.json"
_COUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)\s*$", re.IGNORECASE)
_COUNT_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_count(text: str, flag: str) -> int:
    """``3.5M`` -> 3_500_000; ``600M``, ``1.2G``, ``2500k``, ``3500000``: decimal suffixes, as
    parameter counts and multiply-adds are published. ``flag`` names the option in errors."""
    match = _COUNT.match(text)
    if match is None:
        raise PdartsError(
            f"{flag} takes a count such as 3.5M, 600M, 1.2G or 3500000, got {text.strip()!r}"
        )
    count = Decimal(match.group(1)) * _COUNT_SCALE[match.group(2).lower()]
    if count != count.to_integral_value():
        raise PdartsError(f"{flag} {text.strip()!r} is not a whole number")
    if count <= 0:
        raise PdartsError(f"{flag} must be positive, got {text.strip()!r}")
    return int(count)


class NetworkSize(Protocol):
    """What the ladder needs of a network's count (``training.NetworkSummary`` is one)."""

    @property
    def parameters(self) -> int: ...  # auxiliary head excluded

    @property
    def multiply_adds(self) -> int: ...  # one image


@dataclass(frozen=True)
class Budget:
    """At most this many parameters and/or multiply-adds (None: no limit on that one)."""

    parameters: int | None = None
    multiply_adds: int | None = None

    def __post_init__(self) -> None:
        if self.parameters is None and self.multiply_adds is None:
            raise PdartsError("a budget needs a parameter count, a multiply-add count or both")
        if min(n for n in (self.parameters, self.multiply_adds) if n is not None) <= 0:
            raise PdartsError(f"a budget must be positive: {self}")

    def admits(self, rung: Rung) -> bool:
        return (self.parameters is None or rung.parameters <= self.parameters) and (
            self.multiply_adds is None or rung.multiply_adds <= self.multiply_adds
        )

    def size_key(self, rung: Rung) -> tuple[int, int]:
        """How large a network is: by parameters when they are budgeted, else by
        multiply-adds; the other count breaks ties."""
        if self.parameters is not None:
            return rung.parameters, rung.multiply_adds
        return rung.multiply_adds, rung.parameters

    def __str__(self) -> str:
        limits = [
            f"{count:,} {what}"
            for count, what in (
                (self.parameters, "parameters"),
                (self.multiply_adds, "multiply-adds"),
            )
            if count is not None
        ]
        return "at most " + " and ".join(limits)

    def to_dict(self) -> dict[str, int | None]:
        return {"parameters": self.parameters, "multiply_adds": self.multiply_adds}


@dataclass(frozen=True)
class Rung:
    """One M of the ladder. ``same_as``: the smallest M with this genotype, when not M."""

    max_skip: int
    genotype: Genotype
    parameters: int
    multiply_adds: int
    same_as: int | None = None

    @property
    def skip_connects(self) -> int:
        return self.genotype.count(IDENTITY_OP)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_skip": self.max_skip,
            "skip_connects": self.skip_connects,
            "parameters": self.parameters,
            "multiply_adds": self.multiply_adds,
            "same_as": self.same_as,
            "genotype": self.genotype.to_dict(),
        }


@dataclass(frozen=True)
class Ladder:
    """A source's genotypes for every M, sized in one setting; ``chosen`` the largest network
    within ``budget``. ``path`` and ``genotype_path``: the files written, if any."""

    source: Path
    setting: Mapping[str, Any]
    rungs: tuple[Rung, ...]
    budget: Budget | None = None
    chosen: Rung | None = None
    path: Path | None = None
    genotype_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``pdarts-ladder/1`` JSON object (docs: README, "Refinement by budget")."""
        return {
            "format": LADDER_FORMAT,
            "source": str(self.source),
            "setting": dict(self.setting),
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "chosen": self.chosen.max_skip if self.chosen is not None else None,
            "ladder": [rung.to_dict() for rung in self.rungs],
        }


def ladder_file(source: Path) -> Path:
    """Where ``refine --ladder`` writes by default: ``ladder.json`` beside SOURCE."""
    return beside(source) / LADDER_FILE


def ladder_rungs(arch: ArchWeights, size_of: Callable[[Genotype], NetworkSize]) -> tuple[Rung, ...]:
    """M = 0 .. every normal edge (8 for 4 steps); each distinct genotype is sized once."""
    first_m: dict[Genotype, int] = {}
    sizes: dict[Genotype, NetworkSize] = {}
    rungs = []
    for m in range(arch.steps * INPUTS_PER_NODE + 1):
        genotype = dataclasses.replace(derive_genotype(arch, m), meta={})
        if genotype not in sizes:
            first_m[genotype], sizes[genotype] = m, size_of(genotype)
        size, first = sizes[genotype], first_m[genotype]
        same_as = first if first != m else None
        rungs.append(Rung(m, genotype, size.parameters, size.multiply_adds, same_as))
    return tuple(rungs)


def choose_rung(rungs: Sequence[Rung], budget: Budget) -> Rung:
    """The largest network within ``budget`` (``Budget.size_key``); on ties the smallest M."""
    fitting = [rung for rung in rungs if budget.admits(rung)]
    if not fitting:
        smallest = min(rungs, key=lambda rung: (budget.size_key(rung), rung.max_skip))
        raise PdartsError(
            f"no M from {rungs[0].max_skip} to {rungs[-1].max_skip} fits the budget "
            f"({budget}): the smallest network, M = {smallest.max_skip}, has "
            f"{smallest.parameters:,} parameters and {smallest.multiply_adds:,} multiply-adds"
        )
    return max(fitting, key=lambda rung: (budget.size_key(rung), -rung.max_skip))


def build_ladder(
    source: Path,
    size_of: Callable[[Genotype], NetworkSize],
    setting: Mapping[str, Any],
    budget: Budget | None = None,
    output: Path | None = None,
) -> Ladder:
    """Every M's genotype of ``source`` with ``size_of`` its evaluation network, described by
    ``setting``; with ``budget`` the M of the largest network within it.

    With ``output`` the ladder is written there, and the chosen genotype beside it as
    ``genotype-mM.json`` (what ``refine --max-skip M`` writes). Nothing is written when no M
    fits the budget.
    """
    path = arch_path(source)
    rungs = ladder_rungs(read_arch(path), size_of)
    chosen = choose_rung(rungs, budget) if budget is not None else None
    ladder = Ladder(path, dict(setting), rungs, budget, chosen)
    if output is None:
        return ladder
    genotype_path = None
    if chosen is not None:
        genotype_path = output.parent / refined_file_name(chosen.max_skip)
        if genotype_path.resolve() == output.resolve():
            raise PdartsError(f"the ladder and the chosen genotype would both be {output}")
        meta = {"source": str(path), "max_skip": chosen.max_skip}
        write_refined(genotype_path, dataclasses.replace(chosen.genotype, meta=meta))
    try:
        write_json(output, ladder.to_dict())
    except OSError as exc:
        raise PdartsError(f"cannot write {output}: {exc.strerror or exc}") from exc
    return dataclasses.replace(ladder, path=output, genotype_path=genotype_path)

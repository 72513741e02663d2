"""Entry-point registries for candidate ops (``pdarts.ops``) and datasets (``pdarts.datasets``).

Entry points are read once, as names, and an object is imported only when it is asked for, so
``pdarts --help`` and schedule validation never import a plugin. A plugin that fails to import
is reported with its name, distribution and error, and the others keep working. Built-ins
(``pdarts-ops`` and ``pdarts`` itself) are declared through the same groups.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar, cast

from pdarts_cli.errors import ArtifactError, RegistryError

T = TypeVar("T")

OPS_GROUP = "pdarts.ops"
DATASETS_GROUP = "pdarts.datasets"


@dataclass(frozen=True)
class Entry:
    """One registered name and where it comes from."""

    name: str
    distribution: str
    target: str


@dataclass(frozen=True)
class LoadFailure:
    entry: Entry
    error: str

    def __str__(self) -> str:
        return f"{self.entry.name} ({self.entry.distribution}): {self.error}"


def _distribution_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "unknown"


def first_doc_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


@dataclass
class Registry(Generic[T]):
    """Names in one entry-point group, loaded lazily and cached."""

    group: str
    kind: str
    _entry_points: dict[str, EntryPoint] | None = field(default=None, repr=False)
    _entries: dict[str, Entry] = field(default_factory=dict, repr=False)
    _conflicts: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _loaded: dict[str, T] = field(default_factory=dict, repr=False)
    _runtime: dict[str, T] = field(default_factory=dict, repr=False)

    def _scan(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            found: dict[str, EntryPoint] = {}
            for ep in entry_points(group=self.group):
                dist = _distribution_name(ep)
                if ep.name in found and _distribution_name(found[ep.name]) != dist:
                    self._conflicts.setdefault(ep.name, [_distribution_name(found[ep.name])])
                    self._conflicts[ep.name].append(dist)
                    continue
                found[ep.name] = ep
                self._entries[ep.name] = Entry(ep.name, dist, ep.value)
            self._entry_points = found
        return self._entry_points

    def names(self) -> list[str]:
        """Every registered name, without importing anything."""
        return sorted({*self._scan(), *self._runtime})

    def entries(self) -> list[Entry]:
        self._scan()
        runtime = [Entry(n, "<runtime>", repr(obj)) for n, obj in self._runtime.items()]
        return sorted([*self._entries.values(), *runtime], key=lambda e: e.name)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown or broken name is a RegistryError."""
        if name in self._runtime:
            return self._runtime[name]
        if name in self._loaded:
            return self._loaded[name]
        eps = self._scan()
        if name in self._conflicts:
            providers = ", ".join(self._conflicts[name])
            raise RegistryError(
                f"{self.kind} {name!r} is provided by several distributions: {providers}"
            )
        if name not in eps:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}")
        try:
            obj = cast(T, eps[name].load())
        except Exception as exc:  # a broken plugin must never break the tool
            raise RegistryError(
                f"{self.kind} {name!r} from {self._entries[name].distribution} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._loaded[name] = obj
        return obj

    def load_all(self) -> tuple[list[tuple[Entry, T]], list[LoadFailure]]:
        """Load every entry; failures are collected, not raised."""
        loaded: list[tuple[Entry, T]] = []
        failures: list[LoadFailure] = []
        for entry in self.entries():
            try:
                loaded.append((entry, self.get(entry.name)))
            except RegistryError as exc:
                failures.append(LoadFailure(entry, str(exc)))
        return loaded, failures

    def register(self, name: str, obj: T) -> None:
        """Add an object at run time (a library user's own op, or a test's)."""
        if name in self.names():
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._runtime[name] = obj

    def unregister(self, name: str) -> None:
        self._runtime.pop(name, None)


OpFactory = Callable[[int, int, bool], Any]


@functools.cache
def op_registry() -> Registry[OpFactory]:
    return Registry(OPS_GROUP, "op")


@functools.cache
def dataset_registry() -> Registry[Callable[..., Any]]:
    return Registry(DATASETS_GROUP, "dataset")


@dataclass(frozen=True)
class KnownOps:
    """The op names an architecture or genotype may use, and how to refuse any other.

    A file naming an op that nothing provides would be accepted and only fail when a network is
    built (or never, for a genotype that is only shown): readers check every name up front.
    """

    names: tuple[str, ...]
    registered: bool  # the op registry's names: a missing op is a package not installed

    @classmethod
    def of(cls, names: Collection[str] | None) -> KnownOps:
        """``names`` as given, or for None the op registry's, at this moment."""
        if names is None:
            return cls(tuple(op_registry().names()), registered=True)
        return cls(tuple(names), registered=False)

    def require(self, op: str, where: str) -> None:
        """An unknown op is an ArtifactError (the file is at fault) naming it and the known ones."""
        if op not in self.names:
            why = ", which no installed package registers" if self.registered else ""
            known = ", ".join(self.names) or "(none)"
            raise ArtifactError(f"{where}: unknown op {op!r}{why}; known ops: {known}")

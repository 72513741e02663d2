"""P-DARTS search as a library: ``run_search`` starts a run, ``resume_search`` continues one.

>>> from pdarts_cli.schedule import load_schedule
>>> from pdarts_cli.search import SearchOptions, run_search
>>> result = run_search(load_schedule("quick"), SearchOptions(dataset="digits"), "runs/demo")

The names below load on first use, so that importing one module of the package (the
derivation, say) does not import the whole run loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdarts_cli.search.data import data_halves
    from pdarts_cli.search.events import SearchObserver, SearchResult
    from pdarts_cli.search.options import SearchOptions
    from pdarts_cli.search.run import resolve_for_dataset, resume_search, run_search

# public name -> the module that defines it
_EXPORTS = {
    "SearchObserver": "pdarts_cli.search.events",
    "SearchResult": "pdarts_cli.search.events",
    "SearchOptions": "pdarts_cli.search.options",
    "data_halves": "pdarts_cli.search.data",
    "resolve_for_dataset": "pdarts_cli.search.run",
    "resume_search": "pdarts_cli.search.run",
    "run_search": "pdarts_cli.search.run",
}

__all__ = [
    "SearchObserver",
    "SearchOptions",
    "SearchResult",
    "data_halves",
    "resolve_for_dataset",
    "resume_search",
    "run_search",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

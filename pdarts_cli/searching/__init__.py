"""P-DARTS search as a library: ``run_search`` starts a run, ``resume_search`` continues one.

>>> from pdarts_cli.schedule import load_schedule
>>> from pdarts_cli.searching import SearchOptions, run_search
>>> result = run_search(load_schedule("quick"), SearchOptions(dataset="digits"), "runs/demo")

``run_seeds`` searches one schedule once per seed and compares the genotypes (stability.json).

The names below load on first use, so that importing one module of the package (the
derivation, say) does not import the whole run loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdarts_cli.lazy import lazy_exports

if TYPE_CHECKING:
    from pdarts_cli.searching.data import data_halves
    from pdarts_cli.searching.events import SearchObserver, SearchResult
    from pdarts_cli.searching.options import SearchOptions
    from pdarts_cli.searching.run import resolve_for_dataset, resume_search, run_search
    from pdarts_cli.searching.seeds import SeedsResult, is_seeds_run, resume_seeds, run_seeds

# public name -> the module that defines it
_EXPORTS = {
    "SearchObserver": "pdarts_cli.searching.events",
    "SearchResult": "pdarts_cli.searching.events",
    "SearchOptions": "pdarts_cli.searching.options",
    "data_halves": "pdarts_cli.searching.data",
    "resolve_for_dataset": "pdarts_cli.searching.run",
    "resume_search": "pdarts_cli.searching.run",
    "run_search": "pdarts_cli.searching.run",
    "SeedsResult": "pdarts_cli.searching.seeds",
    "is_seeds_run": "pdarts_cli.searching.seeds",
    "resume_seeds": "pdarts_cli.searching.seeds",
    "run_seeds": "pdarts_cli.searching.seeds",
}

__all__ = [
    "SearchObserver",
    "SearchOptions",
    "SearchResult",
    "SeedsResult",
    "data_halves",
    "is_seeds_run",
    "resolve_for_dataset",
    "resume_search",
    "resume_seeds",
    "run_search",
    "run_seeds",
]


__getattr__ = lazy_exports(globals(), _EXPORTS)

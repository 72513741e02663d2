"""pdarts: Progressive DARTS architecture search as a library and a command-line tool.

>>> import pdarts_cli as pdarts
>>> result = pdarts.search("digits", "quick")
>>> state = pdarts.train(result.genotype, "digits", "quick", out_dir="runs/train")

``search``, ``refine``, ``refine_ladder``, ``train`` and ``evaluate`` (``pdarts_cli.api``)
do what the commands do; the types they take and give are exported here too. The library
never imports Typer or rich; ``pdarts_cli.cli`` is the command-line layer on top. Names load
on first use, so ``import pdarts_cli`` costs nothing until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdarts_cli.lazy import lazy_exports

if TYPE_CHECKING:
    from pdarts_cli.api import evaluate, refine, refine_ladder, search, train
    from pdarts_cli.arch import ArchWeights, read_arch
    from pdarts_cli.genotype import Genotype, load_genotype
    from pdarts_cli.overrides import with_overrides
    from pdarts_cli.refinement import Ladder
    from pdarts_cli.schedule import Schedule, load_schedule
    from pdarts_cli.searching.events import SearchObserver, SearchResult
    from pdarts_cli.training import Evaluation, TrainObserver, TrainState
    from pdarts_cli.training.recipe import Recipe, load_recipe

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "search": "pdarts_cli.api",
    "refine": "pdarts_cli.api",
    "refine_ladder": "pdarts_cli.api",
    "Ladder": "pdarts_cli.refinement",
    "train": "pdarts_cli.api",
    "evaluate": "pdarts_cli.api",
    "ArchWeights": "pdarts_cli.arch",
    "read_arch": "pdarts_cli.arch",
    "Genotype": "pdarts_cli.genotype",
    "load_genotype": "pdarts_cli.genotype",
    "with_overrides": "pdarts_cli.overrides",
    "Schedule": "pdarts_cli.schedule",
    "load_schedule": "pdarts_cli.schedule",
    "SearchObserver": "pdarts_cli.searching.events",
    "SearchResult": "pdarts_cli.searching.events",
    "Evaluation": "pdarts_cli.training",
    "TrainObserver": "pdarts_cli.training",
    "TrainState": "pdarts_cli.training",
    "Recipe": "pdarts_cli.training.recipe",
    "load_recipe": "pdarts_cli.training.recipe",
}

__all__ = [
    "ArchWeights",
    "Evaluation",
    "Genotype",
    "Ladder",
    "Recipe",
    "Schedule",
    "SearchObserver",
    "SearchResult",
    "TrainObserver",
    "TrainState",
    "__version__",
    "evaluate",
    "load_genotype",
    "load_recipe",
    "load_schedule",
    "read_arch",
    "refine",
    "refine_ladder",
    "search",
    "train",
    "with_overrides",
]


__getattr__ = lazy_exports(globals(), _EXPORTS)

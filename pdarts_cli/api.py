"""The Python API: what ``pdarts search``, ``refine``, ``train`` and ``evaluate`` do, called
from Python.

>>> import pdarts_cli as pdarts
>>> result = pdarts.search("digits", "quick", overrides={"stages.1.epochs": 2})
>>> result.genotype.to_darts()

Each function takes what a caller has at hand (a preset name or a ``Schedule``, a dataset spec
or tensors, a genotype name or a ``Genotype``) and returns the result as objects; a search
given no ``out_dir`` writes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from pdarts_cli.arch import ArchWeights, read_arch
from pdarts_cli.data import InMemoryData, as_image_dataset
from pdarts_cli.genotype import Genotype, load_genotype
from pdarts_cli.overrides import with_overrides
from pdarts_cli.refinement import Budget, Ladder, arch_path, build_ladder
from pdarts_cli.schedule import PAPER_MAX_SKIP, Schedule, load_schedule, preset_for_dataset
from pdarts_cli.searching.derive import derive_genotype
from pdarts_cli.searching.events import SearchObserver, SearchResult
from pdarts_cli.searching.options import SearchOptions
from pdarts_cli.searching.run import run_search
from pdarts_cli.threads import ThreadRequest, parse_threads, using_threads
from pdarts_cli.training import (
    Evaluation,
    TrainObserver,
    TrainOptions,
    TrainState,
    dry_run,
    evaluate_checkpoint,
    run_training,
)
from pdarts_cli.training.recipe import Recipe, adapt_to_dataset, load_recipe, recipe_for_dataset
from pdarts_cli.training.run import dataset_shape

# What ``search`` accepts as data: a dataset spec (``digits``, ``cifar10``, ``npz:PATH``, ...)
# or data in memory (``as_image_dataset``: tensors, a torch Dataset, with or without a test split).
SearchData: TypeAlias = str | InMemoryData
IN_MEMORY = "in-memory"  # the name records give data passed as objects


def _threads(threads: int | str | None) -> ThreadRequest | None:
    return parse_threads(threads) if isinstance(threads, str) else threads


def _schedule(schedule: Schedule | str | Path | None, dataset: str) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    return load_schedule(str(schedule) if schedule is not None else preset_for_dataset(dataset))


def search(
    data: SearchData,
    schedule: Schedule | str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    data_dir: Path | None = None,
    download: bool = False,
    image_size: int | None = None,
    force: bool = False,
    observer: SearchObserver | None = None,
    threads: int | str | None = None,
) -> SearchResult:
    """Search a cell with P-DARTS, as ``pdarts search`` does.

    ``schedule`` is a ``Schedule``, a preset name or a schedule file (default: the paper's for
    the dataset); ``overrides`` replaces fields by dotted key (``{"alphas.order": "second",
    "stages.1.epochs": 5}``, stages counted from 1). With ``out_dir`` the run directory is
    written as by the command (and can be resumed); without, nothing is written and the
    result carries the genotype, the final arch weights and every epoch's metrics. ``threads``
    (a count or ``"auto"``; default PDARTS_THREADS, else auto) is torch's CPU thread count
    during the search.
    """
    spec = data if isinstance(data, str) else IN_MEMORY
    resolved = _schedule(schedule, spec)
    if overrides:
        resolved = with_overrides(resolved, overrides)
    options = SearchOptions(
        dataset=spec,
        data_dir=data_dir,
        download=download,
        image_size=image_size,
        device=device,
        threads=_threads(threads),
    )
    in_memory = None if isinstance(data, str) else as_image_dataset(data, IN_MEMORY)
    return run_search(resolved, options, out_dir, force=force, observer=observer, data=in_memory)


def refine(arch: ArchWeights | str | Path, max_skip: int | None = PAPER_MAX_SKIP) -> Genotype:
    """The genotype of ``arch`` (arch weights, a ``*.arch.json`` file or a search run
    directory) with at most ``max_skip`` skip-connects in the normal cell (P-DARTS' refinement;
    None: the plain derivation)."""
    if not isinstance(arch, ArchWeights):
        arch = read_arch(arch_path(Path(arch)))
    return derive_genotype(arch, max_skip)


def train(
    genotype: Genotype | str | Path,
    dataset: str,
    recipe: Recipe | str | Path | None = None,
    *,
    out_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    data_dir: Path | None = None,
    download: bool = False,
    force: bool = False,
    observer: TrainObserver | None = None,
    threads: int | str | None = None,
) -> TrainState:
    """Train a genotype's evaluation network, as ``pdarts train`` does, into ``out_dir``.

    ``genotype`` is a ``Genotype``, a zoo name, a DARTS string, a genotype file or a search run
    directory; ``recipe`` a ``Recipe``, a preset name or a recipe file (default: the paper's
    for the dataset); ``overrides`` replaces recipe fields by dotted key (``{"epochs": 2}``).
    """
    if not isinstance(genotype, Genotype):
        genotype = load_genotype(str(genotype))
    if isinstance(recipe, Recipe):
        resolved = recipe
    else:
        name = str(recipe) if recipe is not None else recipe_for_dataset(dataset)
        resolved = adapt_to_dataset(load_recipe(name), dataset, overrides or {})
    if overrides:
        resolved = with_overrides(resolved, overrides)
    options = TrainOptions(
        dataset=dataset,
        data_dir=data_dir,
        download=download,
        device=device,
        threads=_threads(threads),
    )
    return run_training(genotype, resolved, options, out_dir, force=force, observer=observer)


def evaluate(
    checkpoint: str | Path,
    dataset: str,
    *,
    device: str = "auto",
    data_dir: Path | None = None,
    threads: int | str | None = None,
) -> Evaluation:
    """Top-1 and top-5 of a trained network (``final.safetensors``, ...) on ``dataset``'s test
    split, as ``pdarts evaluate`` reports them."""
    options = TrainOptions(
        dataset=dataset, data_dir=data_dir, device=device, threads=_threads(threads)
    )
    return evaluate_checkpoint(Path(checkpoint), options)


def refine_ladder(
    arch: str | Path,
    dataset: str = "cifar10",
    recipe: Recipe | str | Path | None = None,
    *,
    max_params: int | None = None,
    max_madds: int | None = None,
    output: str | Path | None = None,
) -> Ladder:
    """The genotypes of ``arch`` (a ``*.arch.json`` file or a search run directory) for every
    M from 0 to 8, each with its evaluation network's parameters (auxiliary head excluded) and
    multiply-adds, as ``pdarts train GENOTYPE --dataset DATASET --recipe RECIPE --dry-run``
    counts them (recipe default: the paper's for the dataset).

    With ``max_params`` and/or ``max_madds``, ``chosen`` is the M of the largest network within
    them (the smallest M on ties). With ``output`` the ``pdarts-ladder/1`` file is written there
    and the chosen genotype beside it; otherwise nothing is written.
    """
    if isinstance(recipe, Recipe):
        resolved = recipe
    else:
        name = str(recipe) if recipe is not None else recipe_for_dataset(dataset)
        resolved = adapt_to_dataset(load_recipe(name), dataset, {})
    options = TrainOptions(dataset=dataset)
    classes, _, image_size = dataset_shape(options)
    setting = {
        "dataset": dataset,
        "recipe": resolved.name,
        "network": resolved.network,
        "channels": resolved.channels,
        "layers": resolved.layers,
        "num_classes": classes,
        "image_size": image_size,
        "auxiliary_head_counted": False,
    }
    limits = (max_params, max_madds)
    budget = Budget(*limits) if limits != (None, None) else None
    size_of = functools.partial(dry_run, recipe=resolved, options=options)
    target = Path(output) if output is not None else None
    # Counting is one forward pass of one image per genotype: one thread is enough, and more
    # spin for minutes on a machine whose cores other processes keep busy.
    with using_threads(1):
        return build_ladder(Path(arch), size_of, setting, budget, target)

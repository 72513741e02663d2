"""The entry points of training: ``run_training`` leaves a run directory, ``resume_training``
continues one, ``dry_run`` sizes the network without training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdarts_cli.context import RunContext, resume_record, resumed_options, threads_warning
from pdarts_cli.data import DatasetInfo, resolve_dataset
from pdarts_cli.distributed import on_main
from pdarts_cli.errors import ArtifactError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import Genotype, genotype_json, read_genotype_file
from pdarts_cli.provenance import checkpoint_identity, run_record
from pdarts_cli.runlock import run_lock
from pdarts_cli.runlog import (
    GENOTYPE_FILE,
    METRICS_FILE,
    RUN_FILE,
    MetricsLog,
    create_run_dir,
    write_json,
)
from pdarts_cli.threads import (
    ThreadChoice,
    ThreadRequest,
    choose_threads,
    describe_threads,
    resumed_threads,
    using_threads,
)
from pdarts_cli.training.loop import fit
from pdarts_cli.training.metrics import TrainObserver
from pdarts_cli.training.network import count_parameters, multiply_adds
from pdarts_cli.training.recipe import Recipe, read_recipe_file, recipe_json
from pdarts_cli.training.setup import TrainOptions, build_network, train_context
from pdarts_cli.training.state import (
    BEST_FILE,
    FINAL_FILE,
    LAST_FILE,
    TrainState,
    load_last,
    new_state,
)

RECIPE_FILE = "recipe.json"

# Shapes of the datasets whose networks can be sized without reading any data.
KNOWN_SHAPES: dict[str, tuple[int, int, int]] = {  # classes, channels, image size
    "cifar10": (10, 3, 32),
    "cifar100": (100, 3, 32),
    "digits": (10, 1, 8),
    "imagenet": (1000, 3, 224),
}


@dataclass(frozen=True)
class NetworkSummary:
    parameters: int  # auxiliary head excluded (DARTS convention)
    parameters_with_auxiliary: int
    multiply_adds: int  # one image, inference path
    image_size: int
    num_classes: int


def dataset_shape(options: TrainOptions) -> tuple[int, int, int]:
    name = options.dataset.split(":", 1)[0]
    if name in KNOWN_SHAPES and options.image_size is None:
        return KNOWN_SHAPES[name]
    info = resolve_dataset(
        options.dataset, options.data_dir, options.download, options.image_size
    ).info
    return info.num_classes, info.channels, info.image_size


def dry_run(genotype: Genotype, recipe: Recipe, options: TrainOptions) -> NetworkSummary:
    """Build the network and count it, without training (and, for known datasets, without
    reading data)."""
    classes, channels, size = dataset_shape(options)
    info = DatasetInfo(
        options.dataset, classes, channels, size, (0.0,) * channels, (1.0,) * channels
    )
    model = build_network(genotype, recipe, info)
    return NetworkSummary(
        parameters=count_parameters(model),
        parameters_with_auxiliary=count_parameters(model, auxiliary=True),
        multiply_adds=multiply_adds(model, size, channels),
        image_size=size,
        num_classes=classes,
    )


def train_identity(run: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """What this run's last.safetensors records of it (see ``provenance.check_identity``)."""
    return checkpoint_identity(run, recipe=recipe.name, seed=recipe.seed)


def run_training(
    genotype: Genotype,
    recipe: Recipe,
    options: TrainOptions,
    out_dir: str | Path,
    force: bool = False,
    observer: TrainObserver | None = None,
) -> TrainState:
    """Train ``genotype`` with ``recipe`` and leave a run directory in ``out_dir``; torch
    computes with ``options.threads`` threads, the caller's count restored afterwards."""
    threads = choose_threads(options.threads)
    with using_threads(threads.threads):
        return _run_training(genotype, recipe, options, Path(out_dir), force, observer, threads)


def _run_training(
    genotype: Genotype,
    recipe: Recipe,
    options: TrainOptions,
    run_dir: Path,
    force: bool,
    observer: TrainObserver | None,
    threads: ThreadChoice,
) -> TrainState:
    observer = observer or TrainObserver()
    env = train_context(recipe, options)
    state = new_state(genotype, recipe, env)  # refuses a recipe that does not fit first
    on_main(lambda: create_run_dir(run_dir, force), run_dir, env.dist)
    with run_lock(run_dir, enabled=env.dist.is_main):
        if env.dist.is_main:
            record = run_record(
                "train",
                options.model_dump(mode="json"),
                env.device,
                world_size=env.dist.world_size,
                threads=threads.to_dict(),
            )
            state.identity = train_identity(record, recipe)
            write_json(run_dir / RUN_FILE, record)
            atomic_write_text(run_dir / RECIPE_FILE, recipe_json(recipe))
            atomic_write_text(run_dir / GENOTYPE_FILE, genotype_json(genotype))
        cpu = f", {describe_threads(threads)}" if env.device.type == "cpu" else ""
        observer.note(
            f"training on {env.device} ({env.precision.label}{cpu}), {env.dist.world_size} "
            f"process(es), {count_parameters(state.model):,} parameters"
        )
        return fit(genotype, recipe, env, run_dir, state, observer)


def resume_training(
    run_dir: str | Path,
    genotype: Genotype | None = None,
    device: str | None = None,
    observer: TrainObserver | None = None,
    data_dir: Path | None = None,
    threads: ThreadRequest | None = None,
) -> TrainState:
    """Continue a training run from its last.safetensors, with the options it started with;
    only the ``device`` and the ``data_dir`` may move (None keeps the run's). It computes with
    the thread count it started with unless ``threads`` (or PDARTS_THREADS) says otherwise."""
    run = resume_record(Path(run_dir), "train")
    choice = resumed_threads(run.get("torch_threads"), threads)
    with using_threads(choice.threads):
        return _resume_training(Path(run_dir), run, genotype, device, observer, data_dir)


def _resume_training(
    run_dir: Path,
    run: dict[str, Any],
    genotype: Genotype | None,
    device: str | None,
    observer: TrainObserver | None,
    data_dir: Path | None,
) -> TrainState:
    observer = observer or TrainObserver()
    saved = read_genotype_file(run_dir / GENOTYPE_FILE)
    if genotype is not None and genotype != saved:
        raise ArtifactError(f"{run_dir} was trained with another genotype")
    recipe = read_recipe_file(run_dir / RECIPE_FILE)
    options = TrainOptions.model_validate(resumed_options(run, device=device, data_dir=data_dir))
    env = train_context(recipe, options)
    with run_lock(run_dir, enabled=env.dist.is_main):
        return _continue_training(run_dir, run, saved, recipe, env, observer)


def _continue_training(
    run_dir: Path,
    run: dict[str, Any],
    saved: Genotype,
    recipe: Recipe,
    env: RunContext,
    observer: TrainObserver,
) -> TrainState:
    state = new_state(saved, recipe, env)
    state.identity = train_identity(run, recipe)
    if (run_dir / LAST_FILE).exists():
        load_last(run_dir / LAST_FILE, state, saved)
        observer.note(f"resuming at epoch {state.next_epoch + 1} of {recipe.epochs}")
    warning = threads_warning(run)
    if warning is not None:
        observer.note(warning)
    if recipe.valid_portion == 0 and (run_dir / BEST_FILE).exists():
        observer.note(
            f"{BEST_FILE} in {run_dir} was chosen on the test split by an older pdarts; it is "
            f"left as it was, no longer updated: report {FINAL_FILE}"
        )
    # Lines of epochs after the checkpoint are written again.
    MetricsLog(run_dir / METRICS_FILE).keep(lambda r: r["epoch"] <= state.next_epoch)
    return fit(saved, recipe, env, run_dir, state, observer)

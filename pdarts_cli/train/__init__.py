"""Training evaluation networks: ``run_training``, ``resume_training``, ``dry_run``,
``evaluate_checkpoint``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from pdarts_cli.checkpoint import load_tensors
from pdarts_cli.config import FrozenModel
from pdarts_cli.data import DatasetInfo, resolve_dataset
from pdarts_cli.device import resolve_device
from pdarts_cli.distributed import init_distributed
from pdarts_cli.errors import ArtifactError, RunDirError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import Genotype, genotype_from_dict, genotype_json, read_genotype_file
from pdarts_cli.provenance import run_record
from pdarts_cli.runlog import (
    METRICS_FILE,
    RUN_FILE,
    MetricsLog,
    create_run_dir,
    is_run_dir,
    read_json,
    write_json,
)
from pdarts_cli.train.network import count_parameters, multiply_adds
from pdarts_cli.train.recipe import Recipe, read_recipe_file, recipe_json
from pdarts_cli.train.trainer import (
    BEST_FILE,
    FINAL_FILE,
    LAST_FILE,
    WEIGHTS_FORMAT,
    TrainEnvironment,
    TrainMetrics,
    TrainObserver,
    TrainProgress,
    TrainState,
    best_on_valid,
    build_network,
    evaluate,
    fit,
    load_last,
    new_state,
    recipe_from_checkpoint,
    test_batches,
    training_channels_last,
    training_precision,
)

__all__ = [
    "BEST_FILE",
    "FINAL_FILE",
    "LAST_FILE",
    "Evaluation",
    "NetworkSummary",
    "TrainMetrics",
    "TrainObserver",
    "TrainOptions",
    "TrainProgress",
    "TrainState",
    "best_on_valid",
    "count_parameters",
    "dry_run",
    "evaluate_checkpoint",
    "resume_training",
    "run_training",
]

RECIPE_FILE = "recipe.json"
GENOTYPE_FILE = "genotype.json"

# Shapes of the datasets whose networks can be sized without reading any data.
KNOWN_SHAPES: dict[str, tuple[int, int, int]] = {  # classes, channels, image size
    "cifar10": (10, 3, 32),
    "cifar100": (100, 3, 32),
    "digits": (10, 1, 8),
    "imagenet": (1000, 3, 224),
}


class TrainOptions(FrozenModel):
    dataset: str = Field(description="Dataset spec: cifar10, cifar100, digits, npz:PATH, ...")
    data_dir: Path | None = None
    download: bool = False
    image_size: int | None = Field(default=None, ge=4)
    device: str = "auto"


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


def _environment(recipe: Recipe, options: TrainOptions) -> TrainEnvironment:
    device = resolve_device(options.device)
    setup = init_distributed(device.type)
    if setup.enabled and device.type == "cuda":
        device = torch.device("cuda", setup.local_rank)
    data = resolve_dataset(options.dataset, options.data_dir, options.download, options.image_size)
    return TrainEnvironment(
        data=data,
        device=device,
        precision=training_precision(recipe, device),
        channels_last=training_channels_last(recipe, device),
        dist=setup,
        dataset=options.dataset,
    )


def run_training(
    genotype: Genotype,
    recipe: Recipe,
    options: TrainOptions,
    out_dir: str | Path,
    force: bool = False,
    observer: TrainObserver | None = None,
) -> TrainState:
    """Train ``genotype`` with ``recipe`` and leave a run directory in ``out_dir``."""
    observer = observer or TrainObserver()
    env = _environment(recipe, options)
    state = new_state(genotype, recipe, env)  # refuses a recipe that does not fit first
    run_dir = Path(out_dir)
    if env.dist.is_main:
        create_run_dir(run_dir, force)
        record = run_record(
            "train",
            options.model_dump(mode="json"),
            env.device,
            world_size=env.dist.world_size,
        )
        write_json(run_dir / RUN_FILE, record)
        atomic_write_text(run_dir / RECIPE_FILE, recipe_json(recipe))
        atomic_write_text(run_dir / GENOTYPE_FILE, genotype_json(genotype))
    observer.note(
        f"training on {env.device} ({env.precision.label}), {env.dist.world_size} process(es), "
        f"{count_parameters(state.model):,} parameters"
    )
    return fit(genotype, recipe, env, run_dir, state, observer)


def resume_training(
    run_dir: str | Path,
    genotype: Genotype | None = None,
    device: str | None = None,
    observer: TrainObserver | None = None,
) -> TrainState:
    """Continue a training run from its last.safetensors."""
    observer = observer or TrainObserver()
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise RunDirError(f"--resume {run_dir} holds no pdarts run (no {RUN_FILE})")
    run = read_json(run_dir / RUN_FILE)
    if not isinstance(run, dict) or run.get("kind") != "train":
        raise RunDirError(f"--resume {run_dir} is not a training run")
    saved = read_genotype_file(run_dir / GENOTYPE_FILE)
    if genotype is not None and genotype != saved:
        raise ArtifactError(f"{run_dir} was trained with another genotype")
    recipe = read_recipe_file(run_dir / RECIPE_FILE)
    overrides = {"device": device} if device is not None else {}
    options = TrainOptions.model_validate({**run["options"], **overrides})
    env = _environment(recipe, options)
    state = new_state(saved, recipe, env)
    if (run_dir / LAST_FILE).exists():
        load_last(run_dir / LAST_FILE, state, saved)
        observer.note(f"resuming at epoch {state.next_epoch + 1} of {recipe.epochs}")
    if recipe.valid_portion == 0 and (run_dir / BEST_FILE).exists():
        observer.note(
            f"{BEST_FILE} in {run_dir} was chosen on the test split by an older pdarts; it is "
            f"left as it was, no longer updated: report {FINAL_FILE}"
        )
    # Lines of epochs after the checkpoint are written again.
    MetricsLog(run_dir / METRICS_FILE).keep(lambda r: r["epoch"] <= state.next_epoch)
    return fit(saved, recipe, env, run_dir, state, observer)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    top1: float
    top5: float
    images: int


def _recorded(metadata: dict[str, Any], key: str) -> int | None:
    """A shape the checkpoint records; None where an older checkpoint did not record it."""
    value = metadata.get(key)
    return None if value is None else int(value)


def _evaluation_options(options: TrainOptions, metadata: dict[str, Any]) -> TrainOptions:
    """Datasets without a native size (image folders) are resized to the size the network
    was trained at, not to their default, unless the caller asked for a size; datasets of a
    fixed size ignore the request."""
    trained_size = _recorded(metadata, "image_size")
    if options.image_size is not None or trained_size is None:
        return options
    return options.model_copy(update={"image_size": trained_size})


def _images(channels: int | None, size: int | None) -> str:
    """``3-channel 32x32 images``, leaving out what an older checkpoint did not record."""
    words = [f"{channels}-channel"] if channels is not None else []
    words += [f"{size}x{size}"] if size is not None else []
    return " ".join([*words, "images"])


def _check_dataset_fits(
    path: Path, metadata: dict[str, Any], info: DatasetInfo, options: TrainOptions
) -> None:
    """Refuse a dataset of another shape than the checkpoint's, naming both shapes.

    Channels and classes must match, or the weights cannot even load. The image size must
    match too: both networks end in global pooling, so another size runs, but it measures
    the network at a resolution it never saw, which is not the accuracy ``evaluate``
    reports. Only an image size the caller asked for (``options.image_size``) is taken as
    meant. A shape an older checkpoint did not record is not compared.
    """
    channels = _recorded(metadata, "in_channels")
    size = _recorded(metadata, "image_size")
    classes = int(metadata["num_classes"])
    channels_differ = channels is not None and channels != info.channels
    asked_for = options.image_size == info.image_size
    size_differs = size is not None and size != info.image_size and not asked_for
    classes_differ = classes != info.num_classes
    if not (channels_differ or size_differs or classes_differ):
        return
    theirs = f" with {info.num_classes} classes" if classes_differ else ""
    raise ArtifactError(
        f"{path} was trained on {_images(channels, size)} with {classes} classes; "
        f"{options.dataset} has {_images(info.channels, info.image_size)}{theirs}"
    )


def evaluate_checkpoint(path: Path, options: TrainOptions) -> Evaluation:
    """Top-1/top-5 of a final.safetensors (the network to report), best.safetensors or
    last.safetensors on the dataset's test split; the genotype and recipe come from the
    checkpoint itself. A dataset of another shape than the one it was trained on is refused
    before any weight is loaded, so the message names the mismatch rather than a tensor."""
    tensors, metadata = load_tensors(path)
    if metadata.get("format") not in {WEIGHTS_FORMAT, "pdarts-train-checkpoint/1"}:
        raise ArtifactError(f"{path} holds no trained network")
    genotype = genotype_from_dict(metadata["genotype"], source=str(path))
    recipe = recipe_from_checkpoint(metadata, path)
    env = _environment(recipe, _evaluation_options(options, metadata))
    _check_dataset_fits(path, metadata, env.data.info, options)
    # Built at the trained size: only the auxiliary head depends on it, and it must load.
    trained_size = _recorded(metadata, "image_size") or env.data.info.image_size
    model = build_network(
        genotype, recipe, dataclasses.replace(env.data.info, image_size=trained_size)
    )
    prefix = "model." if metadata["format"] != WEIGHTS_FORMAT else ""
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # torch lists every mismatched tensor, one per line
        problem = " ".join(str(exc).split())
        raise ArtifactError(f"{path} does not fit its own genotype: {problem}") from exc
    model.to(env.device)
    loss, top1, top5 = evaluate(model, test_batches(recipe, env), env)
    return Evaluation(loss, top1, top5, len(env.data.test))  # type: ignore[arg-type]

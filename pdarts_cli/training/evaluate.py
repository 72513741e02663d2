"""Scoring a trained network's weights file on a dataset's test split (``pdarts evaluate``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdarts_cli.checkpoint import load_tensors
from pdarts_cli.data import DatasetInfo
from pdarts_cli.errors import ArtifactError
from pdarts_cli.genotype import genotype_from_dict
from pdarts_cli.threads import choose_threads, using_threads
from pdarts_cli.training.batches import test_batches
from pdarts_cli.training.loop import evaluate
from pdarts_cli.training.setup import TrainOptions, build_network, train_context
from pdarts_cli.training.state import (
    TRAIN_CHECKPOINT_FORMAT,
    WEIGHTS_FORMAT,
    recipe_from_checkpoint,
)


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
    with using_threads(choose_threads(options.threads).threads):
        return _evaluate_checkpoint(path, options)


def _evaluate_checkpoint(path: Path, options: TrainOptions) -> Evaluation:
    tensors, metadata = load_tensors(path)
    if metadata.get("format") not in {WEIGHTS_FORMAT, TRAIN_CHECKPOINT_FORMAT}:
        raise ArtifactError(f"{path} holds no trained network")
    genotype = genotype_from_dict(metadata["genotype"], source=str(path))
    recipe = recipe_from_checkpoint(metadata, path)
    env = train_context(recipe, _evaluation_options(options, metadata))
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

"""A training run's state and its files: the network, optimizer, EMA and scaler that
last.safetensors checkpoints every epoch, and the weights files (final, best) that
``evaluate`` rebuilds a network from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pdarts_cli.checkpoint import flatten_state, load_tensors, save_tensors, unflatten_state
from pdarts_cli.context import RunContext
from pdarts_cli.errors import ArtifactError
from pdarts_cli.genotype import Genotype, genotype_from_dict
from pdarts_cli.provenance import check_identity
from pdarts_cli.seeding import Stream, derive_seed
from pdarts_cli.training.metrics import TrainMetrics
from pdarts_cli.training.recipe import Recipe, validate_recipe
from pdarts_cli.training.setup import build_network

LAST_FILE = "last.safetensors"
FINAL_FILE = "final.safetensors"
BEST_FILE = "best.safetensors"
TRAIN_CHECKPOINT_FORMAT = "pdarts-train-checkpoint/1"
WEIGHTS_FORMAT = "pdarts-weights/1"
# What a weights file's network was chosen by (its metadata's "chosen_by").
CHOSEN_LAST_EPOCH: Final = "last_epoch"
CHOSEN_BY_VALID_TOP1: Final = "valid_top1"


@dataclass
class TrainState:
    model: nn.Module  # the bare network (DDP wraps it for the steps)
    optimizer: torch.optim.SGD
    ema: AveragedModel | None
    scaler: torch.amp.GradScaler | None
    next_epoch: int = 0
    best_valid_top1: float | None = None  # None: no epoch scored on a validation split yet
    history: list[TrainMetrics] = field(default_factory=list)
    identity: dict[str, Any] | None = None  # provenance.checkpoint_identity: checked on resume


def new_state(genotype: Genotype, recipe: Recipe, env: RunContext) -> TrainState:
    torch.manual_seed(derive_seed(recipe.seed, Stream.TRAIN_INIT))
    model = build_network(genotype, recipe, env.data.info).to(env.device)
    if env.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.base_lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    ema = None
    if recipe.ema_decay is not None:
        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True
        )
    scaler = torch.amp.GradScaler("cuda") if env.precision.needs_scaler else None
    return TrainState(model, optimizer, ema, scaler)


def scored_model(state: TrainState) -> nn.Module:
    """The network that is evaluated and saved as final/best: the EMA when there is one."""
    return state.ema.module if state.ema is not None else state.model


def record_best(state: TrainState, metrics: TrainMetrics) -> bool:
    """Whether ``metrics`` beats every earlier epoch on the validation split, noted in
    ``state``; the earliest of equal epochs stays best. The test split is never looked at: a
    network chosen on it would make the number reported on it optimistic."""
    top1 = metrics.valid_top1
    if top1 is None or (state.best_valid_top1 is not None and top1 <= state.best_valid_top1):
        return False
    state.best_valid_top1 = top1
    return True


def _checkpoint_metadata(genotype: Genotype, recipe: Recipe, env: RunContext) -> dict[str, Any]:
    info = env.data.info
    return {
        "genotype": genotype.to_dict(),
        "recipe": recipe.model_dump(mode="json"),
        "dataset": env.dataset,
        "num_classes": info.num_classes,
        "in_channels": info.channels,
        "image_size": info.image_size,
    }


def save_last(
    path: Path, state: TrainState, genotype: Genotype, recipe: Recipe, env: RunContext
) -> None:
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    if state.ema is not None:
        tensors |= {f"ema.{k}": v for k, v in state.ema.state_dict().items()}
    skeleton = flatten_state(state.optimizer.state_dict(), "optimizer", tensors)
    metadata = {
        "format": TRAIN_CHECKPOINT_FORMAT,
        "next_epoch": state.next_epoch,
        "best_valid_top1": state.best_valid_top1,
        "optimizer": skeleton,
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "history": [m.to_dict() for m in state.history],
        "identity": state.identity,
        **_checkpoint_metadata(genotype, recipe, env),
    }
    save_tensors(path, tensors, metadata)


def save_weights(
    path: Path,
    model: nn.Module,
    metrics: TrainMetrics,
    chosen_by: str,
    genotype: Genotype,
    recipe: Recipe,
    env: RunContext,
) -> None:
    """The weights of ``model`` alone, with the genotype, recipe and dataset shape that
    ``evaluate`` rebuilds the network from, and the epoch's scores for the record."""
    metadata = {
        "format": WEIGHTS_FORMAT,
        "chosen_by": chosen_by,
        "epoch": metrics.epoch,
        "valid_top1": metrics.valid_top1,
        "test_top1": metrics.test_top1,
        **_checkpoint_metadata(genotype, recipe, env),
    }
    save_tensors(path, model.state_dict(), metadata)


def write_missing_final(
    run_dir: Path, state: TrainState, genotype: Genotype, recipe: Recipe, env: RunContext
) -> None:
    """A run finished before final.safetensors existed gets it on ``--resume``: the weights in
    its last.safetensors are those of its last epoch."""
    path = run_dir / FINAL_FILE
    if state.next_epoch < recipe.epochs or not state.history or path.exists():
        return
    metrics = state.history[-1]
    save_weights(path, scored_model(state), metrics, CHOSEN_LAST_EPOCH, genotype, recipe, env)


def load_last(path: Path, state: TrainState, genotype: Genotype) -> None:
    """Restore ``state`` from last.safetensors; a checkpoint of another run (see
    ``state.identity``) or another genotype is refused."""
    tensors, metadata = load_tensors(path)
    written = metadata.get("format")
    if written != TRAIN_CHECKPOINT_FORMAT:
        family = TRAIN_CHECKPOINT_FORMAT.split("/")[0]
        if isinstance(written, str) and written.split("/")[0] == family:
            raise ArtifactError(
                f"{path} is in format {written}; this pdarts reads {TRAIN_CHECKPOINT_FORMAT}"
            )
        raise ArtifactError(f"{path} is not a training checkpoint")
    if state.identity is not None:
        check_identity(path, metadata.get("identity"), state.identity)
    saved = genotype_from_dict(metadata["genotype"], source=str(path))
    if saved != genotype:
        raise ArtifactError(f"{path} was trained with another genotype")
    _load_module(state.model, tensors, "model.", path)
    if state.ema is not None:
        _load_module(state.ema, tensors, "ema.", path)
    state.optimizer.load_state_dict(unflatten_state(metadata["optimizer"], tensors))
    if state.scaler is not None and metadata["scaler"] is not None:
        state.scaler.load_state_dict(metadata["scaler"])
    state.next_epoch = int(metadata["next_epoch"])
    # Older checkpoints hold "best_top1" instead, a test-split number: it chooses nothing now.
    best = metadata.get("best_valid_top1")
    state.best_valid_top1 = None if best is None else float(best)
    state.history = [TrainMetrics.from_dict(m) for m in metadata["history"]]


def _load_module(
    module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path
) -> None:
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ArtifactError(f"{path} does not fit this network: {first}") from exc


def recipe_from_checkpoint(metadata: dict[str, Any], path: Path) -> Recipe:
    return validate_recipe(metadata["recipe"], source=str(path))

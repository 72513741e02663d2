"""Training an evaluation network as the paper does (ALGORITHM.md, "Evaluation networks").

``train_one_epoch`` and ``evaluate`` in the manner of torchvision's reference scripts; the
schedules (lr, drop-path) are pure functions of the epoch. Every epoch reseeds the random
streams from (seed, epoch) and ends with an atomic ``last.safetensors``, so a resumed run
continues bit for bit on the CPU. Under torchrun every rank trains on its own shard and only
rank 0 writes.

Nothing is chosen on the test split: ``final.safetensors`` is the network after the last
epoch, the one the paper reports, and ``best.safetensors`` exists only when the recipe holds out
part of the training set (``valid_portion``) and is chosen on that validation split.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset

from pdarts_cli.checkpoint import flatten_state, load_tensors, save_tensors, unflatten_state
from pdarts_cli.data import (
    BatchSource,
    DatasetInfo,
    ImageDataset,
    ImageTensors,
    make_batch_source,
    split_dataset,
)
from pdarts_cli.device import (
    Precision,
    resolve_channels_last,
    resolve_precision,
    to_memory_format,
)
from pdarts_cli.distributed import Distributed, all_reduce_sum, broadcast_buffers
from pdarts_cli.errors import ArtifactError, ConfigError
from pdarts_cli.genotype import Genotype, genotype_from_dict
from pdarts_cli.runlog import METRICS_FILE, MetricsLog
from pdarts_cli.search.progressive import cosine_lr, derive_seed
from pdarts_cli.train.network import NetworkCIFAR, NetworkImageNet
from pdarts_cli.train.recipe import Recipe, validate_recipe

LAST_FILE = "last.safetensors"
FINAL_FILE = "final.safetensors"
BEST_FILE = "best.safetensors"
TRAIN_CHECKPOINT_FORMAT = "pdarts-train-checkpoint/1"
WEIGHTS_FORMAT = "pdarts-weights/1"
LINEAR_TAIL_EPOCHS = 5  # P-DARTS ImageNet code: the last 5 epochs decay 5x more slowly
AUXILIARY_MIN_SIZE = 5  # the auxiliary head pools 5x5 windows
_EPOCH, _DATA, _INIT, _VALID_SPLIT = 10, 11, 12, 13  # seed labels, apart from the search's
# What a weights file's network was chosen by (its metadata's "chosen_by").
CHOSEN_LAST_EPOCH: Final = "last_epoch"
CHOSEN_BY_VALID_TOP1: Final = "valid_top1"


def lr_at(recipe: Recipe, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based)."""
    base, epochs = recipe.base_lr, recipe.epochs
    if recipe.lr_schedule == "cosine":
        lr = cosine_lr(base, recipe.lr_min, epoch, epochs)
    elif epochs - epoch > LINEAR_TAIL_EPOCHS:
        lr = base * (epochs - LINEAR_TAIL_EPOCHS - epoch) / (epochs - LINEAR_TAIL_EPOCHS)
    else:
        lr = base * (epochs - epoch) / ((epochs - LINEAR_TAIL_EPOCHS) * LINEAR_TAIL_EPOCHS)
    if epoch < recipe.warmup_epochs and recipe.batch_size > recipe.warmup_above_batch:
        lr *= (epoch + 1) / recipe.warmup_epochs
    return lr


def drop_path_at(recipe: Recipe, epoch: int) -> float:
    """Drop-path probability ramped linearly from 0 (DARTS: p * epoch / epochs)."""
    return recipe.drop_path_prob * epoch / recipe.epochs


def auxiliary_input_size(recipe: Recipe, image_size: int) -> int:
    """Side of the feature map the auxiliary head sees (after the second reduction)."""
    stem_stride = 8 if recipe.network == "imagenet" else 1
    return math.ceil(image_size / stem_stride / 4)


def training_precision(recipe: Recipe, device: torch.device) -> Precision:
    """``auto``: bf16 autocast for ImageNet networks, float32 for CIFAR ones. Measured on an
    H200 (benchmarks/results/train-step-h200.jsonl): bf16 with channels_last trains the
    ImageNet network 25% faster at batch 256 and halves its memory, while at CIFAR size bf16
    was 5-30% slower."""
    mode = recipe.amp
    if mode == "auto":
        mode = "bf16" if recipe.network == "imagenet" else "off"
    return resolve_precision(mode, device)


def training_channels_last(recipe: Recipe, device: torch.device) -> bool:
    """``auto``: channels_last on CUDA, 10% faster for the CIFAR network in float32 on an
    H200 and part of the faster ImageNet setting."""
    if recipe.channels_last == "auto":
        return device.type == "cuda"
    return resolve_channels_last(recipe.channels_last, device)


def build_network(genotype: Genotype, recipe: Recipe, info: DatasetInfo) -> nn.Module:
    auxiliary = recipe.auxiliary_weight > 0
    if auxiliary and auxiliary_input_size(recipe, info.image_size) < AUXILIARY_MIN_SIZE:
        raise ConfigError(
            f"the auxiliary head needs {AUXILIARY_MIN_SIZE}x{AUXILIARY_MIN_SIZE} feature maps, "
            f"but {info.image_size}px images give "
            f"{auxiliary_input_size(recipe, info.image_size)}; set auxiliary_weight = 0"
        )
    network_class = NetworkImageNet if recipe.network == "imagenet" else NetworkCIFAR
    return network_class(
        genotype,
        channels=recipe.channels,
        num_classes=info.num_classes,
        layers=recipe.layers,
        auxiliary=auxiliary,
        in_channels=info.channels,
    )


@dataclass(frozen=True)
class SplitSizes:
    """Images in each split of a run: the training images that train, those of the training
    set held out for validation (0 without a validation split), and the test split."""

    train: int
    valid: int
    test: int


@dataclass(frozen=True)
class TrainMetrics:
    """One line of a training run's metrics.jsonl. ``train_*`` come from the images that
    train, ``valid_*`` from the part of the training set that ``valid_portion`` holds out
    (None without one), ``test_*`` from the dataset's test split; ``splits`` counts each."""

    epoch: int  # 1-based
    lr: float
    drop_path_prob: float
    train_loss: float
    train_top1: float
    valid_loss: float | None
    valid_top1: float | None
    test_loss: float
    test_top1: float
    test_top5: float
    seconds: float
    splits: SplitSizes | None  # None only in records from before the splits were recorded

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> TrainMetrics:
        """A record of ``to_dict``; those written before the validation split existed (no
        ``valid_*``, no ``splits``) load with None there."""
        splits = record.get("splits")
        return cls(
            **{
                **record,
                "valid_loss": record.get("valid_loss"),
                "valid_top1": record.get("valid_top1"),
                "splits": SplitSizes(**splits) if splits is not None else None,
            }
        )


@dataclass(frozen=True)
class Scores:
    """One epoch's evaluation of the scored network; ``valid_*`` None without a validation
    split."""

    valid_loss: float | None
    valid_top1: float | None
    test_loss: float
    test_top1: float
    test_top5: float


@dataclass(frozen=True)
class TrainSplit:
    """Training-set indices that train and those held out for validation; None for both
    trains on the whole training set and validates on nothing."""

    train: torch.Tensor | None
    valid: torch.Tensor | None


@dataclass(frozen=True)
class TrainProgress:
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    top1: float


class TrainObserver:
    """No-op hooks; the CLI renders them."""

    def note(self, text: str) -> None:
        """A one-line remark."""

    def batch_finished(self, progress: TrainProgress) -> None:
        pass

    def epoch_finished(self, metrics: TrainMetrics) -> None:
        pass


@dataclass
class TrainState:
    model: nn.Module  # the bare network (DDP wraps it for the steps)
    optimizer: torch.optim.SGD
    ema: AveragedModel | None
    scaler: torch.amp.GradScaler | None
    next_epoch: int = 0
    best_valid_top1: float | None = None  # None: no epoch scored on a validation split yet
    history: list[TrainMetrics] = field(default_factory=list)


@dataclass(frozen=True)
class TrainEnvironment:
    data: ImageDataset
    device: torch.device
    precision: Precision
    channels_last: bool
    dist: Distributed
    dataset: str


def new_state(genotype: Genotype, recipe: Recipe, env: TrainEnvironment) -> TrainState:
    torch.manual_seed(derive_seed(recipe.seed, _INIT))
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


def _size(data: ImageTensors | Dataset[tuple[object, int]]) -> int:
    return len(data)  # type: ignore[arg-type]  # map-style datasets are sized


def training_split(recipe: Recipe, data: ImageDataset) -> TrainSplit:
    """``valid_portion`` of every class of the training set held out for validation.

    The stratified shuffle is seeded from the recipe's seed alone, under a label of its own so
    that no other random stream changes: every rank of a DDP run, and a resumed run, hold out
    the same images.
    """
    if recipe.valid_portion == 0:
        return TrainSplit(None, None)
    seed = derive_seed(recipe.seed, _VALID_SPLIT)
    valid, train = split_dataset(data.train, recipe.valid_portion, "stratified", seed)
    if valid.numel() == 0 or train.numel() == 0:
        raise ConfigError(
            f"valid_portion {recipe.valid_portion} leaves {valid.numel()} validation and "
            f"{train.numel()} training images of {_size(data.train)}; choose another portion"
        )
    return TrainSplit(train, valid)


def split_sizes(split: TrainSplit, data: ImageDataset) -> SplitSizes:
    train = _size(data.train) if split.train is None else int(split.train.numel())
    valid = 0 if split.valid is None else int(split.valid.numel())
    return SplitSizes(train=train, valid=valid, test=_size(data.test))


def train_batches(
    recipe: Recipe, env: TrainEnvironment, indices: torch.Tensor | None = None
) -> BatchSource:
    """This rank's share of the training images (``indices`` of the training set; all of it
    when None)."""
    if recipe.batch_size % env.dist.world_size:
        raise ConfigError(
            f"batch size {recipe.batch_size} does not divide across {env.dist.world_size} ranks"
        )
    return make_batch_source(
        env.data.train,
        indices,
        recipe.batch_size // env.dist.world_size,
        env.data.info,
        env.device,
        train=True,
        crop_padding=recipe.crop_padding,
        horizontal_flip=recipe.horizontal_flip,
        cutout=recipe.cutout,
        num_workers=recipe.num_workers,
        rank=env.dist.rank,
        world_size=env.dist.world_size,
    )


def _scored_batches(
    recipe: Recipe,
    env: TrainEnvironment,
    split: ImageTensors | Dataset[tuple[object, int]],
    indices: torch.Tensor | None,
) -> BatchSource:
    """Batches to score, in order and unaugmented; every rank scores all of them, so the
    ranks agree."""
    return make_batch_source(
        split,
        indices,
        recipe.batch_size,
        env.data.info,
        env.device,
        train=False,
        num_workers=recipe.num_workers,
    )


def valid_batches(recipe: Recipe, env: TrainEnvironment, indices: torch.Tensor) -> BatchSource:
    """The held-out ``indices`` of the training set (the best epoch is chosen on them)."""
    return _scored_batches(recipe, env, env.data.train, indices)


def test_batches(recipe: Recipe, env: TrainEnvironment) -> BatchSource:
    """The whole test split."""
    return _scored_batches(recipe, env, env.data.test, None)


def train_one_epoch(
    state: TrainState,
    step_model: nn.Module,
    batches: BatchSource,
    recipe: Recipe,
    epoch: int,
    env: TrainEnvironment,
    observer: TrainObserver,
) -> tuple[float, float]:
    """One pass over this rank's shard; returns the global mean loss and top-1."""
    state.model.train()
    totals = torch.zeros(3, device=env.device, dtype=torch.float64)  # loss sum, correct, count
    steps = len(batches)
    report_every = 1 if env.device.type == "cpu" else 20
    seed = derive_seed(recipe.seed, _DATA, epoch)  # one shuffle for all ranks
    for step, (x, y) in enumerate(batches.epoch(seed), start=1):
        with env.precision.autocast():
            logits, logits_aux = step_model(to_memory_format(x, env.channels_last))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
        if logits_aux is not None:
            aux_loss = F.cross_entropy(
                logits_aux.float(), y, label_smoothing=recipe.label_smoothing
            )
            total = loss + recipe.auxiliary_weight * aux_loss
        else:
            total = loss
        state.optimizer.zero_grad(set_to_none=True)
        if state.scaler is not None:
            state.scaler.scale(total).backward()
            state.scaler.unscale_(state.optimizer)
        else:
            total.backward()
        nn.utils.clip_grad_norm_(state.model.parameters(), recipe.grad_clip_norm)
        if state.scaler is not None:
            state.scaler.step(state.optimizer)
            state.scaler.update()
        else:
            state.optimizer.step()
        if state.ema is not None:
            state.ema.update_parameters(state.model)
        n = y.shape[0]
        totals += torch.stack(
            [
                loss.detach().double() * n,
                (logits.argmax(1) == y).sum().double(),
                torch.tensor(n, device=env.device, dtype=torch.float64),
            ]
        )
        if step % report_every == 0 or step == steps:
            observer.batch_finished(
                TrainProgress(
                    epoch + 1,
                    recipe.epochs,
                    step,
                    steps,
                    float(totals[0] / totals[2]),
                    float(totals[1] / totals[2]),
                )
            )
    all_reduce_sum(totals, env.dist)
    return float(totals[0] / totals[2]), float(totals[1] / totals[2])


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: BatchSource, env: TrainEnvironment
) -> tuple[float, float, float]:
    """Mean loss, top-1 and top-5 on ``batches`` (every rank evaluates all of them)."""
    model.eval()
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    for x, y in batches.epoch(0):
        with env.precision.autocast():
            logits, _ = model(to_memory_format(x, env.channels_last))
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        k = min(5, logits.shape[1])
        ranked = logits.topk(k, dim=1).indices
        top1 += int((ranked[:, 0] == y).sum())
        top5 += int((ranked == y[:, None]).any(dim=1).sum())
        count += y.shape[0]
    return loss_sum / count, top1 / count, top5 / count


def score_epoch(
    model: nn.Module, valids: BatchSource | None, tests: BatchSource, env: TrainEnvironment
) -> Scores:
    """``model`` on the validation split (when there is one) and on the test split."""
    valid_loss: float | None = None
    valid_top1: float | None = None
    if valids is not None:
        valid_loss, valid_top1, _ = evaluate(model, valids, env)
    test_loss, test_top1, test_top5 = evaluate(model, tests, env)
    return Scores(valid_loss, valid_top1, test_loss, test_top1, test_top5)


def best_on_valid(history: list[TrainMetrics]) -> TrainMetrics | None:
    """The epoch best.safetensors holds: the earliest highest valid top-1 (None without a
    validation split), as ``record_best`` chose it epoch by epoch."""
    scored = [(m.valid_top1, m) for m in history if m.valid_top1 is not None]
    return max(scored, key=lambda pair: pair[0], default=(None, None))[1]


def record_best(state: TrainState, metrics: TrainMetrics) -> bool:
    """Whether ``metrics`` beats every earlier epoch on the validation split, noted in
    ``state``; the earliest of equal epochs stays best. The test split is never looked at: a
    network chosen on it would make the number reported on it optimistic."""
    top1 = metrics.valid_top1
    if top1 is None or (state.best_valid_top1 is not None and top1 <= state.best_valid_top1):
        return False
    state.best_valid_top1 = top1
    return True


def _checkpoint_metadata(
    genotype: Genotype, recipe: Recipe, env: TrainEnvironment
) -> dict[str, Any]:
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
    path: Path, state: TrainState, genotype: Genotype, recipe: Recipe, env: TrainEnvironment
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
    env: TrainEnvironment,
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


def load_last(path: Path, state: TrainState, genotype: Genotype) -> None:
    """Restore ``state`` from last.safetensors; a checkpoint of another genotype is refused."""
    tensors, metadata = load_tensors(path)
    if metadata.get("format") != TRAIN_CHECKPOINT_FORMAT:
        raise ArtifactError(f"{path} is not a training checkpoint")
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


def fit(
    genotype: Genotype,
    recipe: Recipe,
    env: TrainEnvironment,
    run_dir: Path,
    state: TrainState,
    observer: TrainObserver,
) -> TrainState:
    """Train from ``state.next_epoch`` to the end of the recipe.

    Every epoch scores the scored network (the EMA when there is one) on the validation split,
    if any, and on the test split. The last epoch's network becomes final.safetensors; the one
    best on the validation split becomes best.safetensors. Both hold the scored network, so
    ``evaluate`` reproduces the test top-1 recorded for their epoch.
    """
    step_model: nn.Module = state.model
    if env.dist.enabled:
        ids = [env.device.index] if env.device.type == "cuda" else None
        step_model = DistributedDataParallel(state.model, device_ids=ids)
    split = training_split(recipe, env.data)
    sizes = split_sizes(split, env.data)
    batches, tests = train_batches(recipe, env, split.train), test_batches(recipe, env)
    valids = None if split.valid is None else valid_batches(recipe, env, split.valid)
    if valids is not None:
        observer.note(
            f"validation: {sizes.valid:,} of {sizes.train + sizes.valid:,} training images "
            f"held out (stratified); {BEST_FILE} is chosen on them"
        )
    log = MetricsLog(run_dir / METRICS_FILE)
    for epoch in range(state.next_epoch, recipe.epochs):
        started = time.perf_counter()
        lr = lr_at(recipe, epoch)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        drop_prob = drop_path_at(recipe, epoch)
        state.model.drop_path_prob = drop_prob  # type: ignore[assignment]
        if state.ema is not None:
            state.ema.module.drop_path_prob = drop_prob  # type: ignore[assignment]
        torch.manual_seed(derive_seed(recipe.seed, _EPOCH, epoch, env.dist.rank))
        train_loss, train_top1 = train_one_epoch(
            state, step_model, batches, recipe, epoch, env, observer
        )
        broadcast_buffers(state.model, env.dist)
        if state.ema is not None:
            broadcast_buffers(state.ema, env.dist)
        scored = scored_model(state)
        scores = score_epoch(scored, valids, tests, env)
        metrics = TrainMetrics(
            epoch=epoch + 1,
            lr=lr,
            drop_path_prob=drop_prob,
            train_loss=train_loss,
            train_top1=train_top1,
            valid_loss=scores.valid_loss,
            valid_top1=scores.valid_top1,
            test_loss=scores.test_loss,
            test_top1=scores.test_top1,
            test_top5=scores.test_top5,
            seconds=time.perf_counter() - started,
            splits=sizes,
        )
        state.next_epoch = epoch + 1
        state.history.append(metrics)
        improved = record_best(state, metrics)  # on every rank: they score the same images
        if env.dist.is_main:
            if improved:
                save_weights(
                    run_dir / BEST_FILE,
                    scored,
                    metrics,
                    CHOSEN_BY_VALID_TOP1,
                    genotype,
                    recipe,
                    env,
                )
            if state.next_epoch == recipe.epochs:  # before last.safetensors says "finished"
                save_weights(
                    run_dir / FINAL_FILE, scored, metrics, CHOSEN_LAST_EPOCH, genotype, recipe, env
                )
            log.append(metrics.to_dict())
            save_last(run_dir / LAST_FILE, state, genotype, recipe, env)
        observer.epoch_finished(metrics)
    if env.dist.is_main:
        _write_missing_final(run_dir, state, genotype, recipe, env)
    return state


def _write_missing_final(
    run_dir: Path, state: TrainState, genotype: Genotype, recipe: Recipe, env: TrainEnvironment
) -> None:
    """A run finished before final.safetensors existed gets it on ``--resume``: the weights in
    its last.safetensors are those of its last epoch."""
    path = run_dir / FINAL_FILE
    if state.next_epoch < recipe.epochs or not state.history or path.exists():
        return
    metrics = state.history[-1]
    save_weights(path, scored_model(state), metrics, CHOSEN_LAST_EPOCH, genotype, recipe, env)


def recipe_from_checkpoint(metadata: dict[str, Any], path: Path) -> Recipe:
    return validate_recipe(metadata["recipe"], source=str(path))

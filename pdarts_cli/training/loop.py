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

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pdarts_cli.context import RunContext
from pdarts_cli.data import BatchSource
from pdarts_cli.device import to_memory_format
from pdarts_cli.distributed import all_reduce_sum, broadcast_buffers
from pdarts_cli.errors import NonFiniteError
from pdarts_cli.genotype import Genotype
from pdarts_cli.runlog import METRICS_FILE, MetricsLog
from pdarts_cli.seeding import Stream, derive_seed
from pdarts_cli.training.batches import (
    split_sizes,
    test_batches,
    train_batches,
    training_split,
    valid_batches,
)
from pdarts_cli.training.metrics import Scores, TrainMetrics, TrainObserver, TrainProgress
from pdarts_cli.training.recipe import Recipe, drop_path_at, lr_at
from pdarts_cli.training.state import (
    BEST_FILE,
    CHOSEN_BY_VALID_TOP1,
    CHOSEN_LAST_EPOCH,
    FINAL_FILE,
    LAST_FILE,
    TrainState,
    record_best,
    save_last,
    save_weights,
    scored_model,
    write_missing_final,
)


def _optimizer_step(state: TrainState, total: torch.Tensor, recipe: Recipe) -> bool:
    """Backward, gradient clipping and the SGD step (through the scaler under fp16), then the
    EMA's update. Without a scaler a gradient that is not finite is not applied and False is
    returned (under DDP every rank sees the same, all-reduced, gradient)."""
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(total).backward()
        state.scaler.unscale_(state.optimizer)
    else:
        total.backward()
    norm = nn.utils.clip_grad_norm_(state.model.parameters(), recipe.grad_clip_norm)
    if state.scaler is None and not bool(torch.isfinite(norm)):
        state.optimizer.zero_grad(set_to_none=True)
        return False
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    if state.ema is not None:
        state.ema.update_parameters(state.model)
    return True


def _not_finite(epoch: int, step: int, loss: torch.Tensor) -> NonFiniteError:
    return NonFiniteError(
        f"epoch {epoch + 1}, step {step}: the gradient is not finite (the loss is "
        f"{float(loss.detach()):.4g}); the run stopped and its last checkpoint is kept. Lower "
        'the learning rate (lr), set amp = "off", or set nonfinite = "skip" in the recipe to '
        "skip such steps"
    )


def train_one_epoch(
    state: TrainState,
    step_model: nn.Module,
    batches: BatchSource,
    recipe: Recipe,
    epoch: int,
    env: RunContext,
    observer: TrainObserver,
) -> tuple[float, float]:
    """One pass over this rank's shard; returns the global mean loss and top-1."""
    state.model.train()
    totals = torch.zeros(3, device=env.device, dtype=torch.float64)  # loss sum, correct, count
    steps = len(batches)
    seed = derive_seed(recipe.seed, Stream.TRAIN_DATA, epoch)  # one shuffle for all ranks
    skipped = 0
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
        if not _optimizer_step(state, total, recipe):
            if recipe.nonfinite == "stop":
                raise _not_finite(epoch, step, total)
            skipped += 1
        n = y.shape[0]
        totals += torch.stack(
            [
                loss.detach().double() * n,
                (logits.argmax(1) == y).sum().double(),
                torch.tensor(n, device=env.device, dtype=torch.float64),
            ]
        )
        if step % env.report_every == 0 or step == steps:
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
    if skipped:
        observer.note(f"epoch {epoch + 1}: {skipped} step(s) skipped for a non-finite gradient")
    all_reduce_sum(totals, env.dist)
    return float(totals[0] / totals[2]), float(totals[1] / totals[2])


@torch.no_grad()
def evaluate(model: nn.Module, batches: BatchSource, env: RunContext) -> tuple[float, float, float]:
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
    model: nn.Module, valids: BatchSource | None, tests: BatchSource, env: RunContext
) -> Scores:
    """``model`` on the validation split (when there is one) and on the test split."""
    valid_loss: float | None = None
    valid_top1: float | None = None
    if valids is not None:
        valid_loss, valid_top1, _ = evaluate(model, valids, env)
    test_loss, test_top1, test_top5 = evaluate(model, tests, env)
    return Scores(valid_loss, valid_top1, test_loss, test_top1, test_top5)


def _set_rates(state: TrainState, recipe: Recipe, epoch: int) -> tuple[float, float]:
    """The epoch's learning rate and drop-path probability, set on the optimizer and on the
    networks; returned for the record."""
    lr = lr_at(recipe, epoch)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    drop_prob = drop_path_at(recipe, epoch)
    state.model.drop_path_prob = drop_prob  # type: ignore[assignment]
    if state.ema is not None:
        state.ema.module.drop_path_prob = drop_prob  # type: ignore[assignment]
    return lr, drop_prob


def _write_epoch(
    run_dir: Path,
    log: MetricsLog,
    state: TrainState,
    scored: nn.Module,
    improved: bool,
    genotype: Genotype,
    recipe: Recipe,
    env: RunContext,
) -> None:
    """The files of the epoch just recorded in ``state``: best.safetensors when it
    ``improved`` on the validation split, final.safetensors after the last epoch, its line of
    metrics.jsonl, then last.safetensors."""
    metrics = state.history[-1]
    if improved:
        save_weights(
            run_dir / BEST_FILE, scored, metrics, CHOSEN_BY_VALID_TOP1, genotype, recipe, env
        )
    if state.next_epoch == recipe.epochs:  # before last.safetensors says "finished"
        save_weights(
            run_dir / FINAL_FILE, scored, metrics, CHOSEN_LAST_EPOCH, genotype, recipe, env
        )
    log.append(metrics.to_dict())
    save_last(run_dir / LAST_FILE, state, genotype, recipe, env)


def fit(
    genotype: Genotype,
    recipe: Recipe,
    env: RunContext,
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
        lr, drop_prob = _set_rates(state, recipe, epoch)
        torch.manual_seed(derive_seed(recipe.seed, Stream.TRAIN_EPOCH, epoch, env.dist.rank))
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
            _write_epoch(run_dir, log, state, scored, improved, genotype, recipe, env)
        observer.epoch_finished(metrics)
    if env.dist.is_main:
        write_missing_final(run_dir, state, genotype, recipe, env)
    return state

"""The P-DARTS stage loop (ALGORITHM.md, "Progressive stages").

Each stage builds a fresh supernet, trains the weights alone for the warm-up epochs, then
alternates, for every weight batch, an alpha step on the next batch of the alpha half and a
weight step. Between stages the lowest-weighted candidates of every edge are switched off.
Every epoch ends with an atomic checkpoint; all randomness is reseeded from (seed, stage,
epoch), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdarts_cli.arch import ArchWeights, EdgeWeights, arch_json, read_arch
from pdarts_cli.checkpoint import (
    flatten_state,
    load_tensors,
    save_tensors,
    unflatten_state,
)
from pdarts_cli.data import (
    BatchSource,
    ImageDataset,
    make_batch_source,
    resolve_split,
    split_dataset,
)
from pdarts_cli.device import Precision, to_memory_format
from pdarts_cli.errors import RunDirError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import Genotype, genotype_json, read_genotype_file
from pdarts_cli.registry import op_registry
from pdarts_cli.runlog import (
    CHECKPOINT_FILE,
    FINAL_ARCH_FILE,
    GENOTYPE_FILE,
    METRICS_FILE,
    UNREFINED_GENOTYPE_FILE,
    MetricsLog,
    stage_arch_file,
    stage_weights_file,
)
from pdarts_cli.schedule import Schedule, SkipDropoutDecay, StageSchedule
from pdarts_cli.search.architect import first_order_grads, second_order_grads
from pdarts_cli.search.derive import (
    approximate_search_space,
    chosen_op,
    derive_genotype,
    edge_probabilities,
)
from pdarts_cli.search.events import (
    BatchProgress,
    EdgeReport,
    EpochMetrics,
    SearchObserver,
    SearchResult,
    StageReport,
    StageStart,
)
from pdarts_cli.search.supernet import CellCandidates, SearchNetwork

CHECKPOINT_FORMAT = "pdarts-search-checkpoint/1"

# (schedule, 0-based stage, normal candidates, reduce candidates) -> schedule with the stage's
# batch size chosen (``--batch-size auto``).
BatchChooser = Callable[[Schedule, int, CellCandidates, CellCandidates], Schedule]

# Labels that keep the random streams of one run apart (see derive_seed).
_INIT, _EPOCH, _WEIGHT_DATA, _ALPHA_DATA, _SPLIT = range(5)


def derive_seed(seed: int, *labels: int) -> int:
    """An independent 63-bit seed for one purpose of one run (numpy's SeedSequence)."""
    state = np.random.SeedSequence(entropy=seed, spawn_key=labels).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def cosine_lr(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    """Cosine annealing stepped per epoch: epoch 0 uses ``lr`` and the floor lies at ``epochs``.

    This is what the authors' ``scheduler.step()`` at the start of every epoch computes with
    the PyTorch versions their code targets (<= 1.0, where construction leaves last_epoch -1).
    """
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def skip_dropout_p(
    rate: float, epoch: int, epochs: int, warmup_epochs: int, decay: SkipDropoutDecay
) -> float:
    """The skip-connect dropout rate of epoch ``epoch`` (0-based) of a stage."""
    if decay.kind == "constant":
        return rate
    if decay.kind == "linear" or epoch < warmup_epochs:
        return rate * (epochs - epoch - 1) / epochs
    return rate * math.exp(-decay.factor * (epoch - warmup_epochs))


def evaluates_epoch(epoch: int, epochs: int, valid_last_epochs: int) -> bool:
    """Whether 0-based ``epoch`` of a stage ends with an evaluation on the alpha half.

    The authors' loop, ``if epochs - epoch < 5`` over ``range(epochs)``, evaluates the last 4
    epochs; the default ``valid_last_epochs = 4`` is that.
    """
    return epochs - epoch <= valid_last_epochs


@dataclass
class _Stage:
    """The live objects of one stage."""

    index: int  # 0-based
    config: StageSchedule
    network: SearchNetwork
    weight_optimizer: torch.optim.SGD
    alpha_optimizer: torch.optim.Adam
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler] | None
    weights: list[nn.Parameter]  # the network's weights, listed once for every step to use


@dataclass(frozen=True)
class SearchEnvironment:
    """What a search runs on: data, device and numerics. Not part of the schedule."""

    data: ImageDataset
    device: torch.device
    precision: Precision
    channels_last: bool
    dataset: str


@dataclass(frozen=True)
class ResumePoint:
    stage: int  # 0-based stage in progress
    next_epoch: int  # 0-based epoch to run next
    normal: CellCandidates
    reduce: CellCandidates
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    complete: bool = False


def _all_candidates(schedule: Schedule) -> CellCandidates:
    return tuple(tuple(schedule.candidate_ops) for _ in range(schedule.edges_per_cell))


def _build_stage(
    schedule: Schedule,
    index: int,
    normal: CellCandidates,
    reduce: CellCandidates,
    env: SearchEnvironment,
) -> _Stage:
    config = schedule.stages[index]
    torch.manual_seed(derive_seed(schedule.seed, _INIT, index))
    ops = {name for cell in (normal, reduce) for edge in cell for name in edge}
    factories = {name: op_registry().get(name) for name in sorted(ops)}
    network = SearchNetwork(
        channels=config.channels,
        num_classes=env.data.info.num_classes,
        cells=config.cells,
        in_channels=env.data.info.channels,
        normal_candidates=normal,
        reduce_candidates=reduce,
        factories=factories,
        steps=schedule.steps,
        stem_multiplier=schedule.stem_multiplier,
        alpha_init_scale=schedule.alphas.init_scale,
        checkpoint_cells=schedule.checkpoint_cells,
    ).to(env.device)
    if env.channels_last:
        network = network.to(memory_format=torch.channels_last)
    w, a = schedule.weights, schedule.alphas
    weights = network.weight_parameters()
    weight_optimizer = torch.optim.SGD(
        weights, lr=w.lr, momentum=w.momentum, weight_decay=w.weight_decay
    )
    alpha_optimizer = torch.optim.Adam(
        network.arch_parameters(),
        lr=a.lr * config.lr_scale,
        betas=a.betas,
        weight_decay=a.weight_decay,
    )
    scalers = None
    if env.precision.needs_scaler:
        scalers = (torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda"))
    return _Stage(index, config, network, weight_optimizer, alpha_optimizer, scalers, weights)


def _stage_state(stage: _Stage) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"model.{k}": v for k, v in stage.network.state_dict().items()}
    skeleton = {
        "weights": flatten_state(stage.weight_optimizer.state_dict(), "weights", tensors),
        "alphas": flatten_state(stage.alpha_optimizer.state_dict(), "alphas", tensors),
        "scalers": [s.state_dict() for s in stage.scalers] if stage.scalers else None,
    }
    return tensors, skeleton


def _restore_stage(stage: _Stage, point: ResumePoint) -> None:
    model = {k[len("model.") :]: v for k, v in point.tensors.items() if k.startswith("model.")}
    stage.network.load_state_dict(model)
    state = point.metadata["state"]
    stage.weight_optimizer.load_state_dict(unflatten_state(state["weights"], point.tensors))
    stage.alpha_optimizer.load_state_dict(unflatten_state(state["alphas"], point.tensors))
    if stage.scalers and state["scalers"]:
        for scaler, saved in zip(stage.scalers, state["scalers"]):
            scaler.load_state_dict(saved)


def _save_checkpoint(
    run_dir: Path,
    stage_index: int,
    next_epoch: int,
    normal: CellCandidates,
    reduce: CellCandidates,
    stage: _Stage | None,
    complete: bool = False,
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, Any] | None = None
    if stage is not None and next_epoch > 0:
        tensors, state = _stage_state(stage)
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "stage": stage_index,
        "next_epoch": next_epoch,
        "candidates": {"normal": [list(e) for e in normal], "reduce": [list(e) for e in reduce]},
        "complete": complete,
        "state": state,
    }
    save_tensors(run_dir / CHECKPOINT_FILE, tensors, metadata)


def read_resume_point(run_dir: Path) -> ResumePoint | None:
    """Where a killed run stopped; None when it never reached its first checkpoint."""
    path = run_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    tensors, metadata = load_tensors(path)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path} is not a search checkpoint")
    candidates = metadata["candidates"]
    return ResumePoint(
        stage=metadata["stage"],
        next_epoch=metadata["next_epoch"],
        normal=tuple(tuple(e) for e in candidates["normal"]),
        reduce=tuple(tuple(e) for e in candidates["reduce"]),
        tensors=tensors,
        metadata=metadata,
        complete=bool(metadata["complete"]),
    )


def finished_result(run_dir: Path) -> SearchResult:
    """The result a complete run left on disk (its time: the sum of its epochs')."""
    genotype = read_genotype_file(run_dir / GENOTYPE_FILE)
    unrefined_path = run_dir / UNREFINED_GENOTYPE_FILE
    unrefined = read_genotype_file(unrefined_path) if unrefined_path.is_file() else genotype
    seconds = sum(r["seconds"] for r in MetricsLog(run_dir / METRICS_FILE).read())
    arch = read_arch(run_dir / FINAL_ARCH_FILE)
    return SearchResult(run_dir, genotype, arch, seconds, unrefined=unrefined)


def _apply_grads(
    params: list[nn.Parameter],
    grads: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    clip: float,
    scaler: torch.amp.GradScaler | None,
) -> None:
    for p, g in zip(params, grads):
        p.grad = g
    if scaler is not None:
        scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(params, clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _endless(source: BatchSource, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The alpha half, restarted with a fresh shuffle whenever it runs out (authors' code)."""
    for restart in itertools.count():
        yield from source.epoch(derive_seed(seed, restart))


class _Running:
    """Loss and accuracy sums kept on the device; read only when reported."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.count = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.loss += loss.detach() * n
        self.correct += (logits.argmax(dim=1) == y).sum()
        self.count += n

    def means(self) -> tuple[float, float]:
        if self.count == 0:
            return math.nan, math.nan
        return float(self.loss) / self.count, int(self.correct) / self.count


Batch = tuple[torch.Tensor, torch.Tensor]


def search_step(
    schedule: Schedule,
    stage: _Stage,
    batch: Batch,
    alpha_batch: Batch | None,
    env: SearchEnvironment,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """One search iteration: an alpha step on ``alpha_batch`` (joint epochs), then a weight
    step on ``batch``. Returns the weight loss and logits, and the alpha loss and logits."""
    network = stage.network
    weight_scaler, alpha_scaler = stage.scalers or (None, None)
    x, y = to_memory_format(batch[0], env.channels_last), batch[1]
    alpha_result = None
    if alpha_batch is not None:
        xa, ya = to_memory_format(alpha_batch[0], env.channels_last), alpha_batch[1]
        if schedule.alphas.order == "second":
            grads, loss_a, logits_a = second_order_grads(
                network, x, y, xa, ya, stage.weight_optimizer, env.precision
            )
            scaler = None  # the unrolled step runs unscaled
        else:
            grads, loss_a, logits_a = first_order_grads(
                network, xa, ya, env.precision, alpha_scaler
            )
            scaler = alpha_scaler
        clip = schedule.alphas.grad_clip_norm
        _apply_grads(network.arch_parameters(), grads, stage.alpha_optimizer, clip, scaler)
        alpha_result = (loss_a, logits_a)
    with env.precision.autocast():
        logits = network(x)
    loss = F.cross_entropy(logits.float(), y)
    scaled = weight_scaler.scale(loss) if weight_scaler is not None else loss
    grads_w = list(torch.autograd.grad(scaled, stage.weights))
    clip = schedule.weights.grad_clip_norm
    _apply_grads(stage.weights, grads_w, stage.weight_optimizer, clip, weight_scaler)
    return loss.detach(), logits.detach(), alpha_result


def _train_epoch(
    schedule: Schedule,
    stage: _Stage,
    epoch: int,
    weight_batches: BatchSource,
    alpha_batches: BatchSource,
    env: SearchEnvironment,
    observer: SearchObserver,
) -> tuple[_Running, _Running | None]:
    network, config = stage.network, stage.config
    joint = epoch >= config.warmup_epochs
    network.train()
    train, alpha_stats = _Running(env.device), (_Running(env.device) if joint else None)
    alpha_stream = _endless(
        alpha_batches, derive_seed(schedule.seed, _ALPHA_DATA, stage.index, epoch)
    )
    steps = len(weight_batches)
    report_every = 1 if env.device.type == "cpu" else 20
    data_seed = derive_seed(schedule.seed, _WEIGHT_DATA, stage.index, epoch)
    for step, (x, y) in enumerate(weight_batches.epoch(data_seed), start=1):
        alpha_batch = next(alpha_stream) if alpha_stats is not None else None
        loss, logits, alpha_result = search_step(schedule, stage, (x, y), alpha_batch, env)
        if alpha_stats is not None and alpha_batch is not None and alpha_result is not None:
            alpha_stats.add(*alpha_result, alpha_batch[1])
        train.add(loss, logits, y)
        if step % report_every == 0 or step == steps:
            mean_loss, accuracy = train.means()
            progress = BatchProgress(
                stage.index + 1, epoch + 1, config.epochs, step, steps, mean_loss, accuracy, joint
            )
            observer.batch_finished(progress)
    return train, alpha_stats


@torch.no_grad()
def _evaluate(network: SearchNetwork, batches: BatchSource, env: SearchEnvironment) -> _Running:
    network.eval()
    stats = _Running(env.device)
    for x, y in batches.epoch(0):
        with env.precision.autocast():
            logits = network(to_memory_format(x, env.channels_last))
        stats.add(F.cross_entropy(logits.float(), y), logits, y)
    network.train()
    return stats


def _stage_report(arch: ArchWeights, keep: int | None) -> StageReport:
    """Per edge: probabilities and what survives (next stage's candidates, or the final op)."""

    def cell(edges: tuple[EdgeWeights, ...]) -> tuple[EdgeReport, ...]:
        reports = []
        if keep is not None:
            survivors = approximate_search_space(edges, keep)
        for i, edge in enumerate(edges):
            probs = edge_probabilities(edge.alpha)
            if keep is None:
                kept: tuple[str, ...] = (edge.ops[chosen_op(edge.ops, probs)],)
            else:
                kept = survivors[i]
            reports.append(EdgeReport(edge.ops, tuple(probs), kept))
        return tuple(reports)

    stage = int(arch.extra["stage"])
    return StageReport(stage, keep is None, cell(arch.normal), cell(arch.reduce), arch)


@dataclass(frozen=True)
class _Batches:
    weights: BatchSource
    alphas: BatchSource
    valid: BatchSource


def weight_alpha_split(
    schedule: Schedule, data: ImageDataset, dataset: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training indices that tune the weights and those that tune the alphas.

    ``schedule.data.split`` decides how (``auto`` resolved against ``dataset``); the stratified
    shuffle is seeded from the schedule's seed alone, so a resumed run gets the same halves.
    """
    method = resolve_split(schedule.data.split, dataset)
    seed = derive_seed(schedule.seed, _SPLIT)
    return split_dataset(data.train, schedule.data.train_portion, method, seed)


def _stage_batches(schedule: Schedule, config: StageSchedule, env: SearchEnvironment) -> _Batches:
    """The weight half and the alpha half (augmented), and the alpha half for validation."""
    train = env.data.train
    weight_idx, alpha_idx = weight_alpha_split(schedule, env.data, env.dataset)

    def source(indices: torch.Tensor, augmented: bool) -> BatchSource:
        return make_batch_source(
            train,
            indices,
            config.batch_size,
            env.data.info,
            env.device,
            train=augmented,
            crop_padding=schedule.data.crop_padding,
            horizontal_flip=schedule.data.horizontal_flip,
            num_workers=schedule.data.num_workers,
        )

    return _Batches(source(weight_idx, True), source(alpha_idx, True), source(alpha_idx, False))


def _run_stage(
    schedule: Schedule,
    stage: _Stage,
    first_epoch: int,
    run_dir: Path,
    normal: CellCandidates,
    reduce: CellCandidates,
    env: SearchEnvironment,
    observer: SearchObserver,
) -> list[EpochMetrics]:
    config = stage.config
    batches = _stage_batches(schedule, config, env)
    observer.stage_started(
        StageStart(
            stage=stage.index + 1,
            stages=len(schedule.stages),
            cells=config.cells,
            ops_per_edge=len(normal[0]),
            epochs=config.epochs,
            first_epoch=first_epoch + 1,
            batches_per_epoch=len(batches.weights),
            batch_size=config.batch_size,
            parameters=sum(p.numel() for p in stage.weights),
        )
    )
    metrics_log = MetricsLog(run_dir / METRICS_FILE)
    history = []
    for epoch in range(first_epoch, config.epochs):
        started = time.perf_counter()
        w, scale = schedule.weights, config.lr_scale
        lr = cosine_lr(w.lr * scale, w.lr_min * scale, epoch, config.epochs)
        for group in stage.weight_optimizer.param_groups:
            group["lr"] = lr
        p = skip_dropout_p(
            config.skip_dropout_rate,
            epoch,
            config.epochs,
            config.warmup_epochs,
            schedule.skip_dropout_decay,
        )
        stage.network.set_skip_dropout(p)
        torch.manual_seed(derive_seed(schedule.seed, _EPOCH, stage.index, epoch))
        train, alpha = _train_epoch(
            schedule, stage, epoch, batches.weights, batches.alphas, env, observer
        )
        valid = None
        if evaluates_epoch(epoch, config.epochs, schedule.valid_last_epochs):
            valid = _evaluate(stage.network, batches.valid, env)
        train_loss, train_acc = train.means()
        alpha_loss, alpha_acc = alpha.means() if alpha else (None, None)
        valid_loss, valid_acc = valid.means() if valid else (None, None)
        metrics = EpochMetrics(
            stage=stage.index + 1,
            epoch=epoch + 1,
            lr=lr,
            skip_dropout_p=p,
            train_loss=train_loss,
            train_accuracy=train_acc,
            alpha_loss=alpha_loss,
            alpha_accuracy=alpha_acc,
            valid_loss=valid_loss,
            valid_accuracy=valid_acc,
            seconds=time.perf_counter() - started,
            alphas=stage.network.alpha_probabilities(),
        )
        metrics_log.append(metrics.to_dict())
        _save_checkpoint(run_dir, stage.index, epoch + 1, normal, reduce, stage)
        observer.epoch_finished(metrics)
        history.append(metrics)
    return history


def _write_stage_outputs(run_dir: Path, stage: _Stage, env: SearchEnvironment) -> ArchWeights:
    number = stage.index + 1
    arch = stage.network.arch_weights(
        {"stage": number, "cells_in_network": stage.config.cells, "dataset": env.dataset}
    )
    atomic_write_text(run_dir / stage_arch_file(number), arch_json(arch))
    save_tensors(
        run_dir / stage_weights_file(number),
        stage.network.state_dict(),
        {"format": "pdarts-stage-weights/1", "stage": number, "arch": arch.to_dict()},
    )
    return arch


def _write_genotypes(
    run_dir: Path, arch: ArchWeights, schedule: Schedule, dataset: str
) -> tuple[Genotype, Genotype]:
    """genotype.json (refined to at most ``schedule.max_skip`` normal skip-connects, the
    P-DARTS architecture) and genotype-unrefined.json (the plain derivation)."""
    meta = {"dataset": dataset, "schedule": schedule.name, "source": FINAL_ARCH_FILE}
    unrefined = dataclasses.replace(derive_genotype(arch), meta={**meta, "max_skip": None})
    refined = dataclasses.replace(
        derive_genotype(arch, schedule.max_skip), meta={**meta, "max_skip": schedule.max_skip}
    )
    atomic_write_text(run_dir / UNREFINED_GENOTYPE_FILE, genotype_json(unrefined))
    atomic_write_text(run_dir / GENOTYPE_FILE, genotype_json(refined))
    return refined, unrefined


def run_stages(
    schedule: Schedule,
    env: SearchEnvironment,
    run_dir: Path,
    observer: SearchObserver,
    resume: ResumePoint | None = None,
    choose_batch: BatchChooser | None = None,
) -> SearchResult:
    """Run (or continue) every stage and write the final architecture and genotypes.

    ``choose_batch`` (``--batch-size auto``) may set a stage's batch size before it starts,
    knowing the candidates the stage will hold.
    """
    started = time.perf_counter()
    normal = reduce = _all_candidates(schedule)
    first_stage = 0
    if resume is not None:
        first_stage, normal, reduce = resume.stage, resume.normal, resume.reduce
        observer.note(f"resuming at stage {resume.stage + 1}, epoch {resume.next_epoch + 1}")
        MetricsLog(run_dir / METRICS_FILE).keep(
            lambda r: (r["stage"] - 1, r["epoch"] - 1) < (resume.stage, resume.next_epoch)
        )
    history: list[EpochMetrics] = []
    arch: ArchWeights | None = None
    for index in range(first_stage, len(schedule.stages)):
        restoring = resume is not None and index == resume.stage and resume.next_epoch > 0
        if choose_batch is not None and not restoring:
            schedule = choose_batch(schedule, index, normal, reduce)
        stage = _build_stage(schedule, index, normal, reduce, env)
        first_epoch = 0
        if resume is not None and restoring:
            _restore_stage(stage, resume)
            first_epoch = resume.next_epoch
        history += _run_stage(schedule, stage, first_epoch, run_dir, normal, reduce, env, observer)
        arch = _write_stage_outputs(run_dir, stage, env)
        last = index == len(schedule.stages) - 1
        keep = None if last else schedule.stages[index + 1].ops_per_edge
        report = _stage_report(arch, keep)
        observer.stage_finished(report)
        if keep is not None:  # the report's survivors are the next stage's candidates
            normal = tuple(edge.kept for edge in report.normal)
            reduce = tuple(edge.kept for edge in report.reduce)
            _save_checkpoint(run_dir, index + 1, 0, normal, reduce, None)
    assert arch is not None  # the schedule has at least one stage
    atomic_write_text(run_dir / FINAL_ARCH_FILE, arch_json(arch))
    genotype, unrefined = _write_genotypes(run_dir, arch, schedule, env.dataset)
    _save_checkpoint(run_dir, len(schedule.stages), 0, normal, reduce, None, complete=True)
    seconds = time.perf_counter() - started
    result = SearchResult(run_dir, genotype, arch, seconds, history, unrefined=unrefined)
    observer.search_finished(result)
    return result

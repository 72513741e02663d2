"""The P-DARTS stage loop (ALGORITHM.md, "Progressive stages").

Each stage builds a fresh supernet, trains the weights alone for the warm-up epochs, then
alternates, for every weight batch, an alpha step on the next batch of the alpha half and a
weight step. Between stages the lowest-weighted candidates of every edge are switched off
(search space approximation). Every epoch ends with an atomic checkpoint; all randomness is
reseeded from (seed, stage, epoch), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from pdarts_cli.arch import ArchWeights, EdgeWeights
from pdarts_cli.context import RunContext
from pdarts_cli.distributed import broadcast_tensors, from_main
from pdarts_cli.genotype import Genotype
from pdarts_cli.rates import cosine_lr, skip_dropout_p
from pdarts_cli.runlog import FINAL_ARCH_FILE
from pdarts_cli.schedule import Schedule
from pdarts_cli.searching.data import stage_batches
from pdarts_cli.searching.derive import (
    approximate_search_space,
    chosen_op,
    derive_genotype,
    edge_probabilities,
)
from pdarts_cli.searching.diagnostics import chosen_ops, diagnose, skip_warning
from pdarts_cli.searching.epoch import evaluate_network, evaluates_epoch, train_epoch
from pdarts_cli.searching.events import (
    EdgeReport,
    EpochMetrics,
    SearchObserver,
    SearchResult,
    StageReport,
    StageStart,
)
from pdarts_cli.searching.state import ResumePoint, RunFiles, restore_stage
from pdarts_cli.searching.step import Stage, all_candidates, build_stage
from pdarts_cli.searching.supernet import CellCandidates
from pdarts_cli.seeding import Stream, derive_seed

# (schedule, 0-based stage, normal candidates, reduce candidates) -> schedule with the stage's
# batch size chosen (``--batch-size auto``).
BatchChooser = Callable[[Schedule, int, CellCandidates, CellCandidates], Schedule]


def set_epoch_rates(schedule: Schedule, stage: Stage, epoch: int) -> tuple[float, float]:
    """The weight lr and skip-connect dropout of epoch ``epoch`` (0-based), set and returned."""
    config, w = stage.config, schedule.weights
    lr = cosine_lr(w.lr * config.lr_scale, w.lr_min * config.lr_scale, epoch, config.epochs)
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
    return lr, p


def run_stage(
    schedule: Schedule,
    stage: Stage,
    first_epoch: int,
    files: RunFiles,
    ctx: RunContext,
    observer: SearchObserver,
) -> list[EpochMetrics]:
    """Epochs ``first_epoch`` .. end of ``stage``, each ending in a checkpoint."""
    config, normal, reduce = (
        stage.config,
        stage.network.normal_candidates,
        stage.network.reduce_candidates,
    )
    batches = stage_batches(schedule, config, ctx)
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
    history = []
    # Diagnostics compare each epoch's chosen ops with the previous epoch's of this stage; a
    # stage resumed mid-way holds that epoch's alphas, so its lines match an unbroken run's.
    chosen = chosen_ops(stage.network.arch_weights()) if first_epoch > 0 else None
    for epoch in range(first_epoch, config.epochs):
        started = time.perf_counter()
        lr, p = set_epoch_rates(schedule, stage, epoch)
        torch.manual_seed(derive_seed(schedule.seed, Stream.SEARCH_EPOCH, stage.index, epoch))
        train, alpha = train_epoch(
            schedule, stage, epoch, batches.weights, batches.alphas, ctx, observer
        )
        valid = None
        if evaluates_epoch(epoch, config.epochs, schedule.valid_last_epochs):
            valid = evaluate_network(stage.network, batches.valid, ctx)
        train_loss, train_acc = train.means()
        alpha_loss, alpha_acc = alpha.means() if alpha else (None, None)
        valid_loss, valid_acc = valid.means() if valid else (None, None)
        found = diagnose(stage.network.arch_weights(), chosen)
        chosen = found.chosen
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
            genotype=found.genotype.to_darts(),
            skip_connects=found.skip_connects,
            edge_entropy=found.edge_entropy,
            changed_edges=found.changed_edges,
            max_skip=schedule.max_skip,
        )
        files.append_metrics(metrics)
        files.checkpoint(stage.index, epoch + 1, normal, reduce, stage)
        observer.epoch_finished(metrics)
        normal_skips = found.skip_connects["normal"]
        warning = skip_warning(
            stage.index + 1, epoch + 1, normal_skips, schedule.max_skip, joint=alpha is not None
        )
        if warning is not None:
            observer.warning(warning)
        history.append(metrics)
    return history


def stage_report(arch: ArchWeights, keep: int | None) -> StageReport:
    """Per edge: probabilities and what survives (next stage's candidates, or the final op
    when ``keep`` is None)."""

    def cell(edges: tuple[EdgeWeights, ...]) -> tuple[EdgeReport, ...]:
        survivors = approximate_search_space(edges, keep) if keep is not None else None
        reports = []
        for i, edge in enumerate(edges):
            probs = edge_probabilities(edge.alpha)
            if survivors is None:
                kept: tuple[str, ...] = (edge.ops[chosen_op(edge.ops, probs)],)
            else:
                kept = survivors[i]
            reports.append(EdgeReport(edge.ops, tuple(probs), kept))
        return tuple(reports)

    stage = int(arch.extra["stage"])
    return StageReport(stage, keep is None, cell(arch.normal), cell(arch.reduce), arch)


def derive_genotypes(
    arch: ArchWeights, schedule: Schedule, dataset: str
) -> tuple[Genotype, Genotype]:
    """The genotype refined to at most ``schedule.max_skip`` normal skip-connects (the P-DARTS
    architecture, genotype.json) and the plain derivation (genotype-unrefined.json)."""
    meta = {"dataset": dataset, "schedule": schedule.name, "source": FINAL_ARCH_FILE}
    unrefined = dataclasses.replace(derive_genotype(arch), meta={**meta, "max_skip": None})
    refined = dataclasses.replace(
        derive_genotype(arch, schedule.max_skip), meta={**meta, "max_skip": schedule.max_skip}
    )
    return refined, unrefined


def run_stages(
    schedule: Schedule,
    ctx: RunContext,
    files: RunFiles,
    observer: SearchObserver,
    resume: ResumePoint | None = None,
    choose_batch: BatchChooser | None = None,
) -> SearchResult:
    """Run (or continue) every stage; write the final architecture and genotypes.

    ``choose_batch`` (``--batch-size auto``) may set a stage's batch size before it starts,
    knowing the candidates the stage will hold.
    """
    started = time.perf_counter()
    normal = reduce = all_candidates(schedule)
    first_stage = 0
    if resume is not None:
        first_stage, normal, reduce = resume.stage, resume.normal, resume.reduce
        observer.note(f"resuming at stage {resume.stage + 1}, epoch {resume.next_epoch + 1}")
        files.drop_metrics_from(resume.stage, resume.next_epoch)
    history: list[EpochMetrics] = []
    arch: ArchWeights | None = None
    for index in range(first_stage, len(schedule.stages)):
        restoring = resume is not None and index == resume.stage and resume.mid_stage
        if choose_batch is not None and not restoring:
            schedule = choose_batch(schedule, index, normal, reduce)
        stage = build_stage(schedule, index, normal, reduce, ctx)
        first_epoch = 0
        if resume is not None and restoring:
            restore_stage(stage, resume)
            first_epoch = resume.next_epoch
        history += run_stage(schedule, stage, first_epoch, files, ctx, observer)
        broadcast_tensors(stage.network.arch_parameters(), ctx.dist)  # rank 0's alphas decide
        arch = stage.network.arch_weights(
            {"stage": index + 1, "cells_in_network": stage.config.cells, "dataset": ctx.dataset}
        )
        files.stage_outputs(stage, arch)
        keep = schedule.stages[index + 1].ops_per_edge if index + 1 < len(schedule.stages) else None
        if keep is not None:
            normal, reduce = from_main(
                (
                    approximate_search_space(arch.normal, keep),
                    approximate_search_space(arch.reduce, keep),
                ),
                ctx.dist,
            )
        observer.stage_finished(stage_report(arch, keep))
        if keep is not None:
            files.checkpoint(index + 1, 0, normal, reduce, None)
    assert arch is not None  # the schedule has at least one stage
    genotype, unrefined = from_main(derive_genotypes(arch, schedule, ctx.dataset), ctx.dist)
    files.results(arch, genotype, unrefined)
    files.checkpoint(len(schedule.stages), 0, normal, reduce, None, complete=True)
    seconds = time.perf_counter() - started
    result = SearchResult(files.run_dir, genotype, arch, seconds, history, unrefined=unrefined)
    observer.search_finished(result)
    return result

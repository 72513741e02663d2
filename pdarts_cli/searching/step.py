"""One stage's live objects and one search iteration (ALGORITHM.md, "Search step").

``build_stage`` makes a stage's supernet and optimizers from the schedule, seeded from
(seed, stage); ``search_step`` is one iteration: an alpha step on the alpha batch (joint
epochs only), then a weight step on the weight batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pdarts_cli.context import RunContext
from pdarts_cli.device import to_memory_format
from pdarts_cli.distributed import average_gradients
from pdarts_cli.registry import op_registry
from pdarts_cli.schedule import Schedule, StageSchedule
from pdarts_cli.searching.architect import first_order_grads, second_order_grads, shard_loss
from pdarts_cli.searching.supernet import CellCandidates, SearchNetwork
from pdarts_cli.seeding import Stream, derive_seed

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Stage:
    """The live objects of one stage."""

    index: int  # 0-based
    config: StageSchedule
    network: SearchNetwork
    weight_optimizer: torch.optim.SGD
    alpha_optimizer: torch.optim.Adam
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler] | None
    weights: list[nn.Parameter]  # the network's weights, listed once for every step to use
    skipped_steps: int = 0  # alpha or weight steps left out for a non-finite gradient


def all_candidates(schedule: Schedule) -> CellCandidates:
    """Every edge of a cell with all of the schedule's candidate ops: the first stage's."""
    return tuple(tuple(schedule.candidate_ops) for _ in range(schedule.edges_per_cell))


def build_stage(
    schedule: Schedule,
    index: int,
    normal: CellCandidates,
    reduce: CellCandidates,
    ctx: RunContext,
) -> Stage:
    """Stage ``index`` (0-based) with these candidates, its weights and alphas drawn from the
    stage's own seed."""
    config = schedule.stages[index]
    torch.manual_seed(derive_seed(schedule.seed, Stream.SEARCH_INIT, index))
    ops = {name for cell in (normal, reduce) for edge in cell for name in edge}
    factories = {name: op_registry().get(name) for name in sorted(ops)}
    network = SearchNetwork(
        channels=config.channels,
        num_classes=ctx.data.info.num_classes,
        cells=config.cells,
        in_channels=ctx.data.info.channels,
        normal_candidates=normal,
        reduce_candidates=reduce,
        factories=factories,
        steps=schedule.steps,
        stem_multiplier=schedule.stem_multiplier,
        alpha_init_scale=schedule.alphas.init_scale,
        checkpoint_cells=schedule.checkpoint_cells,
    )
    if ctx.dist.enabled:
        network.shard(ctx.dist.rank, ctx.dist.world_size)
    network = network.to(ctx.device)
    if ctx.channels_last:
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
    if ctx.precision.needs_scaler:
        scalers = (torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda"))
    return Stage(index, config, network, weight_optimizer, alpha_optimizer, scalers, weights)


class NonFiniteStepError(Exception):
    """A step's gradient is NaN or infinite; the caller knows where in the run it was."""

    def __init__(self, which: str, loss: float) -> None:
        super().__init__(f"the {which} gradient is not finite (the {which} loss is {loss:.4g})")
        self.which, self.loss = which, loss


def apply_grads(
    params: list[nn.Parameter],
    grads: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    clip: float,
    scaler: torch.amp.GradScaler | None,
) -> bool:
    """Set ``grads``, clip their norm to ``clip`` (unscaled first under a scaler), step.

    Without a scaler a gradient that is not finite is not applied and False is returned
    (under fp16 the scaler skips such steps itself, as it is meant to)."""
    for p, g in zip(params, grads):
        p.grad = g
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = nn.utils.clip_grad_norm_(params, clip)
    if scaler is None and not bool(torch.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        return False
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return True


def _applied(done: bool, which: str, loss: torch.Tensor, schedule: Schedule, stage: Stage) -> None:
    """A step left out for a non-finite gradient stops the run unless the schedule skips."""
    if done:
        return
    if schedule.nonfinite == "stop":
        raise NonFiniteStepError(which, float(loss.detach()))
    stage.skipped_steps += 1


def alpha_step(
    schedule: Schedule, stage: Stage, batch: Batch, alpha_batch: Batch, ctx: RunContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adam step of the alphas on ``alpha_batch`` (second order: through a virtual weight
    step on ``batch``), both already in the network's memory format. Returns the alpha loss
    and logits."""
    network = stage.network
    alpha_scaler = stage.scalers[1] if stage.scalers else None
    (x, y), (xa, ya) = batch, alpha_batch
    if schedule.alphas.order == "second":
        grads, loss, logits = second_order_grads(
            network, x, y, xa, ya, stage.weight_optimizer, ctx.precision, ctx.dist
        )
        alpha_scaler = None  # the unrolled step runs unscaled
    else:
        grads, loss, logits = first_order_grads(
            network, xa, ya, ctx.precision, alpha_scaler, ctx.dist
        )
    clip = schedule.alphas.grad_clip_norm
    done = apply_grads(network.arch_parameters(), grads, stage.alpha_optimizer, clip, alpha_scaler)
    _applied(done, "alpha", loss, schedule, stage)
    return loss, logits


def search_step(
    schedule: Schedule,
    stage: Stage,
    batch: Batch,
    alpha_batch: Batch | None,
    ctx: RunContext,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """One search iteration: an alpha step on ``alpha_batch`` (joint epochs), then a weight
    step on ``batch``. Returns the weight loss and logits, and the alpha loss and logits."""
    x, y = to_memory_format(batch[0], ctx.channels_last), batch[1]
    alpha_result = None
    if alpha_batch is not None:
        xa = to_memory_format(alpha_batch[0], ctx.channels_last)
        alpha_result = alpha_step(schedule, stage, (x, y), (xa, alpha_batch[1]), ctx)
    weight_scaler = stage.scalers[0] if stage.scalers else None
    with ctx.precision.autocast():
        logits = stage.network(x)
    loss = F.cross_entropy(logits.float(), y)
    target = shard_loss(loss, y.shape[0], ctx.dist)
    scaled = weight_scaler.scale(target) if weight_scaler is not None else target
    grads = average_gradients(torch.autograd.grad(scaled, stage.weights), ctx.dist)
    clip = schedule.weights.grad_clip_norm
    done = apply_grads(stage.weights, grads, stage.weight_optimizer, clip, weight_scaler)
    _applied(done, "weight", loss, schedule, stage)
    return loss.detach(), logits.detach(), alpha_result

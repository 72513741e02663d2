"""One epoch of a stage: its search steps, and the evaluation on the alpha half."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from pdarts_cli.context import RunContext
from pdarts_cli.data import BatchSource
from pdarts_cli.device import to_memory_format
from pdarts_cli.distributed import Distributed, all_reduce_sum
from pdarts_cli.errors import NonFiniteError
from pdarts_cli.schedule import Schedule
from pdarts_cli.searching.events import BatchProgress, SearchObserver
from pdarts_cli.searching.step import Batch, NonFiniteStepError, Stage, search_step
from pdarts_cli.searching.supernet import SearchNetwork
from pdarts_cli.seeding import Stream, derive_seed


class RunningMeans:
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

    def reduce(self, setup: Distributed) -> RunningMeans:
        """The sums of every rank (in place): the global batch's means."""
        if setup.enabled:
            totals = torch.stack([self.loss.double(), self.correct.double()])
            totals = torch.cat([totals, totals.new_tensor([float(self.count)])])
            all_reduce_sum(totals, setup)
            self.loss = totals[0].to(self.loss.dtype)
            self.correct = totals[1].round().long()
            self.count = int(totals[2])
        return self

    def means(self) -> tuple[float, float]:
        if self.count == 0:
            return math.nan, math.nan
        return float(self.loss) / self.count, int(self.correct) / self.count


def evaluates_epoch(epoch: int, epochs: int, valid_last_epochs: int) -> bool:
    """Whether 0-based ``epoch`` of a stage ends with an evaluation on the alpha half.

    The authors' loop, ``if epochs - epoch < 5`` over ``range(epochs)``, evaluates the last 4
    epochs; the default ``valid_last_epochs = 4`` is that.
    """
    return epochs - epoch <= valid_last_epochs


def endless(source: BatchSource, seed: int) -> Iterator[Batch]:
    """The alpha half, restarted with a fresh shuffle whenever it runs out (authors' code)."""
    for restart in itertools.count():
        yield from source.epoch(derive_seed(seed, restart))


def train_epoch(
    schedule: Schedule,
    stage: Stage,
    epoch: int,
    weight_batches: BatchSource,
    alpha_batches: BatchSource,
    ctx: RunContext,
    observer: SearchObserver,
) -> tuple[RunningMeans, RunningMeans | None]:
    """Every weight batch of epoch ``epoch`` (0-based), each after an alpha step once the
    warm-up is over. Returns the weight-step and alpha-step means (None during warm-up)."""
    network, config = stage.network, stage.config
    joint = epoch >= config.warmup_epochs
    network.train()
    train, alpha_stats = RunningMeans(ctx.device), (RunningMeans(ctx.device) if joint else None)
    alpha_seed = derive_seed(schedule.seed, Stream.SEARCH_ALPHA_DATA, stage.index, epoch)
    alpha_stream = endless(alpha_batches, alpha_seed)
    steps = len(weight_batches)
    skipped_before = stage.skipped_steps
    data_seed = derive_seed(schedule.seed, Stream.SEARCH_WEIGHT_DATA, stage.index, epoch)
    for step, (x, y) in enumerate(weight_batches.epoch(data_seed), start=1):
        alpha_batch = next(alpha_stream) if alpha_stats is not None else None
        try:
            loss, logits, alpha_result = search_step(schedule, stage, (x, y), alpha_batch, ctx)
        except NonFiniteStepError as exc:
            raise NonFiniteError(
                f"stage {stage.index + 1}, epoch {epoch + 1}, step {step}: {exc}; the run "
                "stopped and its last checkpoint is kept. Lower the learning rate "
                '(weights.lr, alphas.lr), set amp = "off", or set nonfinite = "skip" in the '
                "schedule to skip such steps"
            ) from None
        if alpha_stats is not None and alpha_batch is not None and alpha_result is not None:
            alpha_stats.add(*alpha_result, alpha_batch[1])
        train.add(loss, logits, y)
        if step % ctx.report_every == 0 or step == steps:
            mean_loss, accuracy = train.means()
            progress = BatchProgress(
                stage.index + 1, epoch + 1, config.epochs, step, steps, mean_loss, accuracy, joint
            )
            observer.batch_finished(progress)
    skipped = stage.skipped_steps - skipped_before
    if skipped:
        observer.note(
            f"stage {stage.index + 1}, epoch {epoch + 1}: {skipped} step(s) skipped for a "
            "non-finite gradient"
        )
    return train.reduce(ctx.dist), (
        alpha_stats.reduce(ctx.dist) if alpha_stats is not None else None
    )


@torch.no_grad()
def evaluate_network(network: SearchNetwork, batches: BatchSource, ctx: RunContext) -> RunningMeans:
    """Loss and accuracy of ``network`` in eval mode on ``batches``; leaves it training."""
    network.eval()
    stats = RunningMeans(ctx.device)
    for x, y in batches.epoch(0):
        with ctx.precision.autocast():
            logits = network(to_memory_format(x, ctx.channels_last))
        stats.add(F.cross_entropy(logits.float(), y), logits, y)
    network.train()
    return stats.reduce(ctx.dist)

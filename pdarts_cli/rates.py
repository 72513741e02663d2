"""Per-epoch rates as pure functions of the epoch: learning rates, drop-path and
skip-connect dropout. The search and training loops set them at the start of every epoch, so
a resumed run needs no scheduler state."""

from __future__ import annotations

import math
from typing import Protocol


class SkipDropoutDecay(Protocol):
    """How skip-connect dropout decays within a stage (the schedule's ``skip_dropout_decay``)."""

    @property
    def kind(self) -> str: ...

    @property
    def factor(self) -> float: ...


def cosine_lr(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    """Cosine annealing stepped per epoch: epoch 0 uses ``lr`` and the floor lies at ``epochs``.

    This is what the authors' ``scheduler.step()`` at the start of every epoch computes with
    the PyTorch versions their code targets (<= 1.0, where construction leaves last_epoch -1).
    """
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def linear_tail_lr(lr: float, epoch: int, epochs: int, tail_epochs: int) -> float:
    """Linear decay to 0 at ``epochs - tail_epochs``, where a tail of ``tail_epochs`` epochs
    decays ``tail_epochs`` times more slowly (the P-DARTS ImageNet code)."""
    if epochs - epoch > tail_epochs:
        return lr * (epochs - tail_epochs - epoch) / (epochs - tail_epochs)
    return lr * (epochs - epoch) / ((epochs - tail_epochs) * tail_epochs)


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """Linear warm-up: epoch ``e`` (0-based) of the first ``warmup_epochs`` runs at
    ``(e + 1) / warmup_epochs`` of the rate, later epochs at all of it."""
    return (epoch + 1) / warmup_epochs if epoch < warmup_epochs else 1.0


def drop_path_p(rate: float, epoch: int, epochs: int) -> float:
    """Drop-path probability ramped linearly from 0 (DARTS: p * epoch / epochs)."""
    return rate * epoch / epochs


def skip_dropout_p(
    rate: float,
    epoch: int,
    epochs: int,
    warmup_epochs: int,
    decay: SkipDropoutDecay,
) -> float:
    """The skip-connect dropout rate of epoch ``epoch`` (0-based) of a stage.

    ``pdarts-code``: ``r*(E-e-1)/E`` during the warm-up, then ``r*exp(-factor*(e-W))`` (the
    authors' code); ``linear``: ``r*(E-e-1)/E`` throughout; ``constant``: ``r``.
    """
    if decay.kind == "constant":
        return rate
    if decay.kind == "linear" or epoch < warmup_epochs:
        return rate * (epochs - epoch - 1) / epochs
    return rate * math.exp(-decay.factor * (epoch - warmup_epochs))

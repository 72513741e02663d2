"""Architecture (alpha) steps: first order as P-DARTS, second order as DARTS's unrolled step.

The first-order step runs its forward pass with the weights frozen and asks autograd for the
alphas' gradients only, so no weight gradients are built and thrown away (not even by the
supernet's own autograd functions, which see that the weights need none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.func import functional_call

from pdarts_cli.device import Precision
from pdarts_cli.distributed import (
    SINGLE_PROCESS,
    Distributed,
    average_gradients,
    share_of_batch,
)
from pdarts_cli.searching.supernet import SearchNetwork

FINITE_DIFFERENCE_SCALE = 0.01  # DARTS: epsilon = 0.01 / ||grad_w' L_val||


def _loss(
    network: SearchNetwork, x: torch.Tensor, y: torch.Tensor, precision: Precision
) -> tuple[torch.Tensor, torch.Tensor]:
    with precision.autocast():
        logits = network(x)
    return F.cross_entropy(logits.float(), y), logits.detach()


def shard_loss(loss: torch.Tensor, samples: int, setup: Distributed) -> torch.Tensor:
    """The loss whose gradient, averaged over ranks, is the global batch's (see
    ``distributed.share_of_batch``); ``loss`` itself in one process."""
    return weighted(loss, share_of_batch(samples, loss.device, setup))


def weighted(loss: torch.Tensor, share: float) -> torch.Tensor:
    """``loss * share``, or ``loss`` itself for a whole share (one process, even shards)."""
    return loss if share == 1.0 else loss * share


@contextlib.contextmanager
def frozen(params: list[torch.nn.Parameter]) -> Iterator[None]:
    """``params`` need no gradient while inside (autograd records none for them)."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def first_order_grads(
    network: SearchNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: Precision,
    scaler: torch.amp.GradScaler | None = None,
    setup: Distributed = SINGLE_PROCESS,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Alpha gradients of the loss on an alpha batch, at the current weights (scaled by
    ``scaler`` under fp16; averaged over the ranks of ``setup``)."""
    # frozen through the backward pass too: checkpointed cells rerun their forward there
    with frozen(network.weight_parameters()):
        loss, logits = _loss(network, x, y, precision)
        target = shard_loss(loss, y.shape[0], setup)
        target = scaler.scale(target) if scaler is not None else target
        grads = torch.autograd.grad(target, network.arch_parameters())
    return average_gradients(grads, setup), loss.detach(), logits


def _functional_loss(
    network: SearchNetwork,
    weights: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    precision: Precision,
) -> tuple[torch.Tensor, torch.Tensor]:
    with precision.autocast():
        logits = functional_call(network, {**weights, **buffers}, (x,))
    return F.cross_entropy(logits.float(), y), logits.detach()


def second_order_grads(
    network: SearchNetwork,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_alpha: torch.Tensor,
    y_alpha: torch.Tensor,
    weight_optimizer: torch.optim.SGD,
    precision: Precision,
    setup: Distributed = SINGLE_PROCESS,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """DARTS's unrolled alpha gradient with one virtual SGD step and a finite-difference
    Hessian-vector product (always unscaled; every gradient averaged over the ranks of
    ``setup`` before it is used)."""
    group = weight_optimizer.param_groups[0]
    lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
    named = {n: p for n, p in network.named_parameters() if not n.startswith("alphas_")}
    alphas = {n: p for n, p in network.named_parameters() if n.startswith("alphas_")}
    buffers = {n: b.clone() for n, b in network.named_buffers()}

    train_share = share_of_batch(y_train.shape[0], x_train.device, setup)
    alpha_share = share_of_batch(y_alpha.shape[0], x_alpha.device, setup)
    train_loss, _ = _loss(network, x_train, y_train, precision)
    weight_grads = average_gradients(
        torch.autograd.grad(weighted(train_loss, train_share), list(named.values())), setup
    )
    virtual = {}
    for (name, p), g in zip(named.items(), weight_grads):
        state = weight_optimizer.state.get(p, {})
        buf = state.get("momentum_buffer")
        step = g + decay * p.detach() + (momentum * buf if buf is not None else 0.0)
        virtual[name] = (p.detach() - lr * step).requires_grad_(True)

    alpha_loss, logits = _functional_loss(
        network, {**virtual, **alphas}, buffers, x_alpha, y_alpha, precision
    )
    grads = average_gradients(
        torch.autograd.grad(
            weighted(alpha_loss, alpha_share), [*alphas.values(), *virtual.values()]
        ),
        setup,
    )
    alpha_grads, vector = grads[: len(alphas)], grads[len(alphas) :]
    radius = FINITE_DIFFERENCE_SCALE / torch.cat([v.flatten() for v in vector]).norm()

    def alpha_grads_at(sign: float) -> list[torch.Tensor]:
        shifted = {n: p.detach() + sign * radius * v for (n, p), v in zip(named.items(), vector)}
        loss, _ = _functional_loss(network, {**shifted, **alphas}, {}, x_train, y_train, precision)
        return average_gradients(
            torch.autograd.grad(weighted(loss, train_share), list(alphas.values())), setup
        )

    plus, minus = alpha_grads_at(1.0), alpha_grads_at(-1.0)
    result = [g - lr * (gp - gm) / (2 * radius) for g, gp, gm in zip(alpha_grads, plus, minus)]
    return result, alpha_loss.detach(), logits

"""How a mixed op runs its candidates with less memory and time, computing the same function.

A search edge computes ``sum_o w_o * o(x)``. Run naively, each candidate applies its own ReLU
to ``x``, and autograd keeps every candidate's output for the gradient of its weight ``w_o``.
A ``CandidatePlan`` splits a candidate into the ReLU it starts with (computed once per edge),
its body, and the affine-free BatchNorm it ends with; ``scaled_batch_norm`` then computes
``w * BN(z)`` as one BatchNorm whose scale is ``w``, which keeps only ``z`` and hands back
``w``'s gradient from its own backward pass. After a pooling body (parameter-free and
deterministic) it keeps only the edge's input, which stays alive anyway, and reruns the
pooling in the backward pass.

Values and gradients agree with the plain modules to float rounding (tests/test_fused.py).
Used for float32 on the CPU, where it was measured (benchmarks/README.md, "Search step");
other devices and mixed precision take the plain path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pdarts_cli.searching.depthwise import run_conv

_RECOMPUTABLE = (nn.MaxPool2d, nn.AvgPool2d, nn.Identity)


@dataclass(frozen=True)
class CandidatePlan:
    """One candidate as ``norm(body(relu(x) if relu_input else x))``."""

    index: int  # the candidate's position on the edge (its alpha)
    relu_input: bool
    body: tuple[nn.Module, ...]
    norm: nn.BatchNorm2d | None

    @property
    def recomputable(self) -> bool:
        """Whether the body can be rerun in the backward pass instead of keeping its output."""
        return all(isinstance(m, _RECOMPUTABLE) for m in self.body)


def _flatten(module: nn.Module) -> list[nn.Module]:
    """The modules a plain ``nn.Sequential`` (nested or not) runs, in order."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [leaf for child in module for leaf in _flatten(child)]
    return [module]


def _is_search_norm(module: nn.Module) -> bool:
    return type(module) is nn.BatchNorm2d and not module.affine and module.track_running_stats


def plan_candidate(index: int, op: nn.Module) -> CandidatePlan:
    """Split ``op`` into its leading ReLU, body and trailing affine-free BatchNorm."""
    modules = _flatten(op)
    relu_input = isinstance(modules[0], nn.ReLU)
    if relu_input:
        modules = modules[1:]
    norm = None
    if modules and _is_search_norm(modules[-1]):
        norm = modules.pop()
    return CandidatePlan(index, relu_input, tuple(modules), norm)  # type: ignore[arg-type]


def _run(body: Sequence[nn.Module], x: torch.Tensor, fast: bool = False) -> torch.Tensor:
    """The modules of ``body`` in turn; ``fast``: by the CPU's faster paths, the same
    function (an in-place ReLU after a BatchNorm, ``depthwise.run_conv``)."""
    previous: nn.Module | None = None
    for module in body:
        if fast and isinstance(module, nn.ReLU) and isinstance(previous, nn.BatchNorm2d):
            x = F.relu_(x)  # nothing keeps a BatchNorm's output: rectify it where it is
        elif fast and isinstance(module, nn.Conv2d):
            x = run_conv(module, x)
        else:
            x = module(x)
        previous = module
    return x


def run_body(
    plan: CandidatePlan, x: torch.Tensor, norm: bool = True, fast: bool = False
) -> torch.Tensor:
    """The candidate after its leading ReLU: its body (``fast``: see ``_run``), then its
    BatchNorm when ``norm``."""
    x = _run(plan.body, x, fast)
    if norm and plan.norm is not None:
        x = plan.norm(x)
    return x


def running_average_factor(norm: nn.BatchNorm2d) -> float:
    """The running-statistics factor ``nn.BatchNorm2d`` uses, counting this batch."""
    tracked = norm.num_batches_tracked
    if tracked is not None:
        tracked.add_(1)
    if norm.momentum is None:
        assert tracked is not None, "a cumulative average counts its batches"
        return 1.0 / float(tracked)
    return norm.momentum


def _per_channel(weight: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The edge weight as a BatchNorm scale: ``weight * BN(z)`` is BN with this ``gamma``."""
    return weight.reshape(1).expand(z.shape[1]).contiguous()


class _PooledBatchNorm(torch.autograd.Function):
    """``BN(pool(x))`` with scale ``gamma``, keeping ``x`` (alive anyway: it is the edge's
    input) rather than the pooled output and max-pooling's indices; the pooling reruns in the
    backward pass."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        gamma: torch.Tensor,
        pool: Callable[[torch.Tensor], torch.Tensor],
        norm: nn.BatchNorm2d,
    ) -> torch.Tensor:
        factor = running_average_factor(norm)
        y, mean, invstd = torch.native_batch_norm(
            pool(x), gamma, None, norm.running_mean, norm.running_var, True, factor, norm.eps
        )
        ctx.pool, ctx.eps = pool, norm.eps
        ctx.save_for_backward(x, gamma, mean, invstd)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, gamma, mean, invstd = ctx.saved_tensors
        with torch.enable_grad():
            source = x.detach().requires_grad_(True)
            pooled = ctx.pool(source)
        pooled_grad, gamma_grad, _ = torch.ops.aten.native_batch_norm_backward(
            grad, pooled.detach(), gamma, None, None, mean, invstd, True, ctx.eps,
            [True, ctx.needs_input_grad[1], False],
        )  # fmt: skip
        (x_grad,) = torch.autograd.grad(pooled, source, pooled_grad)
        return x_grad, gamma_grad, None, None


def scaled_batch_norm(
    x: torch.Tensor, weight: torch.Tensor, norm: nn.BatchNorm2d, body: Sequence[nn.Module] = ()
) -> torch.Tensor:
    """``weight * norm(body(x))`` for a training-mode affine-free BatchNorm, as one BatchNorm
    whose scale is ``weight``. A ``body`` (parameter-free and deterministic) reruns in the
    backward pass instead of keeping its output."""
    gamma = _per_channel(weight, x)
    if body:
        out: torch.Tensor = _PooledBatchNorm.apply(x, gamma, lambda t: _run(body, t), norm)
        return out
    factor = running_average_factor(norm)
    return F.batch_norm(x, norm.running_mean, norm.running_var, gamma, None, True, factor, norm.eps)


class _GradientInLayout(torch.autograd.Function):
    """Identity whose backward pass hands on the gradient in channels_last."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def gradient_in_layout(x: torch.Tensor) -> torch.Tensor:
    """``x``, whose gradient comes back in ``x``'s channels_last layout. Global pooling's
    backward pass returns a contiguous (NCHW) gradient, and concatenation's strided slices;
    handed on as they are, the kernels of the backward pass mix layouts, which costs up to
    ten times more on the CPU."""
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not x.is_contiguous() and torch.is_grad_enabled():
        out: torch.Tensor = _GradientInLayout.apply(x)
        return out
    return x


def fusable(x: torch.Tensor) -> bool:
    """Whether ``scaled_batch_norm`` applies to candidates of input ``x`` (whose BatchNorm
    trains): float32 on the CPU, with autograd on."""
    return (
        torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def shared_relu(x: torch.Tensor, plans: Sequence[CandidatePlan]) -> torch.Tensor | None:
    """``relu(x)`` once for every candidate that starts with one."""
    return F.relu(x) if any(plan.relu_input for plan in plans) else None

"""The search network over a global batch split across the ranks of a distributed search.

A search step's BatchNorms train on batch statistics, and its skip-connect dropout draws one
mask element per activation. Split over ranks naively, both would depend on the split: each
rank would normalise with its own shard's mean and variance, and draw its own masks. Here
every rank computes what one process with the whole batch computes (the rule the README
documents):

- ``GlobalBatchNorm2d`` normalises with the mean and variance of the global batch and
  updates the running statistics with them. One all-reduce carries both moments, taken
  about the running mean (the same on every rank, and near the batch mean, so that the
  variance loses no precision to cancellation); the backward pass all-reduces the two sums
  the input gradient needs. Eval mode uses the running statistics, as ``nn.BatchNorm2d``
  does. That is two small collectives per BatchNorm and step where one process needs none:
  cheap over NCCL, about a millisecond each over gloo on a busy CPU.
- ``global_dropout`` draws the mask of the global batch, from the seed every rank shares,
  and keeps this rank's rows (sample ``i`` of a global batch is on rank ``i % world_size``,
  as ``data.RankSlices`` deals them).

Together with gradients averaged across ranks, a run on N ranks with global batch B follows
a one-process run with batch B to float rounding (tests/test_distributed_search.py). The
masks match one process's on the CPU; on CUDA ``F.dropout`` uses another kernel, and a last
batch that does not split evenly draws each rank's masks alone: the same distribution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pdarts_cli.searching.fused import running_average_factor

_DIMS = (0, 2, 3)  # what BatchNorm2d averages over: batch, height, width


def _channel_view(t: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, 1, 1)


class _GlobalBatchNorm(torch.autograd.Function):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` with the global batch's statistics."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        shift: torch.Tensor,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        compute = torch.promote_types(x.dtype, torch.float32)  # at least float32, as BatchNorm
        x32 = x.to(compute)
        shifted = x32 - _channel_view(shift.to(compute))
        local_count = torch.full((1,), x.numel() // x.shape[1], dtype=compute)
        sums = torch.cat(
            [shifted.sum(_DIMS), (shifted * shifted).sum(_DIMS), local_count.to(x.device)]
        )
        dist.all_reduce(sums)  # one collective: both moments and the count
        count = sums[-1]
        shifted_mean, mean_square = (sums[:-1] / count).chunk(2)
        mean = shift.to(compute) + shifted_mean
        var = (mean_square - shifted_mean * shifted_mean).clamp(min=0)
        invstd = torch.rsqrt(var + eps)
        centred = x32 - _channel_view(mean)
        normalised = centred * _channel_view(invstd)
        y = normalised
        if weight is not None:
            y = y * _channel_view(weight.to(compute))
        if bias is not None:
            y = y + _channel_view(bias.to(compute))
        ctx.save_for_backward(normalised, invstd, weight, count)
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.mark_non_differentiable(mean, var, count)
        return y.to(x.dtype), mean, var, count

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        normalised, invstd, weight, count = ctx.saved_tensors
        g32 = grad.to(normalised.dtype)
        grad_sum = g32.sum(_DIMS)
        grad_dot = (g32 * normalised).sum(_DIMS)
        weight_grad = grad_dot.to(weight.dtype, copy=True) if weight is not None else None
        bias_grad = grad_sum.to(ctx.bias_dtype, copy=True) if ctx.bias_dtype else None
        totals = torch.cat([grad_sum, grad_dot])
        dist.all_reduce(totals)  # every rank's outputs depend on every rank's inputs
        total_sum, total_dot = totals.chunk(2)
        scale = invstd if weight is None else invstd * weight.to(invstd.dtype)
        x_grad = _channel_view(scale) * (
            g32 - _channel_view(total_sum / count) - normalised * _channel_view(total_dot / count)
        )
        return x_grad.to(grad.dtype), weight_grad, bias_grad, None, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the global batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        if not self.track_running_stats:
            raise NotImplementedError("global batch statistics need running statistics")
        assert self.running_mean is not None
        assert self.running_var is not None
        factor = running_average_factor(self)
        y, mean, var, count = _GlobalBatchNorm.apply(
            x, self.weight, self.bias, self.running_mean, self.eps
        )
        with torch.no_grad():
            unbiased = var * (count / (count - 1).clamp(min=1))
            self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean.dtype))
            self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))
        out: torch.Tensor = y
        return out


def globalise_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` replaced by a ``GlobalBatchNorm2d`` holding
    the same parameters and statistics (in place for the children; returns the root)."""
    if type(module) is nn.BatchNorm2d:
        reference = next(iter(module.state_dict().values()))
        replacement = GlobalBatchNorm2d(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            device=reference.device,
        )
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        setattr(module, name, globalise_batch_norms(child))
    return module


def global_dropout(x: torch.Tensor, p: float, rank: int, world_size: int) -> torch.Tensor:
    """Element-wise dropout of this rank's rows of a global batch of ``world_size`` equal
    shares: the mask ``F.dropout`` would draw for the whole batch, sliced."""
    shape = (x.shape[0] * world_size, *x.shape[1:])
    layout = (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    mask = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)
    mask.bernoulli_(1 - p).div_(1 - p)
    return x * mask[rank::world_size]

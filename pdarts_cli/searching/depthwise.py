"""Dilated depthwise convolutions as the CPU computes them fastest, the same function.

On the CPU (oneDNN, channels_last), the backward pass of a dilated depthwise convolution is
3-10 times slower than its forward pass, and than an undilated one's. Two exact rewrites:

- stride d, dilation d ("same" padding): only every d-th row and column is read, so it is an
  undilated, unstrided convolution of ``x[:, :, ::d, ::d]``
  (``y[h] = sum_i w[i] x[d (h + i - q)]``, q = (k - 1) / 2);
- stride 1 ("same" padding): the input gradient is the forward convolution of the output
  gradient with the kernel flipped (``dx[h] = sum_i w[k-1-i] dy[h + d i - p]``), a forward
  pass as fast as the layer's own.

``run_conv`` applies whichever fits, else the layer itself.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _same_depthwise(conv: nn.Conv2d) -> bool:
    """Depthwise, square and odd kernel, dilation d > 1, zero padding that keeps the size."""
    d, k = conv.dilation[0], conv.kernel_size[0]
    return (
        conv.groups == conv.in_channels == conv.out_channels
        and d > 1
        and conv.dilation == (d, d)
        and conv.kernel_size == (k, k)
        and k % 2 == 1
        and conv.padding == (d * (k - 1) // 2,) * 2
        and conv.padding_mode == "zeros"
        and conv.bias is None
    )


def _subsampled(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    d, k = conv.dilation[0], conv.kernel_size[0]
    return F.conv2d(x[:, :, ::d, ::d], conv.weight, None, 1, (k - 1) // 2, 1, conv.groups)


class _DilatedDepthwise(torch.autograd.Function):
    """A stride-1 dilated depthwise convolution whose input gradient is a forward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
        padding = dilation * (weight.shape[-1] - 1) // 2
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, None, 1, padding, dilation, weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        layout = torch.channels_last if _channels_last(x) else torch.contiguous_format
        grad = grad.contiguous(memory_format=layout)
        p, d, groups = ctx.padding, ctx.dilation, weight.shape[0]
        x_grad = weight_grad = None
        if ctx.needs_input_grad[0]:
            x_grad = F.conv2d(grad, weight.flip(-1, -2), None, 1, p, d, groups)
        if ctx.needs_input_grad[1]:
            weight_grad = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [p, p], [d, d], False, [0, 0], groups,
                [False, True, False],
            )[1]  # fmt: skip
        return x_grad, weight_grad, None


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def run_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, computed by a faster rewrite when one applies."""
    if not _same_depthwise(conv):
        out: torch.Tensor = conv(x)
        return out
    if conv.stride == conv.dilation:
        return _subsampled(conv, x)
    if conv.stride == (1, 1):
        dilated: torch.Tensor = _DilatedDepthwise.apply(x, conv.weight, conv.dilation[0])
        return dilated
    out = conv(x)
    return out

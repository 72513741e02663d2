"""An example pdarts op plugin: a plain (non-separable) 3x3 convolution as a candidate op."""

from __future__ import annotations

from torch import nn

__all__ = ["std_conv_3x3"]


def std_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """ReLU, full 3x3 convolution, BatchNorm."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        # padding 1 keeps the size at stride 1 and halves it at stride 2, as every op must.
        nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels, affine=affine),
    )

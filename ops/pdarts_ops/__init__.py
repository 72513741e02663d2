"""The eight DARTS candidate operations (Liu et al., ICLR 2019), as P-DARTS uses them.

Every op is built by a factory ``(channels, stride, affine) -> nn.Module`` whose output has
``channels`` channels and the input's spatial size divided by ``stride``. The factories are
declared under the ``pdarts.ops`` entry-point group in this distribution's pyproject.toml, so
pdarts finds them the same way it finds a plugin's ops: copy this package to write your own.

The first line of a factory's docstring is its description in ``pdarts ops list``. A factory
marked with ``with_search_batchnorm`` is followed by an affine-free BatchNorm in the search
supernet, as DARTS does for its parameter-free pooling ops.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "CANONICAL_OPS",
    "IDENTITY_OP",
    "ZERO_OP",
    "DilConv",
    "FactorizedReduce",
    "ReLUConvBN",
    "SepConv",
    "Zero",
    "avg_pool_3x3",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "skip_connect",
    "with_search_batchnorm",
    "zero",
]

OpFactory = Callable[[int, int, bool], nn.Module]

# The names this distribution registers its ops under, in the order DARTS lists them (the
# order of every edge's alphas in a schedule that does not say otherwise).
CANONICAL_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
ZERO_OP = "none"  # adds nothing: skipped in the supernet, never chosen by the derivation
IDENTITY_OP = "skip_connect"  # the op skip-connect dropout and refinement act on


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, BatchNorm: the DARTS pre-processing block."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise k x k, pointwise 1 x 1, BatchNorm."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv blocks without dilation; only the first one strides."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            DilConv(in_channels, in_channels, kernel_size, stride, padding, 1, affine),
            DilConv(in_channels, out_channels, kernel_size, 1, padding, 1, affine),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the output's shape. Mixed ops may skip it, since it adds 0."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the spatial size with two 1 x 1 stride-2 convolutions offset by one pixel."""

    def __init__(self, in_channels: int, out_channels: int, affine: bool = True) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {out_channels}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        out: torch.Tensor = self.bn(
            torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        )
        return out


def with_search_batchnorm(factory: OpFactory) -> OpFactory:
    """Mark a parameter-free op that the search supernet follows with an affine-free BatchNorm."""
    factory.search_batchnorm = True  # type: ignore[attr-defined]
    return factory


def zero(channels: int, stride: int, affine: bool) -> nn.Module:
    """The zero op: the edge contributes nothing."""
    return Zero(stride)


@with_search_batchnorm
def max_pool_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """3x3 max pooling."""
    return nn.MaxPool2d(3, stride=stride, padding=1)


@with_search_batchnorm
def avg_pool_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """3x3 average pooling, padding excluded from the average."""
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def skip_connect(channels: int, stride: int, affine: bool) -> nn.Module:
    """Identity; at stride 2 a factorized reduction."""
    if stride == 1:
        return nn.Identity()
    return FactorizedReduce(channels, channels, affine)


def sep_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """Two ReLU, depthwise 3x3, pointwise, BatchNorm blocks."""
    return SepConv(channels, channels, 3, stride, 1, affine)


def sep_conv_5x5(channels: int, stride: int, affine: bool) -> nn.Module:
    """Two ReLU, depthwise 5x5, pointwise, BatchNorm blocks."""
    return SepConv(channels, channels, 5, stride, 2, affine)


def dil_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """ReLU, depthwise 3x3 with dilation 2, pointwise, BatchNorm."""
    return DilConv(channels, channels, 3, stride, 2, 2, affine)


def dil_conv_5x5(channels: int, stride: int, affine: bool) -> nn.Module:
    """ReLU, depthwise 5x5 with dilation 2, pointwise, BatchNorm."""
    return DilConv(channels, channels, 5, stride, 4, 2, affine)

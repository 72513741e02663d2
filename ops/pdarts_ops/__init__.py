"""The eight DARTS candidate operations (Liu et al., ICLR 2019), as P-DARTS uses them.

Every op is built by a factory ``(channels, stride, affine) -> nn.Module`` whose output has
``channels`` channels and the input's spatial size divided by ``stride``. The factories are
declared under the ``pdarts.ops`` entry-point group in this distribution's pyproject.toml, so
pdarts finds them the same way it finds a plugin's ops: copy this package to write your own.

The first line of a factory's docstring is its description in ``pdarts ops list``. A factory
marked with ``with_search_batchnorm`` is followed by an affine-free BatchNorm in the search
supernet, as DARTS does for its parameter-free pooling ops.

Importing this package does not import torch: the factories import ``pdarts_ops.layers`` when
they build an op, so listing ops and reading genotypes stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from pdarts_ops.layers import DilConv, FactorizedReduce, ReLUConvBN, SepConv, Zero

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

OpFactory = Callable[[int, int, bool], "nn.Module"]

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

_LAYERS = ("DilConv", "FactorizedReduce", "ReLUConvBN", "SepConv", "Zero")


def __getattr__(name: str) -> Any:
    """The layer classes, imported (with torch) on first use."""
    if name not in _LAYERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("pdarts_ops.layers"), name)


def with_search_batchnorm(factory: OpFactory) -> OpFactory:
    """Mark a parameter-free op that the search supernet follows with an affine-free BatchNorm."""
    factory.search_batchnorm = True  # type: ignore[attr-defined]
    return factory


def zero(channels: int, stride: int, affine: bool) -> nn.Module:
    """The zero op: the edge contributes nothing."""
    from pdarts_ops.layers import Zero

    return Zero(stride)


@with_search_batchnorm
def max_pool_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """3x3 max pooling."""
    from torch import nn

    return nn.MaxPool2d(3, stride=stride, padding=1)


@with_search_batchnorm
def avg_pool_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """3x3 average pooling, padding excluded from the average."""
    from torch import nn

    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def skip_connect(channels: int, stride: int, affine: bool) -> nn.Module:
    """Identity; at stride 2 a factorized reduction."""
    from torch import nn

    from pdarts_ops.layers import FactorizedReduce

    if stride == 1:
        return nn.Identity()
    return FactorizedReduce(channels, channels, affine)


def sep_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """Two ReLU, depthwise 3x3, pointwise, BatchNorm blocks."""
    from pdarts_ops.layers import SepConv

    return SepConv(channels, channels, 3, stride, 1, affine)


def sep_conv_5x5(channels: int, stride: int, affine: bool) -> nn.Module:
    """Two ReLU, depthwise 5x5, pointwise, BatchNorm blocks."""
    from pdarts_ops.layers import SepConv

    return SepConv(channels, channels, 5, stride, 2, affine)


def dil_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    """ReLU, depthwise 3x3 with dilation 2, pointwise, BatchNorm."""
    from pdarts_ops.layers import DilConv

    return DilConv(channels, channels, 3, stride, 2, 2, affine)


def dil_conv_5x5(channels: int, stride: int, affine: bool) -> nn.Module:
    """ReLU, depthwise 5x5 with dilation 2, pointwise, BatchNorm."""
    from pdarts_ops.layers import DilConv

    return DilConv(channels, channels, 5, stride, 4, 2, affine)

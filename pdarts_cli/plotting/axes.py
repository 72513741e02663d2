"""What both figures draw with: a plain matplotlib Figure (no pyplot, no display, no global
backend switch) and epoch curves. matplotlib is imported only when something is drawn."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100  # pixels per inch of the figure sizes the figures ask for


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def gapped(
    xs: Sequence[int], ys: Sequence[float], starts: Sequence[int] = ()
) -> tuple[list[float], list[float]]:
    """``xs`` and ``ys`` with a NaN point between two epochs on either side of a stage start,
    so that no line joins two stages: each stage searches a fresh supernet with fresh alphas."""
    gx: list[float] = []
    gy: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i and any(xs[i - 1] < start <= x for start in starts):
            gx.append(math.nan)
            gy.append(math.nan)
        gx.append(x)
        gy.append(y)
    return gx, gy


def draw_curves(
    ax: Axes,
    x: Sequence[int],
    series: Mapping[str, list[float]],
    title: str,
    starts: Sequence[int] = (),
) -> None:
    """One line per series (markers, so a value between nulls still shows), broken at each
    stage start; all-null series are left out of the plot and its legend."""
    from matplotlib.ticker import MaxNLocator

    drawn = 0
    for label, values in series.items():
        if not all(math.isnan(v) for v in values):
            ax.plot(*gapped(x, values, starts), marker="o", markersize=3, label=label)
            drawn += 1
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if drawn > 1:  # a single line is named by the title
        ax.legend(fontsize="small")

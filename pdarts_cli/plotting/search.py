"""The picture of a search run: losses and accuracies over the epochs of all stages, the
collapse diagnostics per cell type where the lines have them (skip-connects with max_skip
dashed, mean entropy with ln k dashed, edges whose chosen op changed), and softmax(alpha) of
every op on every edge of both cells (each edge on its own scale, the uniform 1/k of its
candidates dashed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdarts_cli.errors import RunDirError
from pdarts_cli.plotting.axes import draw_curves, gapped, new_figure
from pdarts_cli.plotting.metrics import Line, Metrics, OpSeries, global_epochs
from pdarts_cli.topology import CELL_INPUTS, cell_edges, cell_steps, edges_per_cell

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.lines import Line2D

ALPHA_MARGIN = 0.08  # of an alpha panel's range, above and below its data
ALPHA_MIN_SPAN = 0.02  # an alpha panel whose data is flat (all ops equal) still shows a band
# The uniform level 1/k of an edge's k candidates: where every alpha starts, what "no
# preference" looks like, and the mean of the k probabilities at every epoch.
UNIFORM_STYLE: dict[str, Any] = {"color": "0.3", "linestyle": "--", "linewidth": 0.8}
UNIFORM_LABEL = "uniform 1/k (k: the edge's ops in that stage)"
INPUT_NAMES = ("$c_{k-2}$", "$c_{k-1}$")  # states 0 and 1; nodes numbered as in DARTS strings


def edge_endpoints(steps: int) -> list[tuple[int, int]]:
    """(node, input) of each edge in supernet order: node j is intermediate node j (state
    j + 2); input 0 is c_{k-2}, 1 is c_{k-1}, 2 + j is intermediate node j. They are the row
    and column of the edge's plot."""
    return [(edge.target - CELL_INPUTS, edge.source) for edge in cell_edges(steps)]


def _state_name(state: int) -> str:
    return INPUT_NAMES[state] if state < CELL_INPUTS else str(state)


def _mark_stages(ax: Axes, first: Mapping[int, int], last_epoch: int, label: bool) -> None:
    """Dotted lines between stages; with ``label``, stage names along the top edge."""
    starts = sorted(first.values())
    for start in starts[1:]:
        ax.axvline(start - 0.5, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlim(0.5, last_epoch + 0.5)
    if label and len(starts) > 1:
        ends = [*starts[1:], last_epoch + 1]
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [(a + b - 1) / 2 for a, b in zip(starts, ends)], [f"stage {s}" for s in sorted(first)]
        )
        top.tick_params(length=0, labelsize="small")


def _op_colours(alphas: Mapping[str, list[OpSeries]]) -> dict[str, Any]:
    """One colour per op name, the same in every subplot, in order of first appearance."""
    from matplotlib import colormaps

    names = list(dict.fromkeys(op for edges in alphas.values() for edge in edges for op in edge))
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def _cell_steps(cell: str, edges: list[OpSeries], source: Path) -> int:
    steps = cell_steps(len(edges))
    if not steps:  # None: no cell has that many edges
        raise RunDirError(
            f"{source}: alphas.{cell} lists {len(edges)} edges; a DARTS cell has "
            f"{', '.join(str(edges_per_cell(k)) for k in range(1, 5))}, ... edges"
        )
    return steps


def stage_spans(first: Mapping[int, int], last_epoch: int) -> list[tuple[int, int]]:
    """The first and last global epoch of each stage, in stage order."""
    starts = sorted(first.values())
    return list(zip(starts, [start - 1 for start in starts[1:]] + [last_epoch]))


def uniform_levels(
    series: OpSeries, spans: Sequence[tuple[int, int]]
) -> list[tuple[int, int, float]]:
    """(first epoch, last epoch, 1/k) of each stage in which the edge has points, k being
    the ops it has points for in that stage: later stages keep fewer ops, so 1/k rises."""
    levels = []
    for start, end in spans:
        k = sum(any(start <= x <= end for x in xs) for xs, _ in series.values())
        if k:
            levels.append((start, end, 1 / k))
    return levels


def alpha_limits(series: OpSeries, levels: Sequence[tuple[int, int, float]]) -> tuple[float, float]:
    """The y range of one edge's panel: its probabilities and uniform levels with a small
    margin, within 0..1. A fixed 0..1 axis would flatten the 0.1-0.4 where most alphas live
    into lines; panels are therefore not on one scale."""
    values = [p for _, ps in series.values() for p in ps if math.isfinite(p)]
    values += [level for _, _, level in levels]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    margin = max((high - low) * ALPHA_MARGIN, ALPHA_MIN_SPAN / 2)
    return max(0.0, low - margin), min(1.0, high + margin)


def _draw_uniform(ax: Axes, levels: Sequence[tuple[int, int, float]]) -> None:
    """A dashed segment at 1/k over each stage, under the op lines."""
    for start, end, level in levels:
        ax.plot([start - 0.5, end + 0.5], [level, level], zorder=1.5, **UNIFORM_STYLE)


def _alpha_cell(
    panel: SubFigure,
    cell: str,
    edges: list[OpSeries],
    colours: Mapping[str, Any],
    first: Mapping[int, int],
    last_epoch: int,
    source: Path,
) -> None:
    """One small plot per edge: rows are intermediate nodes, columns their inputs. Each is
    scaled to its own data, with the uniform level of its stage's candidates dashed."""
    steps = _cell_steps(cell, edges, source)
    columns = CELL_INPUTS + steps - 1  # the inputs of the last node
    grid = panel.subplots(steps, columns, sharex=True, squeeze=False)
    starts = sorted(first.values())
    spans = stage_spans(first, last_epoch)
    for (node, input_), series in zip(edge_endpoints(steps), edges):
        ax = grid[node][input_]
        levels = uniform_levels(series, spans)
        _draw_uniform(ax, levels)
        for op, (xs, ps) in series.items():
            ax.plot(*gapped(xs, ps, starts), color=colours[op], linewidth=1.2, label=op)
        _mark_stages(ax, first, last_epoch, label=False)
        ax.set_title(f"{_state_name(input_)} → {CELL_INPUTS + node}", fontsize="small", pad=3)
        ax.set_ylim(*alpha_limits(series, levels))
        ax.tick_params(labelsize="x-small")
        ax.grid(alpha=0.3)
    for node in range(steps):
        grid[node][0].set_ylabel(f"node {CELL_INPUTS + node}", fontsize="small")
        for unused in grid[node][CELL_INPUTS + node :]:
            unused.set_visible(False)
    for ax in grid[-1]:
        ax.set_xlabel("epoch", fontsize="small")
    panel.suptitle(
        f"{cell} cell: softmax($\\alpha$) per edge (input → node), each on its own scale"
    )


def _line_handle(colour: Any, label: str) -> Line2D:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, linewidth=2, label=label)


def _uniform_handle() -> Line2D:
    from matplotlib.lines import Line2D

    return Line2D([], [], label=UNIFORM_LABEL, **UNIFORM_STYLE)


def _alpha_panels(
    panel: SubFigure,
    alphas: Mapping[str, list[OpSeries]],
    first: Mapping[int, int],
    last_epoch: int,
    source: Path,
) -> None:
    """The edge plots of each cell side by side, and one legend of ops below them all."""
    colours = _op_colours(alphas)
    cells = panel.subfigures(1, len(alphas), wspace=0.04, squeeze=False)[0]
    for cell_panel, (cell, edges) in zip(cells, alphas.items()):
        _alpha_cell(cell_panel, cell, edges, colours, first, last_epoch, source)
    handles = [_line_handle(colour, op) for op, colour in colours.items()]
    handles.append(_uniform_handle())
    panel.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 9))


Series = dict[str, list[float]]
# The curves' panel: loss and accuracy; below them, when the lines have them, the collapse
# diagnostics (skip-connects, entropy, changed edges), each a third of the width.
# (matplotlib's one-letter mosaic: a letter per panel, rows separated by ";").
CURVES = "lllaaa"
DIAGNOSTICS = ";sseecc"
PANELS = {"loss": "l", "accuracy": "a", "skip": "s", "entropy": "e", "changed": "c"}
DIAGNOSTICS_INCHES = 4.0  # the height they add to the figure
CURVES_INCHES = 4.5  # the height of a figure of curves alone
# The heights of the curves and of the alpha panels below them, in a figure with both.
CURVES_OVER_ALPHAS_INCHES = 3.9
ALPHAS_INCHES = 10.1


def diagnostics_series(read: Metrics) -> dict[str, tuple[Series, list[float]]] | None:
    """Per diagnostic, its series per cell type and its dashed reference level (max_skip;
    ln k, the entropy of k equal weights; none for changed edges); None when no line has any
    (runs from before the diagnostics)."""
    skips = read.per_cell("skip_connects")
    entropy = read.mean_entropy()
    changed = read.per_cell("changed_edges")
    every = [v for cells in (skips, entropy, changed) for vs in cells.values() for v in vs]
    if all(math.isnan(v) for v in every):
        return None
    ln_k = [math.log(k) if k > 0 else math.nan for k in read.ops_per_edge()]
    return {
        "skip": (skips, read.column("max_skip", optional=True)),
        "entropy": (entropy, ln_k),
        "changed": (changed, [math.nan] * len(ln_k)),
    }


DIAGNOSTIC_TITLES = {
    "skip": "skip-connects in the genotype the alphas give",
    "entropy": "mean entropy of an edge's op weights (nats)",
    "changed": "edges whose chosen op changed since the last epoch",
}
REFERENCE_LABELS = {"skip": "max_skip (M)", "entropy": "ln k (k equal weights)"}


def _draw_diagnostic(
    ax: Axes,
    name: str,
    data: tuple[Series, list[float]],
    x: Sequence[int],
    first: Mapping[int, int],
    last_epoch: int,
) -> None:
    """One diagnostic per cell type over the epochs, its reference level dashed."""
    from matplotlib.ticker import MaxNLocator

    series, reference = data
    starts = sorted(first.values())
    if not all(math.isnan(v) for v in reference):
        ax.plot(*gapped(x, reference, starts), label=REFERENCE_LABELS[name], **UNIFORM_STYLE)
    draw_curves(ax, x, series, DIAGNOSTIC_TITLES[name], starts)
    _mark_stages(ax, first, last_epoch, label=False)
    if name != "entropy":
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def search_figure(lines: Sequence[Line], source: Path, title: str) -> Figure:
    """Loss and accuracy over the epochs of all stages, the collapse diagnostics where the
    lines have them; softmax(alpha) of every edge."""
    read = Metrics(source, lines)
    x, first = global_epochs(read.counts("stage"), read.counts("epoch"))
    last_epoch = max(x)
    losses = {
        "train (weights half)": read.column("train_loss"),
        "train (alpha half)": read.column("alpha_loss", nullable=True),
        "valid": read.column("valid_loss", nullable=True),
    }
    accuracies = {
        "train (weights half)": read.column("train_accuracy"),
        "train (alpha half)": read.column("alpha_accuracy", nullable=True),
        "valid": read.column("valid_accuracy", nullable=True),
    }
    alphas = {cell: edges for cell, edges in read.alphas(x).items() if edges}
    for cell, edges in alphas.items():
        _cell_steps(cell, edges, source)  # before a second or two of drawing
    diagnostics = diagnostics_series(read)
    extra = DIAGNOSTICS_INCHES if diagnostics else 0.0
    curves_inches = (CURVES_OVER_ALPHAS_INCHES if alphas else CURVES_INCHES) + extra
    figure = new_figure(16, curves_inches + (ALPHAS_INCHES if alphas else 0.0))
    figure.suptitle(title, fontsize="x-large")
    curves: Figure | SubFigure = figure
    if alphas:
        ratios = [curves_inches, ALPHAS_INCHES]
        curves, cells = figure.subfigures(2, 1, height_ratios=ratios, squeeze=False)[:, 0]
        _alpha_panels(cells, alphas, first, last_epoch, source)
    axes = curves.subplot_mosaic(CURVES + DIAGNOSTICS if diagnostics else CURVES)
    for name, series in [("loss", losses), ("accuracy", accuracies)]:
        draw_curves(axes[PANELS[name]], x, series, name, sorted(first.values()))
        _mark_stages(axes[PANELS[name]], first, last_epoch, label=True)
    for name, data in (diagnostics or {}).items():
        _draw_diagnostic(axes[PANELS[name]], name, data, x, first, last_epoch)
    return figure

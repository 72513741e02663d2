"""A run directory's curves as one picture: ``pdarts plot RUN_DIR``.

A search run shows its losses and accuracies over the epochs of all stages, and softmax(alpha)
of every op on every edge of both cells (each edge on its own scale, the uniform 1/k of its
candidates dashed); a train run shows loss, top-1/top-5 and the learning rate, with the test
top-1 after the last epoch (what final.safetensors scores) in the title and, when the run holds
out a validation split, the valid curves and the epoch best.safetensors holds. Reading and
checking metrics.jsonl is pure Python; matplotlib is imported only when a figure is drawn, on
a plain :class:`~matplotlib.figure.Figure` (no pyplot, no display, no global backend switch).
This module imports neither torch nor matplotlib.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdarts_cli.arch import CELL_TYPES, edges_per_cell
from pdarts_cli.errors import PdartsError, RunDirError
from pdarts_cli.files import read_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.lines import Line2D

# The names pdarts_cli.runlog gives these files (a test keeps them equal); importing runlog
# would import torch through pdarts_cli.checkpoint, a second or two for a picture.
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
DEFAULT_PLOT_FILE = "curves.png"
FORMATS = ("png", "svg", "pdf")
DPI = 100  # pixels per inch of the figure sizes below
BEST_FILE = "best.safetensors"  # pdarts_cli.train.trainer's name (a test keeps them equal)
ALPHA_MARGIN = 0.08  # of an alpha panel's range, above and below its data
ALPHA_MIN_SPAN = 0.02  # an alpha panel whose data is flat (all ops equal) still shows a band
# The uniform level 1/k of an edge's k candidates: where every alpha starts, what "no
# preference" looks like, and the mean of the k probabilities at every epoch.
UNIFORM_STYLE: dict[str, Any] = {"color": "0.3", "linestyle": "--", "linewidth": 0.8}
UNIFORM_LABEL = "uniform 1/k (k: the edge's ops in that stage)"
FIRST_INTERMEDIATE_NODE = 2  # nodes numbered as in DARTS strings: 0, 1 inputs; 2 and up

Record = dict[str, Any]
Line = tuple[int, Record]  # 1-based line number in metrics.jsonl, the parsed object
OpSeries = dict[str, tuple[list[int], list[float]]]  # op -> (global epochs, probabilities)


# --- reading ---------------------------------------------------------------------------------


def read_run_kind(run_dir: Path) -> str:
    """``kind`` from run.json: "search" or "train"."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a pdarts run directory (no {RUN_FILE})")
    try:
        run = json.loads(read_text(path, RunDirError))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON: {exc}") from exc
    kind = run.get("kind") if isinstance(run, dict) else None
    if kind not in _FIGURES:
        raise RunDirError(
            f"{path}: unknown run kind {kind!r}; pdarts plot draws {' and '.join(_FIGURES)} runs"
        )
    return str(kind)


def read_metrics(path: Path) -> list[Line]:
    """The JSON objects of metrics.jsonl with their line numbers; blank lines are skipped."""
    text = read_text(path, RunDirError) if path.is_file() else ""
    lines: list[Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} line {number} is not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise RunDirError(f"{path} line {number} is not a JSON object")
        lines.append((number, record))
    if not lines:
        raise RunDirError(f"{path.parent} has no metrics yet ({METRICS_FILE} is missing or empty)")
    return lines


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Metrics:
    """Typed access to the fields of metrics.jsonl, naming the file and line of a bad value.
    Only the fields a figure draws are read, so they are the only ones required."""

    def __init__(self, path: Path, lines: Sequence[Line]) -> None:
        self.path = path
        self.lines = lines

    def error(self, number: int, message: str) -> RunDirError:
        return RunDirError(f"{self.path} line {number}: {message}")

    def column(self, key: str, nullable: bool = False, optional: bool = False) -> list[float]:
        """``key`` of every line; NaN (a gap in the plotted line) for null or non-finite.
        An ``optional`` key, one that older runs do not write, reads as null when missing."""
        values = []
        for number, record in self.lines:
            if key not in record and not optional:
                raise self.error(number, f"{key!r} is missing")
            value: Any = record.get(key)
            if value is None and (nullable or optional):
                values.append(math.nan)
            elif _is_number(value):
                values.append(float(value) if math.isfinite(value) else math.nan)
            else:
                expected = "a number or null" if nullable or optional else "a number"
                raise self.error(number, f"{key!r} must be {expected}, got {value!r}")
        return values

    def counts(self, key: str) -> list[int]:
        """A 1-based counter (stage, epoch) of every line."""
        values = []
        for number, record in self.lines:
            value: Any = record.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.error(number, f"{key!r} must be a positive integer, got {value!r}")
            values.append(value)
        return values

    def alphas(self, epochs: Sequence[int]) -> dict[str, list[OpSeries]]:
        """For each cell type and edge, each op's probability over the global epochs. An op
        that a later stage drops has no points after its last stage."""
        cells: dict[str, list[OpSeries]] = {cell: [] for cell in CELL_TYPES}
        for (number, record), epoch in zip(self.lines, epochs):
            alphas = record.get("alphas") or {}
            if not isinstance(alphas, dict):
                raise self.error(number, "'alphas' must map cell types to lists of edges")
            for cell, series in cells.items():
                edges = alphas.get(cell, [])
                if not isinstance(edges, list):
                    raise self.error(number, f"alphas.{cell} must be a list of edges")
                series.extend({} for _ in range(len(edges) - len(series)))
                for index, probs in enumerate(edges):
                    if not isinstance(probs, dict) or not all(map(_is_number, probs.values())):
                        raise self.error(number, f"alphas.{cell}.{index} must map ops to numbers")
                    for op, p in probs.items():
                        xs, ps = series[index].setdefault(op, ([], []))
                        xs.append(epoch)
                        ps.append(float(p))
        return cells


def global_epochs(stages: Sequence[int], epochs: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Each line's epoch counted across stages (1-based), and the global epoch each stage
    starts at. A stage is as long as its last recorded epoch."""
    last: dict[int, int] = {}
    for stage, epoch in zip(stages, epochs):
        last[stage] = max(epoch, last.get(stage, 0))
    first: dict[int, int] = {}
    done = 0
    for stage in sorted(last):
        first[stage] = done + 1
        done += last[stage]
    return [first[stage] + epoch - 1 for stage, epoch in zip(stages, epochs)], first


def cell_steps(edges: int) -> int | None:
    """The intermediate nodes of a cell with ``edges`` edges (14 -> 4), None if no cell has."""
    steps = 1
    while edges_per_cell(steps) < edges:
        steps += 1
    return steps if edges_per_cell(steps) == edges else None


def edge_endpoints(steps: int) -> list[tuple[int, int]]:
    """(node, input) of each edge in supernet order: input 0 is c_{k-2}, 1 is c_{k-1}, 2 + j
    is intermediate node j."""
    return [(node, source) for node in range(steps) for source in range(node + 2)]


# --- drawing ---------------------------------------------------------------------------------


def _input_name(source: int) -> str:
    return {0: "$c_{k-2}$", 1: "$c_{k-1}$"}.get(source, str(source))


def _new_figure(width: float, height: float) -> Figure:
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


def _curves(
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
    if steps is None:
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
    grid = panel.subplots(steps, steps + 1, sharex=True, squeeze=False)
    starts = sorted(first.values())
    spans = stage_spans(first, last_epoch)
    for (node, input_), series in zip(edge_endpoints(steps), edges):
        ax = grid[node][input_]
        levels = uniform_levels(series, spans)
        _draw_uniform(ax, levels)
        for op, (xs, ps) in series.items():
            ax.plot(*gapped(xs, ps, starts), color=colours[op], linewidth=1.2, label=op)
        _mark_stages(ax, first, last_epoch, label=False)
        ax.set_title(
            f"{_input_name(input_)} → {node + FIRST_INTERMEDIATE_NODE}", fontsize="small", pad=3
        )
        ax.set_ylim(*alpha_limits(series, levels))
        ax.tick_params(labelsize="x-small")
        ax.grid(alpha=0.3)
    for node in range(steps):
        grid[node][0].set_ylabel(f"node {node + FIRST_INTERMEDIATE_NODE}", fontsize="small")
        for unused in grid[node][node + 2 :]:
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


def search_figure(lines: Sequence[Line], source: Path, title: str) -> Figure:
    """Loss and accuracy over the epochs of all stages; softmax(alpha) of every edge."""
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
    figure = _new_figure(16, 14 if alphas else 4.5)
    figure.suptitle(title, fontsize="x-large")
    curves: Figure | SubFigure = figure
    if alphas:
        curves, cells = figure.subfigures(2, 1, height_ratios=[1, 2.6], squeeze=False)[:, 0]
        _alpha_panels(cells, alphas, first, last_epoch, source)
    for ax, (name, series) in zip(
        curves.subplots(1, 2), [("loss", losses), ("accuracy", accuracies)]
    ):
        _curves(ax, x, series, name, sorted(first.values()))
        _mark_stages(ax, first, last_epoch, label=True)
    return figure


def best_valid_epoch(epochs: Sequence[int], valid_top1: Sequence[float]) -> int | None:
    """The epoch best.safetensors holds: the earliest highest valid top-1; None when no line
    has one (no validation split)."""
    scored = [(top1, epoch) for epoch, top1 in zip(epochs, valid_top1) if not math.isnan(top1)]
    return max(scored, key=lambda pair: pair[0], default=(None, None))[1]


def accuracy_title(epochs: Sequence[int], test_top1: Sequence[float]) -> str:
    """The test top-1 after the last epoch: the number final.safetensors reports."""
    if not epochs or math.isnan(test_top1[-1]):
        return "accuracy"
    return f"accuracy (test top-1 after epoch {epochs[-1]}: {100 * test_top1[-1]:.2f}%)"


def _mark_best_valid(ax: Axes, epoch: int) -> None:
    ax.axvline(
        epoch, color="0.4", linestyle=":", linewidth=1.2, label=f"{BEST_FILE} (epoch {epoch})"
    )
    ax.legend(fontsize="small")


def train_figure(lines: Sequence[Line], source: Path, title: str) -> Figure:
    """Loss, top-1/top-5 accuracy and learning rate over the epochs. The valid curves (the
    part of the training set held out by ``valid_portion``) are drawn when the run has them;
    runs from before they were recorded have no such keys."""
    read = Metrics(source, lines)
    x = read.counts("epoch")
    valid_top1 = read.column("valid_top1", optional=True)
    test_top1 = read.column("test_top1", nullable=True)
    figure = _new_figure(16, 4.5)
    figure.suptitle(title, fontsize="x-large")
    loss_ax, accuracy_ax, lr_ax = figure.subplots(1, 3)
    _curves(
        loss_ax,
        x,
        {
            "train": read.column("train_loss"),
            "valid": read.column("valid_loss", optional=True),
            "test": read.column("test_loss", nullable=True),
        },
        "loss",
    )
    _curves(
        accuracy_ax,
        x,
        {
            "train top-1": read.column("train_top1"),
            "valid top-1": valid_top1,
            "test top-1": test_top1,
            "test top-5": read.column("test_top5", nullable=True),
        },
        accuracy_title(x, test_top1),
    )
    best = best_valid_epoch(x, valid_top1)
    if best is not None:
        _mark_best_valid(accuracy_ax, best)
    _curves(lr_ax, x, {"learning rate": read.column("lr")}, "learning rate")
    return figure


_FIGURES = {"search": search_figure, "train": train_figure}


# --- writing ---------------------------------------------------------------------------------


def _check_out(out: Path) -> None:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise PdartsError(f"the plot file must end in {', '.join('.' + f for f in FORMATS)}: {out}")
    if not out.parent.is_dir():
        raise PdartsError(f"cannot write {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise PdartsError(f"cannot write {out}: it is a folder")


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """Draw a search or train run's metrics.jsonl into ``out`` (default RUN_DIR/curves.png;
    .png, .svg or .pdf) and return its path."""
    kind = read_run_kind(run_dir)
    out = run_dir / DEFAULT_PLOT_FILE if out is None else out
    _check_out(out)
    source = run_dir / METRICS_FILE
    lines = read_metrics(source)
    figure = _FIGURES[kind](lines, source, f"{run_dir.resolve().name} ({kind} run)")
    try:
        figure.savefig(out)
    except OSError as exc:
        raise PdartsError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out

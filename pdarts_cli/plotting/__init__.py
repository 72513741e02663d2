"""A run directory's curves as one picture: ``pdarts plot RUN_DIR``.

A search run shows its losses and accuracies over the epochs of all stages, its collapse
diagnostics where metrics.jsonl has them (skip-connects of the genotype the alphas give, mean
entropy of the op weights, edges whose chosen op changed), and softmax(alpha) of every op on
every edge of both cells (:mod:`.search`); a train run shows loss, top-1/top-5
and the learning rate (:mod:`.train`). Reading and checking metrics.jsonl is pure Python
(:mod:`.metrics`); matplotlib is imported only when a figure is drawn, on a plain
:class:`~matplotlib.figure.Figure` (no pyplot, no display, no global backend switch). This
package imports neither torch nor matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pdarts_cli.errors import PdartsError, RunDirError
from pdarts_cli.files import read_text
from pdarts_cli.plotting.metrics import METRICS_FILE, RUN_FILE, Line, read_metrics
from pdarts_cli.plotting.search import search_figure
from pdarts_cli.plotting.train import BEST_FILE, train_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BEST_FILE", "DEFAULT_PLOT_FILE", "FORMATS", "plot_run", "read_run_kind"]

DEFAULT_PLOT_FILE = "curves.png"
FORMATS = ("png", "svg", "pdf")

_FIGURES: dict[str, Callable[[Sequence[Line], Path, str], Figure]] = {
    "search": search_figure,
    "train": train_figure,
}


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

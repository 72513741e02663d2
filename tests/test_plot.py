"""``plot_run`` and ``pdarts plot``: the curves of a search or train run as one picture.

The run directories are written by hand: a search of 2 stages x 2 epochs (8 ops per edge,
then 3) whose first epoch of each stage is warm-up (no alpha or valid numbers yet), and a train
run of 3 epochs, written as older pdarts did (no valid keys) or with a validation split. The
pictures are checked as files a viewer opens; how they look was checked by eye.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import typer
from clihelpers import assert_one_error_line, lines
from matplotlib.image import imread
from typer.testing import CliRunner, Result

from pdarts_cli import runlog
from pdarts_cli.cli.plot import plot
from pdarts_cli.errors import RunDirError
from pdarts_cli.plotting import DEFAULT_PLOT_FILE, plot_run
from pdarts_cli.plotting.metrics import (
    METRICS_FILE,
    RUN_FILE,
    Metrics,
    global_epochs,
    read_metrics,
)
from pdarts_cli.plotting.search import (
    DIAGNOSTIC_TITLES,
    UNIFORM_LABEL,
    alpha_limits,
    edge_endpoints,
    search_figure,
    stage_spans,
    uniform_levels,
)
from pdarts_cli.plotting.train import accuracy_title, best_valid_epoch
from pdarts_cli.schedule import DARTS_OPS
from pdarts_cli.topology import CELL_TYPES, cell_steps, edges_per_cell

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS = 4  # intermediate nodes of a cell
EDGES = edges_per_cell(STEPS)  # 14
STAGE_OPS = (8, 3)  # ops per edge in stage 1 and 2
EPOCHS_PER_STAGE = 2
WIDE = {"COLUMNS": "200"}  # keep long tmp paths on one line

runner = CliRunner()


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """The command on an app of its own, registered as the lead's app.py does."""
    app = typer.Typer()
    app.command("plot")(plot)
    app.command("other")(lambda: None)  # two commands, so "plot" is a subcommand name
    return app


def invoke(cli: typer.Typer, *args: str | Path) -> Result:
    return runner.invoke(cli, ["plot", *map(str, args)], env=WIDE)


def edge_probabilities(
    ops: tuple[str, ...], edge: int, epoch: int, sharpness: float = 1.0
) -> dict[str, float]:
    """A softmax that drifts with the epoch, different on every edge; a lower ``sharpness``
    keeps it nearer uniform, as real searches are."""
    logits = [math.sin(edge + 3 * i) * epoch / 2 * sharpness for i in range(len(ops))]
    total = sum(math.exp(a) for a in logits)
    return {op: math.exp(a) / total for op, a in zip(ops, logits)}


def stage_ops(stage: int, edge: int) -> tuple[str, ...]:
    """Stage 1 searches every op; stage 2 keeps three, a different three per edge."""
    if stage == 1:
        return DARTS_OPS
    start = edge % len(DARTS_OPS)
    return tuple(sorted((DARTS_OPS * 2)[start : start + STAGE_OPS[1]], key=DARTS_OPS.index))


MAX_SKIP = 2


def diagnostics(stage: int, epoch: int) -> dict[str, Any]:
    """The collapse diagnostics of a line: the normal cell gains a skip-connect an epoch;
    every edge's entropy is that of its alphas, as the search writes it."""
    entropy = {
        cell: [
            -sum(p * math.log(p) for p in edge_probabilities(stage_ops(stage, e), e, 1).values())
            for e in range(EDGES)
        ]
        for cell in CELL_TYPES
    }
    return {
        "genotype": "Genotype(normal=[], normal_concat=[], reduce=[], reduce_concat=[])",
        "skip_connects": {"normal": (stage - 1) * EPOCHS_PER_STAGE + epoch, "reduce": 0},
        "edge_entropy": entropy,
        "changed_edges": None if epoch == 1 else {"normal": 3, "reduce": 1},
        "max_skip": MAX_SKIP,
    }


def search_record(
    stage: int,
    epoch: int,
    alphas: bool = True,
    sharpness: float = 1.0,
    collapse: bool = False,
) -> dict[str, Any]:
    warmup = epoch == 1  # weights only: no alpha half, no validation
    last = epoch == EPOCHS_PER_STAGE
    step = (stage - 1) * EPOCHS_PER_STAGE + epoch
    record: dict[str, Any] = {
        "stage": stage,
        "epoch": epoch,
        "lr": 0.025 / step,
        "skip_dropout_p": 0.1 * (stage - 1),
        "train_loss": 2.3 / step,
        "train_accuracy": 0.2 * step,
        "alpha_loss": None if warmup else 2.4 / step,
        "alpha_accuracy": None if warmup else 0.18 * step,
        "valid_loss": 2.5 / step if last else None,
        "valid_accuracy": 0.17 * step if last else None,
        "seconds": 1.5,
    }
    if alphas:
        record["alphas"] = {
            cell: [
                edge_probabilities(stage_ops(stage, e), e + 7 * c, step, sharpness)
                for e in range(EDGES)
            ]
            for c, cell in enumerate(CELL_TYPES)
        }
    if collapse:
        record.update(diagnostics(stage, epoch))
    return record


def write_run(path: Path, kind: str, records: list[dict[str, Any]]) -> Path:
    path.mkdir()
    (path / RUN_FILE).write_text(json.dumps({"format": "pdarts-run/1", "kind": kind}))
    (path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def search_records(
    alphas: bool = True, sharpness: float = 1.0, collapse: bool = False
) -> list[dict[str, Any]]:
    return [
        search_record(stage, epoch, alphas, sharpness, collapse)
        for stage in (1, 2)
        for epoch in range(1, EPOCHS_PER_STAGE + 1)
    ]


VALID_TOP1 = (0.5, 0.8, 0.7)  # best on validation at epoch 2, while test rises to epoch 3


def train_record(epoch: int, valid: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": epoch,
        "lr": 0.025 * math.cos(epoch / 6),
        "drop_path_prob": 0.2 * epoch / 3,
        "train_loss": 2.0 / epoch,
        "train_top1": 0.40 + 0.1 * epoch,
        "test_loss": None if epoch == 2 else 2.2 / epoch,
        "test_top1": None if epoch == 2 else 0.35 + 0.1 * epoch,
        "test_top5": None if epoch == 2 else 0.80 + 0.05 * epoch,
        "seconds": 12.0,
    }
    if valid:
        record["valid_loss"] = 2.1 / epoch
        record["valid_top1"] = VALID_TOP1[epoch - 1]
        record["splits"] = {"train": 1000, "valid": 300, "test": 400}
    return record


def train_records(valid: bool = False) -> list[dict[str, Any]]:
    """Without ``valid``, as runs from before the validation split: no valid keys at all."""
    return [train_record(epoch, valid) for epoch in (1, 2, 3)]


@pytest.fixture
def search_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "search-run", "search", search_records())


@pytest.fixture
def train_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "train-run", "train", train_records())


def assert_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5 * 1024
    height, width = imread(path).shape[:2]
    assert height > 100
    assert width > 100
    return height, width


# ---------------------------------------------------------------------------------------------
# the pure parts


@pytest.mark.parametrize(
    ("stages", "epochs", "expected", "first"),
    [
        ([1, 1, 2, 2], [1, 2, 1, 2], [1, 2, 3, 4], {1: 1, 2: 3}),
        ([1, 1, 1, 2], [1, 2, 3, 1], [1, 2, 3, 4], {1: 1, 2: 4}),  # stages of different length
        ([1, 1, 2], [1, 2, 1], [1, 2, 3], {1: 1, 2: 3}),  # a run still in its second stage
        ([1, 2], [1, 1], [1, 2], {1: 1, 2: 2}),
        ([1, 1], [1, 2], [1, 2], {1: 1}),
    ],
)
def test_global_epochs(
    stages: list[int], epochs: list[int], expected: list[int], first: dict[int, int]
) -> None:
    assert global_epochs(stages, epochs) == (expected, first)


@pytest.mark.parametrize(("edges", "steps"), [(2, 1), (5, 2), (9, 3), (14, 4), (20, 5)])
def test_cell_steps(edges: int, steps: int) -> None:
    assert cell_steps(edges) == steps


@pytest.mark.parametrize("edges", [0, 1, 3, 13, 15])
def test_no_cell_has_that_many_edges(edges: int) -> None:
    assert cell_steps(edges) is None


def test_edge_endpoints_follow_the_supernet_order() -> None:
    # node0 <- {c_{k-2}, c_{k-1}}, node1 <- {.., node0}, ...: 2 + 3 + 4 + 5 edges
    endpoints = edge_endpoints(4)
    assert len(endpoints) == EDGES
    assert endpoints[:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert endpoints[-1] == (3, 4)


def test_a_dropped_op_ends_its_line(search_run: Path) -> None:
    source = search_run / METRICS_FILE
    reader = Metrics(source, read_metrics(source))
    alphas = reader.alphas([1, 2, 3, 4])
    for cell in CELL_TYPES:
        assert len(alphas[cell]) == EDGES
        for edge, series in enumerate(alphas[cell]):
            kept = stage_ops(2, edge)
            assert set(series) == set(DARTS_OPS)
            for op, (xs, ps) in series.items():
                assert xs == ([1, 2, 3, 4] if op in kept else [1, 2])
                assert all(0 < p < 1 for p in ps)


def test_nulls_become_gaps(search_run: Path) -> None:
    source = search_run / METRICS_FILE
    reader = Metrics(source, read_metrics(source))
    valid = reader.column("valid_loss", nullable=True)
    assert [math.isnan(v) for v in valid] == [True, False, True, False]
    with pytest.raises(RunDirError, match=r"line 1: 'alpha_loss' must be a number, got None"):
        reader.column("alpha_loss")


def test_file_names_are_runlogs() -> None:
    assert (RUN_FILE, METRICS_FILE) == (runlog.RUN_FILE, runlog.METRICS_FILE)


# ---------------------------------------------------------------------------------------------
# pictures


def test_search_picture_goes_beside_the_metrics(cli: typer.Typer, search_run: Path) -> None:
    result = invoke(cli, search_run)
    assert result.exit_code == 0, result.output
    assert lines(result) == [f"wrote {search_run / DEFAULT_PLOT_FILE}"]
    height, _ = assert_png(search_run / DEFAULT_PLOT_FILE)
    assert height > 1000  # the curves and 2 x 14 edge plots


def _alpha_axes(figure: Figure, cell_index: int) -> list[Axes]:
    """The edge plots of one cell, in supernet edge order: its panel holds a steps x
    (steps + 1) grid, row by row, below the curves' panel."""
    grid = figure.subfigs[1].subfigs[cell_index].axes
    columns = STEPS + 1
    axes = [grid[node * columns + input_] for node, input_ in edge_endpoints(STEPS)]
    assert all(  # nodes numbered as in DARTS strings: intermediate node j is node j + 2
        ax.get_title().endswith(f"→ {node + 2}")
        for ax, (node, _) in zip(axes, edge_endpoints(STEPS))
    )
    return axes


def _uniform_segments(ax: Axes) -> set[tuple[tuple[float, ...], float]]:
    """(x extent, y) of the dashed horizontal lines of a plot."""
    segments = set()
    for line in ax.get_lines():
        ys = [float(y) for y in line.get_ydata()]
        if line.get_linestyle() == "--" and len(set(ys)) == 1:
            segments.add((tuple(float(x) for x in line.get_xdata()), ys[0]))
    return segments


@pytest.mark.parametrize("sharpness", [0.3, 1.0])
def test_alpha_plots_are_scaled_to_their_data_with_the_uniform_level(
    tmp_path: Path, sharpness: float
) -> None:
    """Near-uniform alphas (0.3: all within 0.08..0.63) fill their plots; sharp ones (1.0)
    reach 0 or 1 on some edges, and their plots stop at 0..1."""
    run = write_run(tmp_path / "run", "search", search_records(sharpness=sharpness))
    source = run / METRICS_FILE
    lines_ = read_metrics(source)
    figure = search_figure(lines_, source, "search")
    alphas = Metrics(source, lines_).alphas([1, 2, 3, 4])
    for cell_index, cell in enumerate(CELL_TYPES):
        for ax, series in zip(_alpha_axes(figure, cell_index), alphas[cell]):
            values = [p for _, ps in series.values() for p in ps]
            low, high = min(values), max(values)
            margin = 0.1 * (high - low)
            bottom, top = ax.get_ylim()
            assert max(0.0, low - margin) <= bottom <= low
            assert high <= top <= min(1.0, high + margin)
            if sharpness < 1:
                assert 0.0 < bottom < top < 1.0
            assert _uniform_segments(ax) == {
                ((0.5, EPOCHS_PER_STAGE + 0.5), 1 / STAGE_OPS[0]),
                ((EPOCHS_PER_STAGE + 0.5, 2 * EPOCHS_PER_STAGE + 0.5), 1 / STAGE_OPS[1]),
            }
    (legend,) = figure.subfigs[1].legends
    assert UNIFORM_LABEL in [text.get_text() for text in legend.get_texts()]


def test_uniform_levels_count_each_stages_ops() -> None:
    series = {"a": ([1, 2, 3], [0.5, 0.6, 0.7]), "b": ([1, 2], [0.5, 0.4]), "c": ([1], [0.0])}
    spans = stage_spans({1: 1, 2: 3}, 3)
    assert spans == [(1, 2), (3, 3)]
    assert uniform_levels(series, spans) == [(1, 2, 1 / 3), (3, 3, 1.0)]
    assert uniform_levels({}, spans) == []


def test_alpha_limits_keep_a_band_for_flat_data_and_stay_in_0_1() -> None:
    flat = {"a": ([1], [0.25]), "b": ([1], [0.25])}
    bottom, top = alpha_limits(flat, [(1, 1, 0.25)])
    assert bottom < 0.25 < top
    assert top - bottom == pytest.approx(0.02)
    assert alpha_limits({"a": ([1, 2], [0.0, 1.0])}, []) == (0.0, 1.0)
    assert alpha_limits({}, []) == (0.0, 1.0)


def test_search_without_alphas_draws_the_curves(tmp_path: Path) -> None:
    run = write_run(tmp_path / "old", "search", search_records(alphas=False))
    height, _ = assert_png(plot_run(run))
    assert height < 1000  # no edge plots


def _diagnostic_axes(figure: Figure) -> dict[str, Axes]:
    """The diagnostics' plots by name, from the curves' panel (the figure's first)."""
    panel = figure.subfigs[0] if figure.subfigs else figure
    titles = {title: name for name, title in DIAGNOSTIC_TITLES.items()}
    return {titles[ax.get_title()]: ax for ax in panel.axes if ax.get_title() in titles}


def _ydata(ax: Axes, label: str) -> list[float]:
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return [float(y) for y in line.get_ydata()]


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


def test_collapse_diagnostics_are_drawn_per_cell_with_their_levels(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", "search", search_records(collapse=True))
    source = run / METRICS_FILE
    figure = search_figure(read_metrics(source), source, "search")
    axes = _diagnostic_axes(figure)
    assert set(axes) == {"skip", "entropy", "changed"}
    nan = math.nan
    gap = [1.0, 2.0, nan, 3.0, 4.0]  # no line joins two stages
    assert _same(_ydata(axes["skip"], "normal"), gap)
    assert _same(_ydata(axes["skip"], "max_skip (M)"), [2.0, 2.0, nan, 2.0, 2.0])
    assert _same(_ydata(axes["changed"], "normal"), [nan, 3.0, nan, nan, 3.0])  # none at 1st
    levels = _ydata(axes["entropy"], "ln k (k equal weights)")
    assert _same(levels, [math.log(8)] * 2 + [nan] + [math.log(3)] * 2)
    normal = _ydata(axes["entropy"], "normal")
    assert all(0 < h < level for h, level in zip(normal, levels) if not math.isnan(h))


def test_diagnostics_without_alphas_add_a_row_to_the_curves(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", "search", search_records(alphas=False, collapse=True))
    height, _ = assert_png(plot_run(run))
    assert 700 < height < 1000  # 4.5 inches of curves and 4 of diagnostics, at 100 dpi


def test_runs_from_before_the_diagnostics_draw_no_diagnostics(tmp_path: Path) -> None:
    run = write_run(tmp_path / "old", "search", search_records(alphas=False))
    source = run / METRICS_FILE
    assert _diagnostic_axes(search_figure(read_metrics(source), source, "search")) == {}


def test_a_run_resumed_by_a_newer_pdarts_draws_the_lines_that_have_them(tmp_path: Path) -> None:
    records = search_records(alphas=False, collapse=True)
    for record in records[:2]:  # stage 1 written before the diagnostics
        for key in diagnostics(1, 1):
            del record[key]
    run = write_run(tmp_path / "run", "search", records)
    source = run / METRICS_FILE
    axes = _diagnostic_axes(search_figure(read_metrics(source), source, "search"))
    assert _same(_ydata(axes["skip"], "normal"), [math.nan, math.nan, math.nan, 3.0, 4.0])
    assert _same(_ydata(axes["changed"], "reduce"), [math.nan] * 4 + [1.0])


def test_train_picture_goes_beside_the_metrics(train_run: Path) -> None:
    out = plot_run(train_run)
    assert out == train_run / DEFAULT_PLOT_FILE
    assert_png(out)


def test_train_picture_with_a_validation_split(tmp_path: Path) -> None:
    run = write_run(tmp_path / "valid-run", "train", train_records(valid=True))
    assert_png(plot_run(run))


def test_valid_keys_are_optional_and_nullable(tmp_path: Path) -> None:
    old = write_run(tmp_path / "old", "train", train_records())
    reader = Metrics(old / METRICS_FILE, read_metrics(old / METRICS_FILE))
    assert all(math.isnan(v) for v in reader.column("valid_top1", optional=True))
    with pytest.raises(RunDirError, match=r"line 1: 'valid_top1' is missing"):
        reader.column("valid_top1")
    new = write_run(tmp_path / "new", "train", train_records(valid=True))
    reader = Metrics(new / METRICS_FILE, read_metrics(new / METRICS_FILE))
    assert reader.column("valid_top1", optional=True) == list(VALID_TOP1)


def test_best_valid_epoch_is_the_earliest_highest_valid_top1() -> None:
    nan = math.nan
    assert best_valid_epoch([1, 2, 3], list(VALID_TOP1)) == 2
    assert best_valid_epoch([1, 2, 3, 4], [0.5, 0.9, nan, 0.9]) == 2
    assert best_valid_epoch([1, 2], [nan, nan]) is None  # no validation split


def test_the_accuracy_title_gives_the_last_epochs_test_top1() -> None:
    assert accuracy_title([1, 2, 3], [0.5, 0.9, 0.8512]) == (
        "accuracy (test top-1 after epoch 3: 85.12%)"
    )
    assert accuracy_title([1, 2], [0.5, math.nan]) == "accuracy"


@pytest.mark.parametrize("flag", ["--out", "-o"])
def test_cli_out(cli: typer.Typer, train_run: Path, tmp_path: Path, flag: str) -> None:
    out = tmp_path / "curves-of-train.png"
    result = invoke(cli, train_run, flag, out)
    assert result.exit_code == 0, result.output
    assert lines(result) == [f"wrote {out}"]
    assert_png(out)
    assert not (train_run / DEFAULT_PLOT_FILE).exists()


def test_svg(train_run: Path, tmp_path: Path) -> None:
    out = plot_run(train_run, tmp_path / "train.svg")
    assert out.read_text().lstrip().startswith("<?xml")


def test_cli_does_not_import_matplotlib_or_torch() -> None:
    code = (
        "import sys, pdarts_cli.cli.plot, pdarts_cli.plotting; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'torch'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# errors: one line through the CLI


def replace_line(run: Path, number: int, text: str) -> None:
    path = run / METRICS_FILE
    rows = path.read_text().splitlines()
    rows[number - 1] = text
    path.write_text("\n".join(rows) + "\n")


def edit_record(run: Path, number: int, **changes: Any) -> None:
    path = run / METRICS_FILE
    record = json.loads(path.read_text().splitlines()[number - 1])
    replace_line(run, number, json.dumps({**record, **changes}))


Breaker = Callable[[Path, Path], list[str]]  # (run, tmp_path) -> extra CLI args


def no_run_json(run: Path, tmp_path: Path) -> list[str]:
    (run / RUN_FILE).unlink()
    return []


def bad_run_json(run: Path, tmp_path: Path) -> list[str]:
    (run / RUN_FILE).write_text("{kind: search")
    return []


def unknown_kind(run: Path, tmp_path: Path) -> list[str]:
    (run / RUN_FILE).write_text(json.dumps({"kind": "eval"}))
    return []


def no_metrics(run: Path, tmp_path: Path) -> list[str]:
    (run / METRICS_FILE).unlink()
    return []


def empty_metrics(run: Path, tmp_path: Path) -> list[str]:
    (run / METRICS_FILE).write_text("\n  \n")
    return []


def truncated_line(run: Path, tmp_path: Path) -> list[str]:
    replace_line(run, 3, '{"stage": 2, "epoch": 1, "lr": 0.0')  # a killed writer
    return []


def not_an_object(run: Path, tmp_path: Path) -> list[str]:
    replace_line(run, 2, "[1, 2]")
    return []


def missing_field(run: Path, tmp_path: Path) -> list[str]:
    path = run / METRICS_FILE
    record = json.loads(path.read_text().splitlines()[1])
    del record["train_loss"]
    replace_line(run, 2, json.dumps(record))
    return []


def text_for_number(run: Path, tmp_path: Path) -> list[str]:
    edit_record(run, 4, valid_loss="n/a")
    return []


def zero_epoch(run: Path, tmp_path: Path) -> list[str]:
    edit_record(run, 1, epoch=0)
    return []


def bad_alphas(run: Path, tmp_path: Path) -> list[str]:
    edit_record(run, 2, alphas={"normal": [{"none": "high"}], "reduce": []})
    return []


def odd_edge_count(run: Path, tmp_path: Path) -> list[str]:
    for number in (1, 2, 3, 4):
        edit_record(run, number, alphas={"normal": [{"none": 1.0}] * 13})
    return []


def bad_skip_connects(run: Path, tmp_path: Path) -> list[str]:
    edit_record(run, 2, skip_connects=3)
    return []


def text_for_changed_edges(run: Path, tmp_path: Path) -> list[str]:
    edit_record(run, 3, changed_edges={"normal": "two"})
    return []


def bad_entropy(run: Path, tmp_path: Path) -> list[str]:
    edit_record(run, 4, edge_entropy={"normal": [0.5, None]})
    return []


def out_folder_missing(run: Path, tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "nowhere" / "curves.png")]


def out_is_a_folder(run: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "taken.png").mkdir()
    return ["--out", str(tmp_path / "taken.png")]


def out_wrong_suffix(run: Path, tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "curves.jpg")]


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        (no_run_json, "is not a pdarts run directory (no run.json)"),
        (bad_run_json, "run.json is not valid JSON"),
        (unknown_kind, "unknown run kind 'eval'; pdarts plot draws search and train runs"),
        (no_metrics, "has no metrics yet (metrics.jsonl is missing or empty)"),
        (empty_metrics, "has no metrics yet (metrics.jsonl is missing or empty)"),
        (truncated_line, "metrics.jsonl line 3 is not valid JSON"),
        (not_an_object, "metrics.jsonl line 2 is not a JSON object"),
        (missing_field, "metrics.jsonl line 2: 'train_loss' is missing"),
        (text_for_number, "line 4: 'valid_loss' must be a number or null, got 'n/a'"),
        (zero_epoch, "line 1: 'epoch' must be a positive integer, got 0"),
        (bad_alphas, "line 2: alphas.normal.0 must map ops to numbers"),
        (odd_edge_count, "alphas.normal lists 13 edges; a DARTS cell has 2, 5, 9, 14, ... edges"),
        (bad_skip_connects, "line 2: 'skip_connects' must map cell types to numbers"),
        (text_for_changed_edges, "line 3: changed_edges.normal must be a number, got 'two'"),
        (bad_entropy, "line 4: edge_entropy.normal must be a list of numbers"),
        (out_folder_missing, "nowhere does not exist"),
        (out_is_a_folder, "taken.png: it is a folder"),
        (out_wrong_suffix, "must end in .png, .svg, .pdf"),
    ],
)
def test_errors_are_one_line(
    cli: typer.Typer, search_run: Path, tmp_path: Path, breaker: Breaker, message: str
) -> None:
    extra = breaker(search_run, tmp_path)
    line = assert_one_error_line(invoke(cli, search_run, *extra))
    assert message in line


def test_a_missing_run_dir_is_one_line(cli: typer.Typer, tmp_path: Path) -> None:
    line = assert_one_error_line(invoke(cli, tmp_path / "no-such-run"))
    assert "no-such-run is not a pdarts run directory" in line


def test_a_failed_write_is_one_line(
    cli: typer.Typer, train_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    def refuse(self: Figure, path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Figure, "savefig", refuse)  # permissions do not stop root
    line = assert_one_error_line(invoke(cli, train_run))
    assert line.endswith(f"cannot write {train_run / DEFAULT_PLOT_FILE}: Permission denied")

"""``pdarts profile-memory``: each stage's peak memory, and the batch that fits."""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from pdarts_cli.cli.errors import user_errors
from pdarts_cli.cli.options import (
    Device,
    data_dir_option,
    device_option,
    thread_request,
    threads_option,
)

if TYPE_CHECKING:
    from pdarts_cli.memory import Measurement, MemoryProfile, ProbeReport, StageProfile


@user_errors
def profile_memory(
    schedule: Annotated[
        str, typer.Option("--schedule", "-s", metavar="NAME|FILE", help="Preset or schedule file.")
    ] = "paper-cifar10",
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Measure on this data (default: synthetic 32x32)."),
    ] = None,
    data_dir: Annotated[Path | None, data_dir_option()] = None,
    batch_sizes: Annotated[
        str | None,
        typer.Option(
            "--batch-sizes",
            help="Comma-separated batch sizes to measure (default: 4,8,16 on the CPU, "
            "16,32,64 on a GPU).",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="Memory to fit in, e.g. 16GiB (default: the GPU's memory, or the RAM "
            "available now, less 10%).",
        ),
    ] = None,
    device: Annotated[Device, device_option()] = Device.auto,
    threads: Annotated[str | None, threads_option()] = None,
    checkpoint_cells: Annotated[
        bool, typer.Option("--checkpoint-cells", help="Profile with cell checkpointing on.")
    ] = False,
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="Measure each stage again at its pick (slow on a CPU)."),
    ] = False,
    write_schedule: Annotated[
        Path | None,
        typer.Option(
            "--write-schedule",
            metavar="FILE",
            help="Write the schedule with each stage's recommended batch to this .json file, "
            "for `pdarts search --schedule FILE`.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for scripts).")
    ] = False,
) -> None:
    """Measure each stage's peak memory; pick batches that fit.

    Each measurement runs in a fresh child process: one search iteration (alpha step and
    weight step) of every stage at a few small batch sizes (two iterations on a GPU). A fit
    of memory = a + b * batch gives each stage the largest batch within the budget and at
    most the schedule's; --confirm measures it again. Which ops survive is known only during
    a search, so later stages hold the k most memory-hungry candidates on every edge (k: the
    stage's ops per edge), an upper bound.
    """
    from pdarts_cli.memory import parse_batch_sizes, parse_size, schedule_with_picks
    from pdarts_cli.memory import profile_memory as profile
    from pdarts_cli.schedule import load_schedule, write_schedule_file

    sizes = parse_batch_sizes(batch_sizes) if batch_sizes is not None else None
    budget_bytes = parse_size(budget) if budget is not None else None
    resolved = load_schedule(schedule)
    if checkpoint_cells:
        resolved = resolved.with_overrides(checkpoint_cells=True)
    thread_count = thread_request(threads)
    progress = Console(stderr=True, highlight=False)

    def show(report: ProbeReport) -> None:
        """Each child run as it finishes, on a terminal (not with --json, nor into a pipe or
        a log, where the output is the report or one error line)."""
        progress.print(probe_line(report), soft_wrap=True)

    result = profile(
        resolved,
        sizes,
        budget_bytes,
        device.value,
        dataset,
        data_dir,
        threads=thread_count,
        report=show if progress.is_terminal and not as_json else None,
        confirm=confirm,
    )
    if write_schedule is not None:
        write_schedule_file(schedule_with_picks(resolved, result), write_schedule)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console = Console(highlight=False)
    console.print(memory_report(result))
    console.print(
        "\nto search with these batch sizes:\n  "
        + search_command(schedule, dataset, result, write_schedule),
        soft_wrap=True,
    )


def probe_line(report: ProbeReport) -> str:
    """One finished child run: ``stage 2, batch 32: 1,234 MiB in 9.1 s (4 of 12, about 1 min
    left)``."""
    measured = report.measurement
    what = {
        "measure": f"batch {measured.batch_size}",
        "idle": "idle baseline",
        "confirm": f"batch {measured.batch_size}, confirming the pick",
    }[report.kind]
    figure = measured.peak_bytes if report.kind != "idle" else measured.rss_bytes
    peak = "out of memory" if figure is None else f"{figure / 2**20:,.0f} MiB"
    left = f", about {_duration(report.eta_seconds)} left" if report.done < report.total else ""
    return (
        f"stage {report.stage}, {what}: {peak} in {report.seconds:.1f} s "
        f"({report.done} of {report.total}{left})"
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def search_command(
    schedule: str, dataset: str | None, result: MemoryProfile, written: Path | None
) -> str:
    """The `pdarts search` command line that uses the recommended batch sizes."""
    words = ["pdarts", "search", "--dataset", shlex.quote(dataset) if dataset else "DATASET"]
    if written is not None:
        return " ".join([*words, "--schedule", shlex.quote(str(written))])
    picks = ",".join(str(stage.recommended_batch) for stage in result.stages)
    return " ".join([*words, "--schedule", shlex.quote(schedule), "--batch-size", picks])


@dataclass(frozen=True)
class _Unit:
    """How the table writes sizes: MiB, or GiB to one decimal once figures reach tens of GiB
    (six-digit MiB figures would not fit 80 columns)."""

    name: str
    size_bytes: int
    decimals: int

    @classmethod
    def for_figures(cls, largest_bytes: float) -> _Unit:
        return cls("GiB", 2**30, 1) if largest_bytes >= 10 * 2**30 else cls("MiB", 2**20, 0)

    def __call__(self, size_bytes: float) -> str:
        return f"{size_bytes / self.size_bytes:,.{self.decimals}f}"


def memory_report(result: MemoryProfile) -> Group:
    """The table, then what an asterisk means (when one is shown) and which candidates each
    stage was profiled with."""
    runs = [
        m
        for stage in result.stages
        for m in (*stage.measurements, *([stage.confirmation] if stage.confirmation else []))
    ]
    over = any(m.peak_bytes is not None and m.peak_bytes > result.budget_bytes for m in runs)
    notes = [
        *(["* over the budget"] if over else []),
        *_pick_notes(result.stages),
        *_candidates_notes(result.stages),
    ]
    return Group(memory_table(result), Text("\n".join(notes)))


def memory_table(result: MemoryProfile) -> Table:
    """The profile as a table that fits 80 columns (up to four or five batch sizes)."""
    unit = _Unit.for_figures(max(_figures_bytes(result)))
    title = (
        f"{result.schedule} on {result.device}: {result.metric} in {unit.name} "
        f"(budget {unit(result.budget_bytes)} {unit.name}"
        f"{', cells checkpointed' if result.checkpoint_cells else ''})"
    )
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    sizes = [m.batch_size for m in result.stages[0].measurements] if result.stages else []
    headers = ["stage", "cells\n/ops", *(f"batch\n{b}" for b in sizes), "idle", "MiB\n/img"]
    for header in [*headers, "pick", "pred\n/meas"]:
        table.add_column(header, justify="right", no_wrap=True)
    for stage in result.stages:
        table.add_row(
            str(stage.stage),
            f"{stage.cells}/{stage.ops_per_edge}",
            *(_peak_cell(m, result.budget_bytes, unit) for m in stage.measurements),
            unit(stage.idle_bytes),
            f"{stage.slope_bytes / 2**20:.2f}",
            str(stage.recommended_batch),
            _check_cell(stage, result.budget_bytes, unit),
        )
    return table


def _figures_bytes(result: MemoryProfile) -> list[float]:
    """Every size the table shows."""
    figures: list[float] = [result.budget_bytes]
    for stage in result.stages:
        runs = [*stage.measurements, *([stage.confirmation] if stage.confirmation else [])]
        figures += [m.peak_bytes for m in runs if m.peak_bytes is not None]
        if stage.recommended_batch:
            figures.append(stage.predict(stage.recommended_batch))
    return figures


def _peak_cell(measurement: Measurement, budget_bytes: int, unit: _Unit) -> str:
    if measurement.peak_bytes is None:
        return "[red]OOM[/]"
    if measurement.peak_bytes > budget_bytes:
        return f"[red]{unit(measurement.peak_bytes)}*[/]"
    return f"[green]{unit(measurement.peak_bytes)}[/]"


def _check_cell(stage: StageProfile, budget_bytes: int, unit: _Unit) -> str:
    """Predicted against measured at the recommended batch; ``*`` when the measurement
    exceeds the budget (the fit was optimistic)."""
    batch, confirmation = stage.recommended_batch, stage.confirmation
    if not batch or confirmation is None or not confirmation.peak_bytes:
        return "-"
    measured = unit(confirmation.peak_bytes)
    if confirmation.peak_bytes > budget_bytes:
        measured = f"[red]{measured}*[/]"
    return f"{unit(stage.predict(batch))}/{measured}"


def _pick_notes(stages: tuple[StageProfile, ...]) -> list[str]:
    """What a pick is, and the larger batches that also fit when the cap held them back."""
    lines = ["pick: the largest batch within the budget, at most the schedule's"]
    larger = [
        f"stage {s.stage} up to {s.largest_fitting_batch:,}"
        for s in stages
        if s.largest_fitting_batch
        and s.recommended_batch
        and s.largest_fitting_batch > s.recommended_batch
    ]
    if larger:
        lines.append(
            f"larger batches fit ({', '.join(larger)}); `pdarts search --batch-size auto-max` "
            "may raise a stage's batch, as far as min_weight_steps allows, and scales its "
            "learning rates"
        )
    return lines


def _stage_range(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"stage {numbers[0]}"
    return f"stages {numbers[0]}-{numbers[-1]}"


def _candidates_notes(stages: tuple[StageProfile, ...]) -> list[str]:
    """Which candidates the stages were profiled with: a line per run of consecutive stages of
    one kind, then each stage's ops unless it held them all."""
    lines = []
    for source, run in itertools.groupby(stages, key=lambda s: s.candidates.source):
        group = list(run)
        where = _stage_range([s.stage for s in group])
        if source == "all":
            lines.append(f"{where}: all {len(group[0].candidates.ops)} candidates on every edge")
            continue
        if source == "upper bound":
            lines.append(
                f"{where}: the k most memory-hungry candidates on every edge (upper bound)"
            )
        else:
            lines.append(f"{where}: the survivors of the stage before")
        lines += [f"  {s.stage}: {', '.join(s.candidates.ops)}" for s in group]
    return lines

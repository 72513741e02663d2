"""``pdarts profile-memory``: each stage's peak memory, and the batch that fits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdarts_cli.cli._errors import user_errors
from pdarts_cli.cli.search import Device


@user_errors
def profile_memory(
    schedule: Annotated[
        str, typer.Option("--schedule", "-s", metavar="NAME|FILE", help="Preset or schedule file.")
    ] = "paper-cifar10",
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Measure on this data (default: synthetic 32x32)."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", envvar="PDARTS_DATA")] = None,
    batch_sizes: Annotated[
        str, typer.Option("--batch-sizes", help="Comma-separated batch sizes to measure.")
    ] = "16,32,64",
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget", help="Memory to fit in, e.g. 16GiB (default: the device's memory less 10%)."
        ),
    ] = None,
    device: Annotated[Device, typer.Option("--device")] = Device.auto,
    checkpoint_cells: Annotated[
        bool, typer.Option("--checkpoint-cells", help="Profile with cell checkpointing on.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure, in fresh child processes, the peak memory of one search iteration (alpha step
    and weight step) of every stage at several batch sizes; fit memory = a + b * batch and
    recommend the largest batch that fits the budget, measured again to confirm."""
    from pdarts_cli.memory import mib, parse_batch_sizes, parse_size
    from pdarts_cli.memory import profile_memory as profile
    from pdarts_cli.schedule import load_schedule

    sizes = parse_batch_sizes(batch_sizes)
    budget_bytes = parse_size(budget) if budget is not None else None
    resolved = load_schedule(schedule)
    if checkpoint_cells:
        resolved = resolved.with_overrides(checkpoint_cells=True)
    result = profile(resolved, sizes, budget_bytes, device.value, dataset, data_dir)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console = Console(highlight=False)
    title = (
        f"{result.schedule} on {result.device}: {result.metric} in MiB "
        f"(budget {mib(result.budget_bytes):,.0f} MiB"
        f"{', cells checkpointed' if result.checkpoint_cells else ''})"
    )
    table = Table(title=title)
    table.add_column("stage", justify="right")
    table.add_column("cells/ops", justify="right")
    for size in sizes:
        table.add_column(f"batch {size}", justify="right")
    table.add_column("idle", justify="right")
    table.add_column("MiB/img", justify="right")
    table.add_column("best batch", justify="right")
    table.add_column("pred/meas", justify="right")
    for stage in result.stages:
        cells = []
        for m in stage.measurements:
            if m.peak_bytes is None:
                cells.append("[red]OOM[/]")
                continue
            fits = m.peak_bytes <= result.budget_bytes
            cells.append(f"{mib(m.peak_bytes):,.0f} {'[green]fits[/]' if fits else '[red]no[/]'}")
        check = "-"
        if stage.recommended_batch and stage.confirmation and stage.confirmation.peak_bytes:
            check = (
                f"{mib(stage.predict(stage.recommended_batch)):,.0f}/"
                f"{mib(stage.confirmation.peak_bytes):,.0f}"
            )
        table.add_row(
            str(stage.stage),
            f"{stage.cells}/{stage.ops_per_edge}",
            *cells,
            f"{mib(stage.idle_bytes):,.0f}",
            f"{mib(stage.slope_bytes):.2f}",
            str(stage.recommended_batch),
            check,
        )
    console.print(table)

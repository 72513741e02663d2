"""``pdarts schedule show|schema|list``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdarts_cli.cli.errors import user_errors
from pdarts_cli.cli.help_format import Command, Group
from pdarts_cli.cli.options import set_option
from pdarts_cli.overrides import parse_overrides, with_overrides
from pdarts_cli.schedule import PRESETS, Schedule, load_schedule, schedule_json

app = typer.Typer(
    help="Search schedules: presets, files and their JSON Schema.",
    no_args_is_help=True,
    cls=Group,
)


def schedule_table(schedule: Schedule) -> Table:
    table = Table(title=f"schedule {schedule.name}")
    for column in (
        "stage",
        "cells",
        "ops/edge",
        "skip dropout",
        "epochs",
        "warm-up",
        "batch",
        "channels",
    ):
        table.add_column(column, justify="right")
    for k, s in enumerate(schedule.stages, start=1):
        table.add_row(
            str(k),
            str(s.cells),
            str(s.ops_per_edge),
            f"{s.skip_dropout_rate:g}",
            str(s.epochs),
            str(s.warmup_epochs),
            str(s.batch_size),
            str(s.channels),
        )
    return table


def _settings(schedule: Schedule) -> str:
    w, a = schedule.weights, schedule.alphas
    return "\n".join(
        [
            f"candidate ops: {', '.join(schedule.candidate_ops)}",
            f"weights: SGD lr {w.lr:g} -> {w.lr_min:g} (cosine), momentum {w.momentum:g}, "
            f"weight decay {w.weight_decay:g}, clip {w.grad_clip_norm:g}",
            f"alphas: Adam lr {a.lr:g}, betas {a.betas[0]:g}/{a.betas[1]:g}, weight decay "
            f"{a.weight_decay:g}, clip {a.grad_clip_norm:g}, {a.order} order",
            f"skip dropout decay: {schedule.skip_dropout_decay.kind} "
            f"(factor {schedule.skip_dropout_decay.factor:g})",
            f"data: {schedule.data.train_portion:g} of train for weights, crop padding "
            f"{schedule.data.crop_padding}, flip {schedule.data.horizontal_flip}",
            f"seed {schedule.seed}, {schedule.steps} steps per cell, amp {schedule.amp}, "
            f"channels_last {schedule.channels_last}",
        ]
    )


@app.command("show", cls=Command)
@user_errors
def show(
    schedule: Annotated[
        str, typer.Argument(metavar="NAME|FILE", help="A preset name or a .toml/.json file.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a schedule file that loads back unchanged.")
    ] = False,
    overrides: Annotated[
        list[str] | None, set_option("schedule", "alphas.order=second, stages.1.epochs=5")
    ] = None,
) -> None:
    """Print a schedule with every default resolved."""
    resolved = load_schedule(schedule)
    if overrides:
        resolved = with_overrides(resolved, parse_overrides(overrides), source="--set")
    if as_json:
        typer.echo(schedule_json(resolved), nl=False)
        return
    console = Console()
    console.print(schedule_table(resolved))
    console.print(_settings(resolved), highlight=False)


@app.command("schema", cls=Command)
def schema() -> None:
    """Print the JSON Schema of schedule files."""
    typer.echo(json.dumps(Schedule.model_json_schema(), indent=2))


@app.command("list", cls=Command)
def list_presets() -> None:
    """List the built-in schedules."""
    for name, make in PRESETS.items():
        s = make()
        cells = "/".join(str(stage.cells) for stage in s.stages)
        typer.echo(
            f"{name:16} {len(s.stages)} stages, {cells} cells, {s.stages[0].epochs} epochs each"
        )

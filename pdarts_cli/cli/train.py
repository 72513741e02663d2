"""``pdarts train`` and ``pdarts evaluate``."""

from __future__ import annotations

import datetime as dt
import functools
import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdarts_cli.cli.errors import fail, interrupted, user_errors
from pdarts_cli.cli.help_format import field_help
from pdarts_cli.cli.launch import handover_to_torchrun, is_main_rank, launched_by_torchrun
from pdarts_cli.cli.options import (
    Device,
    data_dir_option,
    device_option,
    download_option,
    set_option,
    thread_request,
    threads_option,
)
from pdarts_cli.overrides import parse_overrides, with_overrides
from pdarts_cli.training.recipe import Recipe, adapt_to_dataset, load_recipe, recipe_for_dataset

if TYPE_CHECKING:
    from pdarts_cli.genotype import Genotype
    from pdarts_cli.training import TrainObserver, TrainOptions, TrainState


def _default_out() -> Path:
    return Path("runs") / dt.datetime.now().strftime("train-%Y%m%d-%H%M%S")


@user_errors
def train(
    genotype: Annotated[
        str,
        typer.Argument(
            metavar="GENOTYPE|RUN_DIR",
            help="A genotype file, a search's run directory (its genotype.json, the refined "
            "P-DARTS genotype), a DARTS string or a zoo name.",
        ),
    ],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="cifar10, cifar100, digits, npz:PATH, imagefolder:PATH, imagenet, or a "
            "plugin's dataset (with --resume: the run's own, or none).",
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            "-r",
            metavar="NAME|FILE",
            help="paper-cifar, paper-cifar-large, paper-imagenet, quick, or a file.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory to create.")
    ] = None,
    data_dir: Annotated[Path | None, data_dir_option()] = None,
    download: Annotated[bool, download_option()] = False,
    device: Annotated[Device, device_option()] = Device.auto,
    threads: Annotated[str | None, threads_option()] = None,
    channels: Annotated[
        int | None, typer.Option("--channels", help=field_help(Recipe, "channels"))
    ] = None,
    layers: Annotated[
        int | None, typer.Option("--layers", help=field_help(Recipe, "layers"))
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help=field_help(Recipe, "epochs"))
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help=field_help(Recipe, "batch_size"))
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help=field_help(Recipe, "lr"))] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help=field_help(Recipe, "weight_decay"))
    ] = None,
    auxiliary_weight: Annotated[
        float | None,
        typer.Option("--auxiliary-weight", help=field_help(Recipe, "auxiliary_weight")),
    ] = None,
    drop_path_prob: Annotated[
        float | None, typer.Option("--drop-path-prob", help=field_help(Recipe, "drop_path_prob"))
    ] = None,
    cutout: Annotated[
        int | None, typer.Option("--cutout", help=field_help(Recipe, "cutout"))
    ] = None,
    ema_decay: Annotated[
        float | None, typer.Option("--ema-decay", help=field_help(Recipe, "ema_decay"))
    ] = None,
    valid_portion: Annotated[
        float | None,
        typer.Option(
            "--valid-portion",
            help="Hold out this part of the training set (stratified) to choose "
            "best.safetensors on (default 0: none).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help=field_help(Recipe, "seed"))] = None,
    overrides: Annotated[
        list[str] | None, set_option("recipe", "epochs=600, lr_schedule=linear")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the network's size and exit; reads no data.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: JSON output.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Continue a killed training run from its last.safetensors (GENOTYPE must be "
            "the run's own; the run keeps its settings: only --device and --data-dir may "
            "change).",
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option("--nproc", min=1, help="Processes on this machine (hands over to torchrun)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing run in --out.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Train a genotype's evaluation network as the paper does.

    CIFAR or ImageNet networks with the paper's recipes, from one CPU to many GPUs
    (DistributedDataParallel under torchrun, or --nproc). Writes final.safetensors, the network
    after the last epoch.
    """
    from pdarts_cli.genotype import load_genotype
    from pdarts_cli.training import TrainOptions, resume_training, run_training

    flags = {
        "channels": channels,
        "layers": layers,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "auxiliary_weight": auxiliary_weight,
        "drop_path_prob": drop_path_prob,
        "cutout": cutout,
        "ema_decay": ema_decay,
        "valid_portion": valid_portion,
        "seed": seed,
    }
    if resume is not None:
        given = {"recipe": recipe, "dataset": dataset, "out": out, "set": overrides, **flags}
        switches = {"download": download, "force": force, "dry_run": dry_run}
        _refuse_resume_flags(resume, given | {k: v or None for k, v in switches.items()})
    elif dataset is None:
        raise fail("give --dataset (for example --dataset digits), or --resume RUN_DIR")
    if nproc is not None and nproc > 1 and not launched_by_torchrun():
        handover_to_torchrun(nproc)
        return
    resolved_genotype = load_genotype(genotype)
    thread_count = thread_request(threads)
    console = Console(highlight=False)
    command = f"train {shlex.quote(genotype)}"
    if resume is not None:
        start = functools.partial(
            resume_training,
            resume,
            resolved_genotype,
            device.value,
            data_dir=data_dir,
            threads=thread_count,
        )
        _train(console, quiet, command, resume, start)
        return
    assert dataset is not None  # refused above
    resolved = load_recipe(recipe or recipe_for_dataset(dataset)).with_overrides(**flags)
    resolved = adapt_to_dataset(resolved, dataset, flags)
    if overrides:
        resolved = with_overrides(resolved, parse_overrides(overrides), source="--set")
    if dry_run:
        options = TrainOptions(dataset=dataset, data_dir=data_dir)
        _print_size(console, resolved_genotype, resolved, options, as_json)
        return
    options = TrainOptions(
        dataset=dataset,
        data_dir=data_dir,
        download=download,
        device=device.value,
        threads=thread_count,
    )
    run_dir = out or _default_out()
    start = functools.partial(run_training, resolved_genotype, resolved, options, run_dir, force)
    _train(console, quiet, command, run_dir, start)


def _refuse_resume_flags(run_dir: Path, given: Mapping[str, object]) -> None:
    """``--resume`` keeps the run's settings: every flag in ``given`` that is set is refused,
    but for a ``--dataset`` that names the run's own (a resume command may repeat it)."""
    from pdarts_cli.context import refuse_resume_flags, resume_record

    if given["dataset"] is not None:
        started_on = resume_record(run_dir, "train")["options"]["dataset"]
        given = {**given, "dataset": None if given["dataset"] == started_on else given["dataset"]}
    refuse_resume_flags(given)


def _print_size(
    console: Console, genotype: Genotype, recipe: Recipe, options: TrainOptions, as_json: bool
) -> None:
    """``--dry-run``: the network's size, as a table or as JSON."""
    from pdarts_cli.training import dry_run

    summary = dry_run(genotype, recipe, options)
    report = {
        "parameters": summary.parameters,
        "parameters_with_auxiliary": summary.parameters_with_auxiliary,
        "multiply_adds": summary.multiply_adds,
        "image_size": summary.image_size,
        "num_classes": summary.num_classes,
        "network": recipe.network,
        "channels": recipe.channels,
        "layers": recipe.layers,
    }
    if as_json:
        typer.echo(json.dumps(report))
        return
    shape = f"{recipe.channels} channels, {recipe.layers} cells"
    table = Table(title=f"{recipe.network} network, {shape}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("parameters (auxiliary head excluded)", f"{summary.parameters:,}")
    table.add_row("parameters (with auxiliary head)", f"{summary.parameters_with_auxiliary:,}")
    table.add_row(
        f"multiply-adds, one {summary.image_size}x{summary.image_size} image",
        f"{summary.multiply_adds:,}",
    )
    console.print(table)


def _train(
    console: Console,
    quiet: bool,
    command: str,
    run_dir: Path,
    start: Callable[[TrainObserver], TrainState],
) -> None:
    """Run ``start`` with a progress display (rank 0 only, none when ``quiet``), then print
    its summary; Ctrl-C says how to continue (``pdarts COMMAND --resume RUN_DIR``)."""
    from pdarts_cli.cli.train_progress import TrainConsoleObserver, summary_table
    from pdarts_cli.training import TrainObserver, count_parameters

    rendering = TrainConsoleObserver(console, live=console.is_terminal)
    main_rank = is_main_rank()  # under torchrun only rank 0 renders
    observer = rendering if main_rank and not quiet else TrainObserver()
    try:
        state = start(observer)
    except KeyboardInterrupt as exc:
        raise interrupted(command, run_dir, exc) from None
    finally:
        rendering.close()
    if state.history and main_rank and not quiet:
        console.print(summary_table(state, count_parameters(state.model), run_dir))


@user_errors
def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT",
            help="A run's final.safetensors (the network to report), best.safetensors or "
            "last.safetensors.",
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help="The dataset whose test split is scored (as in training)."
        ),
    ],
    data_dir: Annotated[Path | None, data_dir_option()] = None,
    device: Annotated[Device, device_option()] = Device.auto,
    threads: Annotated[str | None, threads_option()] = None,
) -> None:
    """Score a checkpoint: top-1 and top-5 on the test split."""
    from pdarts_cli.training import TrainOptions, evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint,
        TrainOptions(
            dataset=dataset,
            data_dir=data_dir,
            device=device.value,
            threads=thread_request(threads),
        ),
    )
    Console(highlight=False).print(
        f"{checkpoint} on {dataset} ({result.images} test images): top-1 "
        f"{100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}%, loss {result.loss:.4f}",
        soft_wrap=True,
    )

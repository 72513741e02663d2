"""``pdarts train`` and ``pdarts evaluate``."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdarts_cli.cli._errors import interrupted, user_errors
from pdarts_cli.cli._help import field_help
from pdarts_cli.cli._options import Device, data_dir_option, device_option, download_option
from pdarts_cli.train.recipe import Recipe

RECIPE_FLAGS = (
    "channels",
    "layers",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "auxiliary_weight",
    "drop_path_prob",
    "cutout",
    "weight_decay",
    "ema_decay",
    "valid_portion",
)


def _default_out() -> Path:
    return Path("runs") / dt.datetime.now().strftime("train-%Y%m%d-%H%M%S")


def _handover_to_torchrun(nproc: int) -> None:
    """Re-run this command under torch's own launcher with ``nproc`` processes."""
    from torch.distributed.run import main as torchrun

    args, kept = sys.argv[1:], []
    for i, arg in enumerate(args):
        if arg == "--nproc" or arg.startswith("--nproc=") or args[i - 1 : i] == ["--nproc"]:
            continue
        kept.append(arg)
    torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "pdarts_cli", *kept])


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
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="cifar10, cifar100, digits, npz:PATH, imagefolder:PATH, imagenet, or a "
            "plugin's dataset.",
        ),
    ],
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
            "the run's own; other flags are taken from the run).",
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option("--nproc", help="Processes on this machine (hands over to torchrun)."),
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
    from pdarts_cli.train.recipe import adapt_to_dataset, load_recipe, recipe_for_dataset

    if nproc is not None and nproc > 1 and "WORLD_SIZE" not in os.environ:
        _handover_to_torchrun(nproc)
        return
    resolved_genotype = load_genotype(genotype)
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
    resolved = load_recipe(recipe or recipe_for_dataset(dataset)).with_overrides(**flags)
    resolved = adapt_to_dataset(resolved, dataset, flags)
    console = Console(highlight=False)
    if dry_run:
        from pdarts_cli.train import TrainOptions
        from pdarts_cli.train import dry_run as size_network

        summary = size_network(
            resolved_genotype, resolved, TrainOptions(dataset=dataset, data_dir=data_dir)
        )
        report = {
            "parameters": summary.parameters,
            "parameters_with_auxiliary": summary.parameters_with_auxiliary,
            "multiply_adds": summary.multiply_adds,
            "image_size": summary.image_size,
            "num_classes": summary.num_classes,
            "network": resolved.network,
            "channels": resolved.channels,
            "layers": resolved.layers,
        }
        if as_json:
            typer.echo(json.dumps(report))
            return
        shape = f"{resolved.channels} channels, {resolved.layers} cells"
        table = Table(title=f"{resolved.network} network, {shape}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        table.add_row("parameters (auxiliary head excluded)", f"{summary.parameters:,}")
        table.add_row("parameters (with auxiliary head)", f"{summary.parameters_with_auxiliary:,}")
        table.add_row(
            f"multiply-adds, one {summary.image_size}x{summary.image_size} image",
            f"{summary.multiply_adds:,}",
        )
        console.print(table)
        return

    from pdarts_cli.cli.train_progress import TrainConsoleObserver, summary_table
    from pdarts_cli.train import TrainOptions, resume_training, run_training
    from pdarts_cli.train.network import count_parameters
    from pdarts_cli.train.trainer import TrainObserver

    rendering = TrainConsoleObserver(console, live=console.is_terminal)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 renders
    observer = rendering if main_rank and not quiet else TrainObserver()
    run_dir = resume if resume is not None else (out or _default_out())
    try:
        if resume is not None:
            state = resume_training(resume, resolved_genotype, device.value, observer)
        else:
            options = TrainOptions(
                dataset=dataset, data_dir=data_dir, download=download, device=device.value
            )
            state = run_training(resolved_genotype, resolved, options, run_dir, force, observer)
    except KeyboardInterrupt:
        raise interrupted(f"train {shlex.quote(genotype)}", run_dir) from None
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
) -> None:
    """Score a checkpoint: top-1 and top-5 on the test split."""
    from pdarts_cli.train import TrainOptions, evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint, TrainOptions(dataset=dataset, data_dir=data_dir, device=device.value)
    )
    Console(highlight=False).print(
        f"{checkpoint} on {dataset} ({result.images} test images): top-1 "
        f"{100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}%, loss {result.loss:.4f}",
        soft_wrap=True,
    )

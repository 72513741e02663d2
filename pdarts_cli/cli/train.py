"""``pdarts train`` and ``pdarts evaluate``."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdarts_cli.cli._errors import user_errors
from pdarts_cli.cli.search import Device

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
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="cifar10, cifar100, digits, ...")],
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
    data_dir: Annotated[Path | None, typer.Option("--data-dir", envvar="PDARTS_DATA")] = None,
    download: Annotated[bool, typer.Option("--download")] = False,
    device: Annotated[Device, typer.Option("--device")] = Device.auto,
    channels: Annotated[int | None, typer.Option("--channels")] = None,
    layers: Annotated[int | None, typer.Option("--layers")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Global batch size.")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr")] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay")] = None,
    auxiliary_weight: Annotated[float | None, typer.Option("--auxiliary-weight")] = None,
    drop_path_prob: Annotated[float | None, typer.Option("--drop-path-prob")] = None,
    cutout: Annotated[int | None, typer.Option("--cutout")] = None,
    ema_decay: Annotated[float | None, typer.Option("--ema-decay")] = None,
    valid_portion: Annotated[
        float | None,
        typer.Option(
            "--valid-portion",
            help="Hold out this part of the training set (stratified) to choose "
            "best.safetensors on (default 0: none).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the network's size and exit; reads no data.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: JSON output.")] = False,
    resume: Annotated[Path | None, typer.Option("--resume", metavar="RUN_DIR")] = None,
    nproc: Annotated[
        int | None,
        typer.Option("--nproc", help="Processes on this machine (hands over to torchrun)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train the evaluation network of a genotype as the paper does (DDP under torchrun)."""
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
    finally:
        rendering.close()
    if state.history and main_rank and not quiet:
        console.print(summary_table(state, count_parameters(state.model), run_dir))


@user_errors
def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A run's final.safetensors (the network to report), best.safetensors or "
            "last.safetensors."
        ),
    ],
    dataset: Annotated[str, typer.Option("--dataset", "-d")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", envvar="PDARTS_DATA")] = None,
    device: Annotated[Device, typer.Option("--device")] = Device.auto,
) -> None:
    """Top-1 and top-5 accuracy of a trained checkpoint on the dataset's test split."""
    from pdarts_cli.train import TrainOptions, evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint, TrainOptions(dataset=dataset, data_dir=data_dir, device=device.value)
    )
    Console(highlight=False).print(
        f"{checkpoint} on {dataset} ({result.images} test images): top-1 "
        f"{100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}%, loss {result.loss:.4f}",
        soft_wrap=True,
    )

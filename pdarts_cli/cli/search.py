"""``pdarts search``: parse options into a schedule and options, run or resume, render."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pdarts_cli.cli.errors import fail, interrupted, user_errors
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
from pdarts_cli.overrides import FLAGS_SOURCE, parse_overrides, with_overrides
from pdarts_cli.schedule import load_schedule, preset_for_dataset, with_stage_values

if TYPE_CHECKING:
    from pdarts_cli.searching import SearchResult, SeedsResult


class AlphaOrder(str, Enum):
    first = "first"
    second = "second"


AUTO_BATCH_MODES = ("auto", "auto-max")


def _batch_sizes(text: str) -> list[int]:
    """``96`` -> [96]; ``16,32,32`` -> one batch size per stage."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise fail(
            f"--batch-size takes a number, one per stage (16,32,32), auto or auto-max, got {text!r}"
        ) from None
    if any(size < 1 for size in sizes):
        raise fail(f"--batch-size: batch sizes are at least 1, got {text!r}")
    return sizes


def _seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2] (the library checks that they are distinct, two or more)."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise fail(f"--seeds takes seeds separated by commas (0,1,2), got {text!r}") from None


def _refuse_with_seeds(nproc: int | None, seed: int | None) -> None:
    """--seeds runs its seeds itself: one after another, or one per GPU."""
    if nproc is not None:
        raise fail("--seeds cannot be combined with --nproc: --seeds runs one seed per GPU")
    if seed is not None:
        raise fail("--seeds cannot be combined with --seed: --seeds gives every seed")
    if launched_by_torchrun():
        raise fail("--seeds runs its seeds itself, one per GPU: start it without torchrun")


def _default_out() -> Path:
    return Path("runs") / dt.datetime.now().strftime("search-%Y%m%d-%H%M%S")


@user_errors
def search(
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="cifar10, cifar100, digits, npz:PATH, imagefolder:PATH, or a plugin's dataset.",
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            "-s",
            metavar="NAME|FILE",
            help="Preset (paper-cifar10, paper-cifar100, quick) or .toml/.json file. "
            "Default: the paper's schedule for the dataset.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory to create (default runs/search-<time>)."),
    ] = None,
    data_dir: Annotated[Path | None, data_dir_option()] = None,
    download: Annotated[bool, download_option()] = False,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Resize image folders to this size.")
    ] = None,
    device: Annotated[Device, device_option()] = Device.auto,
    threads: Annotated[str | None, threads_option()] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs of every stage.")] = None,
    warmup_epochs: Annotated[
        int | None,
        typer.Option("--warmup-epochs", help="Weights-only epochs at the start of every stage."),
    ] = None,
    batch_size: Annotated[
        str | None,
        typer.Option(
            "--batch-size",
            metavar="N|N,N,..|auto|auto-max",
            help="Batch size of every stage, or one per stage (16,32,32). auto: before each "
            "stage, the largest batch that fits the memory budget (as pdarts profile-memory "
            "measures it) and does not exceed the schedule's; auto-max: the largest that fits, "
            "above the schedule's too, with the learning rates scaled linearly. Recorded in "
            "schedule.json. A batch that leaves a stage fewer than 20 weight steps per epoch is "
            "refused.",
        ),
    ] = None,
    force_batch: Annotated[
        bool,
        typer.Option(
            "--force-batch",
            help="Run a batch size even when it leaves a stage fewer than the schedule's "
            "min_weight_steps (20) weight steps per epoch.",
        ),
    ] = False,
    memory_budget: Annotated[
        str | None,
        typer.Option(
            "--memory-budget",
            help="With --batch-size auto or auto-max, e.g. 16GiB (default: the GPU's memory, or "
            "on the CPU the RAM available now, less 10%).",
        ),
    ] = None,
    channels: Annotated[
        int | None, typer.Option("--channels", help="Initial channels of every stage.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            metavar="K,K,..",
            help="Search once per seed, into OUT/seed-K (each a whole run directory), then "
            "compare the genotypes in OUT/stability.json and print the comparison. With two "
            "or more GPUs visible, one seed per GPU at a time; else one after another.",
        ),
    ] = None,
    alpha_order: Annotated[
        AlphaOrder | None,
        typer.Option(
            "--alpha-order", help="first (P-DARTS) or second (DARTS unrolled) alpha steps."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None, set_option("schedule", "alphas.order=second, stages.1.epochs=5")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Continue a killed run from its checkpoint; a --seeds run: its seeds not "
            "finished.",
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            min=1,
            help="Processes on this machine, one per GPU (hands over to torchrun); the "
            "schedule's batch sizes stay the global batch.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing run in --out.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only the final genotype (--seeds: one line per seed)."
        ),
    ] = False,
) -> None:
    """Search a cell architecture with P-DARTS.

    Progressive stages, search space approximation and skip-connect dropout, as the paper and
    the authors' code. Leaves a run directory whose genotype.json (refined to at most
    max_skip normal skip-connects) `pdarts train RUN_DIR` reads.
    """
    from pdarts_cli.cli.progress import ConsoleObserver
    from pdarts_cli.context import refuse_resume_flags
    from pdarts_cli.searching import (
        SearchObserver,
        SearchOptions,
        SeedsResult,
        is_seeds_run,
        resume_search,
        resume_seeds,
        run_search,
        run_seeds,
    )

    seed_list = None
    if seeds is not None:
        _refuse_with_seeds(nproc, seed)
        seed_list = _seed_list(seeds)
    if nproc is not None and nproc > 1 and not launched_by_torchrun():
        handover_to_torchrun(nproc)
        return
    console = Console(highlight=False)
    main_rank = is_main_rank()  # under torchrun only rank 0 renders
    rendering = ConsoleObserver(console, live=console.is_terminal)
    observer = rendering if main_rank and not quiet else SearchObserver()
    thread_count = thread_request(threads)
    result: SearchResult | SeedsResult
    if resume is not None:
        refuse_resume_flags(
            {
                "dataset": dataset,
                "schedule": schedule,
                "out": out,
                "epochs": epochs,
                "warmup_epochs": warmup_epochs,
                "batch_size": batch_size,
                "channels": channels,
                "seed": seed,
                "seeds": seeds,
                "alpha_order": alpha_order,
                "image_size": image_size,
                "download": download or None,
                "force": force or None,
                "force_batch": force_batch or None,
                "set": overrides or None,
            }
        )
        resume_run = resume_seeds if is_seeds_run(resume) else resume_search
        try:
            result = resume_run(
                resume,
                device=device.value,
                data_dir=data_dir,
                observer=observer,
                threads=thread_count,
            )
        except KeyboardInterrupt as exc:
            raise interrupted("search", resume, exc) from None
    else:
        if dataset is None:
            raise fail("give --dataset (for example --dataset digits), or --resume RUN_DIR")
        mode = batch_size.strip().lower() if batch_size is not None else None
        auto_batch = mode in AUTO_BATCH_MODES
        resolved = load_schedule(schedule or preset_for_dataset(dataset)).with_overrides(
            epochs=epochs,
            warmup_epochs=warmup_epochs,
            channels=channels,
            seed=seed,
        )
        if batch_size is not None and not auto_batch:
            resolved = with_stage_values(resolved, "batch_size", _batch_sizes(batch_size))
        if alpha_order is not None:
            resolved = with_overrides(
                resolved, {"alphas.order": alpha_order.value}, source=FLAGS_SOURCE
            )
        if overrides:
            resolved = with_overrides(resolved, parse_overrides(overrides), source="--set")
        from pdarts_cli.memory import parse_size

        budget = parse_size(memory_budget) if memory_budget is not None else None
        options = SearchOptions(
            auto_batch_size=auto_batch,
            raise_batch=mode == "auto-max",
            force_batch=force_batch,
            memory_budget_bytes=budget,
            dataset=dataset,
            data_dir=data_dir,
            download=download,
            image_size=image_size,
            device=device.value,
            threads=thread_count,
        )
        run_dir = out or _default_out()
        try:
            if seed_list is not None:
                result = run_seeds(resolved, seed_list, options, run_dir, force, observer)
            else:
                result = run_search(resolved, options, run_dir, force=force, observer=observer)
        except KeyboardInterrupt as exc:
            raise interrupted("search", run_dir, exc) from None
    if not main_rank:
        return
    if isinstance(result, SeedsResult):
        _print_seeds(console, result, quiet)
    elif quiet:
        typer.echo(result.genotype.to_darts())
    else:
        _print_genotypes(console, result)


def _print_seeds(console: Console, result: SeedsResult, quiet: bool) -> None:
    """The seeds compared; with --quiet, each seed's genotype on a line, in --seeds order."""
    from pdarts_cli.cli.stability import render_stability
    from pdarts_cli.genotype.stability import STABILITY_FILE

    if quiet:
        for outcome in result.stability.seeds:
            typer.echo(outcome.genotype.to_darts())
        return
    render_stability(console, result.stability, result.run_dir / STABILITY_FILE)


def _print_genotypes(console: Console, result: SearchResult) -> None:
    """The refined genotype (the P-DARTS architecture), the unrefined one, and what changed."""
    from pdarts_cli.runlog import GENOTYPE_FILE, UNREFINED_GENOTYPE_FILE

    run_dir = result.run_dir
    assert run_dir is not None, "the command always gives the search a run directory"
    genotype, unrefined = result.genotype, result.unrefined or result.genotype
    max_skip = genotype.meta.get("max_skip")
    if unrefined is not genotype:
        console.print(f"\n[bold]unrefined genotype[/] ({run_dir / UNREFINED_GENOTYPE_FILE}):")
        console.print(unrefined.to_darts(), soft_wrap=True)
    refined = "no refinement" if max_skip is None else f"at most {max_skip} normal skip-connects"
    console.print(f"\n[bold]genotype[/], {refined} ({run_dir / GENOTYPE_FILE}):")
    console.print(genotype.to_darts(), soft_wrap=True)
    console.print(
        f"skip-connects: normal {genotype.count('skip_connect')} "
        f"({result.skips_removed} removed by refinement), reduce "
        f"{genotype.count('skip_connect', 'reduce')}; search took {result.seconds:.0f}s"
    )

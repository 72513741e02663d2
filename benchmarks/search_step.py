"""Time one search iteration (alpha step + weight step) of a schedule's stage; print JSON.

    python benchmarks/search_step.py --schedule paper-cifar10 --stage 2 --batch-size 96 \
        --device cuda --amp bf16 --channels-last on
    python benchmarks/search_step.py --stage 3 --batch-size 32 \
        --ops skip_connect,sep_conv_3x3,dil_conv_3x3

Uses the search loop's own code on synthetic 32x32 RGB data, so what it times is what
`pdarts search` runs. The first epoch is a warm-up and is not timed. ``--ops`` puts those
candidates on every edge of both cell types (default: the schedule's first k, k the stage's
ops per edge). On Linux the JSON has the process's peak resident memory (VmHWM), data and
torch included, the figure a CPU user's machine must hold.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pdarts_cli.context import RunContext
from pdarts_cli.data import DatasetInfo, ImageDataset, ImageTensors
from pdarts_cli.device import resolve_channels_last, resolve_device, resolve_precision
from pdarts_cli.schedule import load_schedule
from pdarts_cli.searching.data import stage_batches
from pdarts_cli.searching.epoch import train_epoch
from pdarts_cli.searching.events import SearchObserver
from pdarts_cli.searching.step import all_candidates, build_stage
from pdarts_cli.threads import choose_threads


def synthetic_dataset(images: int, size: int, classes: int) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    data = ImageTensors(
        torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=generator),
        torch.randint(0, classes, (images,), generator=generator),
    )
    info = DatasetInfo("synthetic", classes, 3, size, (0.5,) * 3, (0.25,) * 3)
    return ImageDataset(info, data, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", default="paper-cifar10")
    parser.add_argument("--stage", type=int, default=1, help="1-based stage")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="timed iterations")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"])
    parser.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", default=None, help="N or auto (default: PDARTS_THREADS)")
    parser.add_argument("--ops", default=None, help="comma-separated candidates of every edge")
    args = parser.parse_args()
    torch.set_num_threads(choose_threads(args.threads).threads)

    schedule = load_schedule(args.schedule).with_overrides(batch_size=args.batch_size)
    schedule = schedule.with_overrides(amp=args.amp, channels_last=args.channels_last)
    device = resolve_device(args.device)
    env = RunContext(
        data=synthetic_dataset(2 * args.batch_size * args.steps, args.image_size, 10),
        device=device,
        precision=resolve_precision(schedule.amp, device),
        channels_last=resolve_channels_last(schedule.channels_last, device),
        dataset="synthetic",
    )
    index = args.stage - 1
    config = schedule.stages[index]
    if args.ops:
        candidates = tuple(tuple(args.ops.split(",")) for _ in range(schedule.edges_per_cell))
    else:
        candidates = tuple(edge[: config.ops_per_edge] for edge in all_candidates(schedule))
    stage = build_stage(schedule, index, candidates, candidates, env)
    batches = stage_batches(schedule, config, env)
    joint_epoch = config.warmup_epochs  # alpha and weight steps, as in a joint epoch

    def epoch() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        train_epoch(
            schedule, stage, joint_epoch, batches.weights, batches.alphas, env, SearchObserver()
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    epoch()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = epoch()
    result = {
        "schedule": schedule.name,
        "stage": args.stage,
        "cells": config.cells,
        "ops": list(candidates[0]),
        "batch_size": args.batch_size,
        "device": str(device),
        "precision": env.precision.label,
        "channels_last": env.channels_last,
        "steps": len(batches.weights),
        "seconds_per_step": seconds / len(batches.weights),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
        result["max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["max_memory_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    peak_kib = peak_resident_kib()
    if peak_kib is not None:
        result["peak_rss_mib"] = peak_kib / 1024
    print(json.dumps(result))


def peak_resident_kib() -> int | None:
    """This process's peak resident set (VmHWM), on Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()

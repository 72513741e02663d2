"""One memory measurement, run as ``python -m pdarts_cli.memory.probe REQUEST_JSON`` in a fresh
process so that its peak is its own. Prints one JSON object.

The request names a schedule (as a dict), a 0-based stage, the candidate ops of each edge of
its normal and reduction cells (``normal``, ``reduce``: lists of lists of names), a batch size,
the data and the device; ``idle`` stops after torch is imported and the data built.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pdarts_cli.memory.process import peak_rss_bytes
from pdarts_cli.threads import choose_threads, using_threads

if TYPE_CHECKING:
    import torch

    from pdarts_cli.schedule import Schedule
    from pdarts_cli.searching.supernet import CellCandidates

SYNTHETIC_SHAPE = (3, 32, 32)  # CIFAR-sized images when no dataset is named
SYNTHETIC_CLASSES = 10
# On CUDA, two iterations: the second holds the optimisers' state, the steady peak. On the
# CPU one, plus the bytes that state takes (``optimizer_state_bytes``): the same peak, sooner.
CUDA_ITERATIONS = 2


def optimizer_state_bytes(weights: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor]) -> int:
    """What the optimisers allocate at their first step: SGD's momentum buffer for every
    weight, Adam's two moments for every alpha."""
    weight_bytes = sum(p.numel() * p.element_size() for p in weights)
    return weight_bytes + 2 * sum(p.numel() * p.element_size() for p in alphas)


def requested_candidates(
    request: dict[str, Any], schedule: Schedule
) -> tuple[CellCandidates, CellCandidates]:
    """The normal and reduce candidates the request names, one tuple of names per edge."""
    cells = []
    for key in ("normal", "reduce"):
        edges = tuple(tuple(str(op) for op in edge) for edge in request[key])
        if len(edges) != schedule.edges_per_cell:
            raise ValueError(
                f"{key}: {len(edges)} edges of candidates, a cell has {schedule.edges_per_cell}"
            )
        cells.append(edges)
    return cells[0], cells[1]


def measure(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from pdarts_cli.context import RunContext
    from pdarts_cli.data import DatasetInfo, ImageDataset, ImageTensors, resolve_dataset
    from pdarts_cli.device import resolve_channels_last, resolve_device, resolve_precision
    from pdarts_cli.schedule import validate_schedule
    from pdarts_cli.searching.data import stage_batches, weight_alpha_split
    from pdarts_cli.searching.step import build_stage, search_step

    schedule = validate_schedule(request["schedule"], "profile request")
    index, batch_size = request["stage"], request["batch_size"]
    schedule = schedule.with_overrides(batch_size=batch_size)
    device = resolve_device(request["device"])
    if request["dataset"] is None:
        generator = torch.Generator().manual_seed(0)
        count = 2 * batch_size
        images = torch.randint(
            0, 256, (count, *SYNTHETIC_SHAPE), dtype=torch.uint8, generator=generator
        )
        labels = torch.randint(0, SYNTHETIC_CLASSES, (count,), generator=generator)
        tensors = ImageTensors(images, labels)
        channels, size = SYNTHETIC_SHAPE[0], SYNTHETIC_SHAPE[1]
        info = DatasetInfo("synthetic", SYNTHETIC_CLASSES, channels, size, (0.5,) * 3, (0.25,) * 3)
        data = ImageDataset(info, tensors, tensors)
    else:
        data = resolve_dataset(request["dataset"], request.get("data_dir"))
    ctx = RunContext(
        data=data,
        device=device,
        precision=resolve_precision(schedule.amp, device),
        channels_last=resolve_channels_last(schedule.channels_last, device),
        dataset=request["dataset"] or "synthetic",
    )
    config = schedule.stages[index]
    batches = stage_batches(schedule, config, ctx)
    batch = next(iter(batches.weights.epoch(0)))
    alpha_batch = next(iter(batches.alphas.epoch(1)))
    weight_half = weight_alpha_split(schedule, data, ctx.dataset)[0]
    result: dict[str, Any] = {
        "batch_size": int(batch[1].numel()),
        "images_per_half": None if request["dataset"] is None else int(weight_half.numel()),
    }
    if not request["idle"]:
        normal, reduce = requested_candidates(request, schedule)
        stage = build_stage(schedule, index, normal, reduce, ctx)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(CUDA_ITERATIONS if device.type == "cuda" else 1):
            search_step(schedule, stage, batch, alpha_batch, ctx)
        if device.type != "cuda":
            alphas = stage.network.arch_parameters()
            result["optimizer_state_bytes"] = optimizer_state_bytes(stage.weights, alphas)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        result["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        result["cuda_max_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def main() -> None:
    with using_threads(choose_threads().threads):  # PDARTS_THREADS, set by the parent
        print(json.dumps(measure(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()

"""What a finished search's last stage started from, for tests that check the alphas moved."""

from __future__ import annotations

from pathlib import Path

import torch

from pdarts_cli.arch import read_arch
from pdarts_cli.context import RunContext
from pdarts_cli.data import resolve_dataset
from pdarts_cli.device import resolve_precision
from pdarts_cli.schedule import Schedule
from pdarts_cli.searching.step import build_stage


def alpha_tensors(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The final (normal, reduce) alphas of a run, from final.arch.json."""
    arch = read_arch(run_dir / "final.arch.json")
    return (
        torch.tensor([edge.alpha for edge in arch.normal]),
        torch.tensor([edge.alpha for edge in arch.reduce]),
    )


def initial_alphas(run_dir: Path, schedule: Schedule, dataset: str) -> tuple[torch.Tensor, ...]:
    """The alphas the last stage was initialised with: the stage rebuilt on the CPU from the
    same seed and candidates (networks are initialised on the CPU, then moved)."""
    arch = read_arch(run_dir / "final.arch.json")
    cpu = torch.device("cpu")
    env = RunContext(
        data=resolve_dataset(dataset),
        device=cpu,
        precision=resolve_precision("off", cpu),
        channels_last=False,
        dataset=dataset,
    )
    normal = tuple(edge.ops for edge in arch.normal)
    reduce = tuple(edge.ops for edge in arch.reduce)
    stage = build_stage(schedule, len(schedule.stages) - 1, normal, reduce, env)
    return tuple(p.detach().clone() for p in stage.network.arch_parameters())


def largest_alpha_change(run_dir: Path, schedule: Schedule, dataset: str) -> float:
    """max |final alpha - initial alpha| over both cell types of the last stage."""
    start = initial_alphas(run_dir, schedule, dataset)
    return max(float((a - b).abs().max()) for a, b in zip(alpha_tensors(run_dir), start))

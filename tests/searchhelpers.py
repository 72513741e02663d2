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


def one_step_gradients(
    schedule: Schedule, ctx: RunContext, x: torch.Tensor, y: torch.Tensor, skip_dropout_p: float
) -> dict[str, torch.Tensor]:
    """The alpha gradients (first order) and the weight gradients of stage 1's fresh network
    on the batch (x, y), with skip-connect dropout ``skip_dropout_p`` (masks from seed 0)."""
    from pdarts_cli.distributed import average_gradients
    from pdarts_cli.searching.architect import first_order_grads, shard_loss
    from pdarts_cli.searching.step import all_candidates

    candidates = all_candidates(schedule)
    stage = build_stage(schedule, 0, candidates, candidates, ctx)
    stage.network.set_skip_dropout(skip_dropout_p)
    torch.manual_seed(0)
    alpha_grads, _, _ = first_order_grads(stage.network, x, y, ctx.precision, None, ctx.dist)
    loss = torch.nn.functional.cross_entropy(stage.network(x), y)
    weight_grads = average_gradients(
        torch.autograd.grad(shard_loss(loss, y.shape[0], ctx.dist), stage.weights), ctx.dist
    )
    names = [n for n, _ in stage.network.named_parameters() if not n.startswith("alphas_")]
    grads = {"alphas_normal": alpha_grads[0], "alphas_reduce": alpha_grads[1]}
    grads.update({n: g.contiguous() for n, g in zip(names, weight_grads)})
    return grads


def step_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of 64 random 1x8x8 images (channels_last) and labels."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 8, 8, generator=generator).to(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (64,), generator=generator)

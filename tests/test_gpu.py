"""The CUDA path: tiny searches in float32 and in bf16 autocast with channels_last."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from searchhelpers import largest_alpha_change

from pdarts_cli.arch import read_arch
from pdarts_cli.distributed import Distributed
from pdarts_cli.schedule import Schedule
from pdarts_cli.searching import SearchOptions, run_search
from pdarts_cli.searching.run import search_context
from pdarts_cli.searching.sharded import GlobalBatchNorm2d
from pdarts_cli.searching.step import all_candidates, build_stage

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(("amp", "channels_last"), [("auto", "auto"), ("bf16", "on")])
def test_tiny_search_on_cuda(
    tmp_path: Path, tiny_schedule: Schedule, amp: str, channels_last: str
) -> None:
    schedule = tiny_schedule.with_overrides(amp=amp, channels_last=channels_last)
    result = run_search(schedule, SearchOptions(dataset="digits", device="cuda"), tmp_path / "r")
    arch = read_arch(tmp_path / "r" / "final.arch.json")
    alphas = [a for edge in arch.normal + arch.reduce for a in edge.alpha]
    assert all(math.isfinite(a) for a in alphas)
    # The alpha steps moved them away from where the last stage started: at least one Adam step.
    moved = largest_alpha_change(tmp_path / "r", schedule, "digits")
    assert moved > schedule.alphas.lr
    assert len(result.genotype.normal) == 8


@pytest.mark.parametrize(("amp", "channels_last"), [("auto", "auto"), ("bf16", "on")])
def test_quick_training_on_cuda(tmp_path: Path, amp: str, channels_last: str) -> None:
    from pdarts_cli.genotype import ZOO
    from pdarts_cli.training import TrainOptions, run_training
    from pdarts_cli.training.recipe import load_recipe

    recipe = load_recipe("quick").with_overrides(epochs=2, amp=amp, channels_last=channels_last)
    state = run_training(
        ZOO["PDARTS"](), recipe, TrainOptions(dataset="digits", device="cuda"), tmp_path / "t"
    )
    assert state.history[-1].test_top1 > 0.5  # the final epoch's, what final.safetensors holds
    assert (tmp_path / "t" / "final.safetensors").exists()
    assert not (tmp_path / "t" / "best.safetensors").exists()  # no validation split, no choice


def test_a_sharded_search_network_is_on_its_gpu(tiny_schedule: Schedule) -> None:
    """A distributed search's global BatchNorms live where the network does (built, sharded,
    then moved to the rank's GPU)."""
    ctx = search_context(tiny_schedule, SearchOptions(dataset="digits", device="cuda"))
    ranks = dataclasses.replace(ctx, dist=Distributed(rank=0, world_size=2))
    candidates = all_candidates(tiny_schedule)
    network = build_stage(tiny_schedule, 0, candidates, candidates, ranks).network
    norms = [m for m in network.modules() if isinstance(m, GlobalBatchNorm2d)]
    assert norms
    assert all(t.is_cuda for m in norms for t in (*m.buffers(), *m.parameters()))

"""The candidates a stage is profiled with: its survivors when a search knows them, else every
candidate (a first stage) or the most memory-hungry ones on every edge (an upper bound)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from pdarts_ops import ZERO_OP

from pdarts_cli.memory.results import CandidateSource, EdgeOps, StageCandidates
from pdarts_cli.schedule import Schedule

RANKING_INPUT_SHAPE = (2, 8, 16, 16)  # batch, channels, height, width: enough to rank, in ms


def saved_activation_bytes(name: str, stride: int) -> int:
    """Bytes of the tensors autograd saves for the backward pass in one forward of op ``name``,
    built and run as a search edge runs it (pools followed by their BatchNorm, the edge weight
    fused into it), on a small input.

    These saved activations are what a candidate adds to a search step's peak. Each storage
    counts once; the input (shared by every candidate of the edge) and the op's parameters and
    buffers (no activations) do not count. Sizes do not depend on the values; the caller's
    random state is left as it was.
    """
    if name == ZERO_OP:
        return 0  # skipped on an edge that holds anything else
    import torch
    from torch import nn

    from pdarts_cli.registry import op_registry
    from pdarts_cli.searching.supernet import MixedOp, build_candidate

    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        channels = RANKING_INPUT_SHAPE[1]
        op = build_candidate(name, op_registry().get(name), channels, stride)
        edge = MixedOp(nn.ModuleList([op]), (name,)).train()
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(RANKING_INPUT_SHAPE, generator=generator, requires_grad=True)
        weight = torch.ones(1, requires_grad=True)
        kept = (x, weight, *op.state_dict().values())
        not_activations = {t.untyped_storage().data_ptr() for t in kept}
        saved: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in not_activations:
                saved[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = edge(x, weight)
        del out
    return sum(saved.values())


@functools.cache
def memory_ranking(ops: tuple[str, ...]) -> tuple[str, ...]:
    """``ops`` from the most memory-hungry to the least: by the activations each saves at
    stride 1 plus those at stride 2 (normal and reduction edges). Ties keep the order of
    ``ops``; measured, not listed, so that plugin ops rank too."""
    saved_bytes = {
        name: sum(saved_activation_bytes(name, stride) for stride in (1, 2)) for name in ops
    }
    return tuple(sorted(ops, key=lambda name: -saved_bytes[name]))


def _canonical(schedule: Schedule, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` once each, in the order of ``schedule.candidate_ops`` (others after, sorted)."""
    wanted = set(names)
    known = [op for op in schedule.candidate_ops if op in wanted]
    return (*known, *sorted(wanted.difference(known)))


def stage_candidates(
    schedule: Schedule, index: int, normal: EdgeOps | None = None, reduce: EdgeOps | None = None
) -> StageCandidates:
    """What stage ``index`` (0-based) is profiled with: ``normal`` and ``reduce`` when given
    (a search's survivors); otherwise every candidate when the stage holds them all, else
    the ``ops_per_edge`` most memory-hungry candidates on every edge, an upper bound."""
    if (normal is None) != (reduce is None):
        raise ValueError("give both the normal and the reduce candidates, or neither")
    every = tuple(tuple(schedule.candidate_ops) for _ in range(schedule.edges_per_cell))
    keep = schedule.stages[index].ops_per_edge
    source: CandidateSource
    if normal is not None and reduce is not None:
        normal, reduce = tuple(map(tuple, normal)), tuple(map(tuple, reduce))
        source = "all" if normal == every and reduce == every else "survivors"
    elif keep == len(schedule.candidate_ops):
        source, normal, reduce = "all", every, every
    else:
        hungriest = _canonical(schedule, memory_ranking(schedule.candidate_ops)[:keep])
        source = "upper bound"
        normal = reduce = tuple(hungriest for _ in range(schedule.edges_per_cell))
    ops = _canonical(schedule, (op for cell in (normal, reduce) for edge in cell for op in edge))
    return StageCandidates(source, normal, reduce, ops)

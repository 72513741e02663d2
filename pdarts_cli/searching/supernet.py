"""The P-DARTS search supernet: mixed ops over each edge's current candidates.

As DARTS's model_search, with P-DARTS's changes: every edge holds only the candidates still
switched on, the softmax runs over those, and identity skip-connects carry a dropout whose
rate the stage loop decays epoch by epoch.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pdarts_ops import IDENTITY_OP, ZERO_OP, FactorizedReduce, ReLUConvBN
from torch import nn
from torch.utils.checkpoint import checkpoint

from pdarts_cli.arch import ArchWeights, EdgeWeights
from pdarts_cli.searching.fused import (
    CandidatePlan,
    fusable,
    gradient_in_layout,
    plan_candidate,
    run_body,
    scaled_batch_norm,
    shared_relu,
)
from pdarts_cli.searching.sharded import global_dropout, globalise_batch_norms
from pdarts_cli.topology import (
    CELL_INPUTS,
    cell_edges,
    edges_per_cell,
    node_edges,
    reduction_indices,
)

OpFactory = Callable[[int, int, bool], nn.Module]
CellCandidates = tuple[tuple[str, ...], ...]  # per edge, its candidate op names


class SkipDropout(nn.Module):
    """Element-wise dropout after an identity skip-connect; ``p`` is set by the stage loop.

    In a distributed search (``shard``: rank, world size) the mask is the global batch's."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p
        self.shard = (0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p > 0.0 and self.training:
            rank, world_size = self.shard
            if world_size > 1:
                return global_dropout(x, self.p, rank, world_size)
            return F.dropout(x, self.p, training=True)
        return x


def build_candidate(name: str, factory: OpFactory, channels: int, stride: int) -> nn.Module:
    """A candidate as the search network holds it: affine-free, BN after pooling, dropout
    after an identity."""
    op = factory(channels, stride, False)
    if getattr(factory, "search_batchnorm", False):
        return nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
    if name == IDENTITY_OP and stride == 1:
        return nn.Sequential(op, SkipDropout())
    return op


class MixedOp(nn.Module):
    """``sum_o w_o * o(x)`` over the edge's candidates; ``none`` adds nothing and is skipped.

    The candidates run as ``fused`` plans them: one ReLU for all that start with one, and a
    training-mode BatchNorm at the end fused with its weight. The function is the same.
    """

    def __init__(self, ops: nn.ModuleList, names: tuple[str, ...]) -> None:
        super().__init__()
        self.ops = ops
        self._active = [i for i, name in enumerate(names) if name != ZERO_OP]
        self.replan()

    def replan(self) -> None:
        """Plan the candidates again (after their modules were replaced)."""
        self._plans = [plan_candidate(i, self.ops[i]) for i in self._active]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if not self._plans:
            zeros: torch.Tensor = weights[0] * self.ops[0](x)
            return zeros
        relu_x = shared_relu(x, self._plans)
        fused = fusable(x)
        out: torch.Tensor | None = None
        for plan in self._plans:
            source = relu_x if plan.relu_input and relu_x is not None else x
            term = _weighted_candidate(plan, source, weights, fused)
            out = term if out is None else out.add_(term)
        assert out is not None
        return out


def _weighted_candidate(
    plan: CandidatePlan, x: torch.Tensor, weights: torch.Tensor, fused: bool
) -> torch.Tensor:
    weight = weights[plan.index]
    if not fused or plan.norm is None or not plan.norm.training:
        return weight * run_body(plan, x)
    if plan.recomputable:
        return scaled_batch_norm(x, weight, plan.norm, plan.body)
    return scaled_batch_norm(run_body(plan, x, norm=False, fast=True), weight, plan.norm)


class SearchCell(nn.Module):
    def __init__(
        self,
        steps: int,
        prev_prev_channels: int,
        prev_channels: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        candidates: CellCandidates,
        factories: dict[str, OpFactory],
    ) -> None:
        super().__init__()
        self.steps = steps
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(
                prev_prev_channels, channels, affine=False
            )
        else:
            self.preprocess0 = ReLUConvBN(prev_prev_channels, channels, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(prev_channels, channels, 1, 1, 0, affine=False)
        edges = []
        for edge, names in zip(cell_edges(steps), candidates):
            stride = 2 if reduction and edge.source < CELL_INPUTS else 1
            ops = nn.ModuleList(
                build_candidate(name, factories[name], channels, stride) for name in names
            )
            edges.append(MixedOp(ops, names))
        self.edges = nn.ModuleList(edges)
        self.incoming = node_edges(steps)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for incoming in self.incoming:  # edge incoming[j] comes from states[j]
            first = incoming[0]
            node = self.edges[first](states[0], weights[first])
            for j in range(1, len(incoming)):
                edge = incoming[j]
                node = node + self.edges[edge](states[j], weights[edge])
            states.append(node)
        # torch.cat's backward pass hands each node a strided slice of the cell's gradient
        return torch.cat([gradient_in_layout(s) for s in states[CELL_INPUTS:]], dim=1)


class _FrozenBatchNormStatistics:
    """While a checkpointed cell is recomputed, its BatchNorms leave their running statistics
    (and batch counters) as the first forward pass left them."""

    def __init__(self, module: nn.Module) -> None:
        self.norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        self.saved: list[tuple[float | None, torch.Tensor | None]] = []

    def __enter__(self) -> None:
        self.saved = [(m.momentum, m.num_batches_tracked) for m in self.norms]
        for m in self.norms:
            m.momentum = 0.0  # (1 - 0) * running + 0 * batch == running, exactly
            if m.num_batches_tracked is not None:
                m.num_batches_tracked = m.num_batches_tracked.clone()

    def __exit__(self, *exc: object) -> None:
        for m, (momentum, tracked) in zip(self.norms, self.saved):
            m.momentum = momentum
            m.num_batches_tracked = tracked


def _recompute_contexts(
    cell: nn.Module,
) -> tuple[contextlib.AbstractContextManager[None], _FrozenBatchNormStatistics]:
    return contextlib.nullcontext(), _FrozenBatchNormStatistics(cell)


class SearchNetwork(nn.Module):
    """Stem, ``cells`` search cells sharing one set of alphas per cell type, classifier."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        cells: int,
        in_channels: int,
        normal_candidates: CellCandidates,
        reduce_candidates: CellCandidates,
        factories: dict[str, OpFactory],
        steps: int = 4,
        stem_multiplier: int = 3,
        alpha_init_scale: float = 1e-3,
        checkpoint_cells: bool = False,
    ) -> None:
        super().__init__()
        self.steps = steps
        self.checkpoint_cells = checkpoint_cells
        self.normal_candidates = normal_candidates
        self.reduce_candidates = reduce_candidates
        stem_channels = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        prev_prev, prev, current = stem_channels, stem_channels, channels
        reductions = reduction_indices(cells)
        reduction_prev = False
        layers = []
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                current *= 2
            candidates = reduce_candidates if reduction else normal_candidates
            layers.append(
                SearchCell(
                    steps,
                    prev_prev,
                    prev,
                    current,
                    reduction,
                    reduction_prev,
                    candidates,
                    factories,
                )
            )
            reduction_prev = reduction
            prev_prev, prev = prev, steps * current
        self.cells = nn.ModuleList(layers)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(prev, num_classes)
        num_edges = edges_per_cell(steps)
        self.alphas_normal = nn.Parameter(
            alpha_init_scale * torch.randn(num_edges, len(normal_candidates[0]))
        )
        self.alphas_reduce = nn.Parameter(
            alpha_init_scale * torch.randn(num_edges, len(reduce_candidates[0]))
        )

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("alphas_")]

    def shard(self, rank: int, world_size: int) -> None:
        """Compute as one process with the global batch would, this process holding
        ``rank``'s share (see ``sharded``): global BatchNorm statistics and dropout masks."""
        globalise_batch_norms(self)
        for module in self.modules():
            if isinstance(module, SkipDropout):
                module.shard = (rank, world_size)
            elif isinstance(module, MixedOp):
                module.replan()

    def set_skip_dropout(self, p: float) -> None:
        for module in self.modules():
            if isinstance(module, SkipDropout):
                module.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normal = F.softmax(self.alphas_normal, dim=-1)
        reduce = F.softmax(self.alphas_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        recompute = self.checkpoint_cells and self.training and torch.is_grad_enabled()
        for cell in self.cells:
            weights = reduce if cell.reduction else normal
            if recompute:
                out = checkpoint(
                    cell,
                    s0,
                    s1,
                    weights,
                    use_reentrant=False,
                    context_fn=functools.partial(_recompute_contexts, cell),
                )
            else:
                out = cell(s0, s1, weights)
            s0, s1 = s1, out
        pooled = self.global_pooling(gradient_in_layout(s1))
        logits: torch.Tensor = self.classifier(pooled.flatten(1))
        return logits

    @torch.no_grad()
    def alpha_probabilities(self) -> dict[str, list[dict[str, float]]]:
        """softmax(alpha) of every edge, by op name, for metrics and plots."""

        def cell(candidates: CellCandidates, alphas: torch.Tensor) -> list[dict[str, float]]:
            rows = F.softmax(alphas.float(), dim=-1).cpu().tolist()
            return [dict(zip(ops, row)) for ops, row in zip(candidates, rows)]

        return {
            "normal": cell(self.normal_candidates, self.alphas_normal),
            "reduce": cell(self.reduce_candidates, self.alphas_reduce),
        }

    def arch_weights(self, extra: dict[str, object] | None = None) -> ArchWeights:
        """The current candidates and raw alphas in ``pdarts-arch/1`` form."""

        def cell(candidates: CellCandidates, alphas: torch.Tensor) -> tuple[EdgeWeights, ...]:
            rows = alphas.detach().float().cpu().tolist()
            return tuple(EdgeWeights(ops, tuple(row)) for ops, row in zip(candidates, rows))

        return ArchWeights(
            self.steps,
            cell(self.normal_candidates, self.alphas_normal),
            cell(self.reduce_candidates, self.alphas_reduce),
            dict(extra or {}),
        )

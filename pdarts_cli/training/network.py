"""Evaluation networks built from a genotype, as DARTS and P-DARTS build them.

NetworkCIFAR: stem, ``layers`` cells (reductions at one and two thirds), an auxiliary head
after the second reduction, global pooling, classifier. NetworkImageNet: the DARTS ImageNet
stems (two stride-2 3x3 convolutions, then one more) and 7x7 average pooling. Cells sum two
ops per node, with drop-path on every op except identities during training.
"""

from __future__ import annotations

import torch
from pdarts_ops import IDENTITY_OP, FactorizedReduce, ReLUConvBN
from torch import nn

from pdarts_cli.genotype import Genotype
from pdarts_cli.registry import op_registry
from pdarts_cli.topology import CELL_INPUTS, INPUTS_PER_NODE, reduction_indices

AUXILIARY_CHANNELS = (128, 768)  # DARTS's auxiliary head widths


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob``, scaling the rest by 1/keep."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    def __init__(
        self,
        genotype: Genotype,
        prev_prev_channels: int,
        prev_channels: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(prev_prev_channels, channels)
        else:
            self.preprocess0 = ReLUConvBN(prev_prev_channels, channels, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(prev_channels, channels, 1, 1, 0)
        cell_type = "reduce" if reduction else "normal"
        gene = genotype.cell(cell_type)
        self.concat = genotype.concat(cell_type)
        self.multiplier = len(self.concat)
        self.inputs = [source for _, source in gene]
        strides = [2 if reduction and source < CELL_INPUTS else 1 for _, source in gene]
        self.ops = nn.ModuleList(
            op_registry().get(name)(channels, stride, True)
            for (name, _), stride in zip(gene, strides)
        )
        # Drop-path skips identities (DARTS): a skip-connect that does not reduce.
        self.drops_path = [
            not (name == IDENTITY_OP and stride == 1) for (name, _), stride in zip(gene, strides)
        ]
        self.steps = len(gene) // INPUTS_PER_NODE

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(self.steps):
            total: torch.Tensor | None = None
            for k in range(INPUTS_PER_NODE * node, INPUTS_PER_NODE * (node + 1)):
                op = self.ops[k]
                h = op(states[self.inputs[k]])
                if self.training and drop_prob > 0 and self.drops_path[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            assert total is not None
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """For 8x8 inputs (DARTS): ReLU, 5x5 average pool stride 3, 1x1 -> 128, 2x2 -> 768."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        mid, out = AUXILIARY_CHANNELS
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out, 2, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return logits


class AuxiliaryHeadImageNet(nn.Module):
    """For 14x14 inputs (DARTS): as CIFAR's with stride 2 and no BatchNorm after the 2x2
    convolution, as in the experiments the DARTS paper reports."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        mid, out = AUXILIARY_CHANNELS
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return logits


class _Network(nn.Module):
    """Cells after a stem; subclasses build the stem and the auxiliary head."""

    def __init__(self) -> None:
        super().__init__()
        self.drop_path_prob = 0.0
        self.cells = nn.ModuleList()
        self.auxiliary_after = -1
        self.auxiliary_head: nn.Module | None = None

    def _build_cells(
        self,
        genotype: Genotype,
        channels: int,
        layers: int,
        prev_prev: int,
        prev: int,
        reduction_prev: bool,
    ) -> int:
        """Add the cells; return the channels before the auxiliary head and record its place."""
        current = channels
        reductions = reduction_indices(layers)
        self.auxiliary_after = reductions[1]
        auxiliary_channels = prev
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                current *= 2
            cell = Cell(genotype, prev_prev, prev, current, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            prev_prev, prev = prev, cell.multiplier * current
            if i == self.auxiliary_after:
                auxiliary_channels = prev
        self.final_channels = prev
        return auxiliary_channels

    def _run_cells(
        self, s0: torch.Tensor, s1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.auxiliary_after and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        return s1, logits_aux


class NetworkCIFAR(_Network):
    def __init__(
        self,
        genotype: Genotype,
        channels: int = 36,
        num_classes: int = 10,
        layers: int = 20,
        auxiliary: bool = True,
        in_channels: int = 3,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        stem_channels = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        aux_channels = self._build_cells(
            genotype, channels, layers, stem_channels, stem_channels, False
        )
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(aux_channels, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.final_channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.stem(x)
        out, logits_aux = self._run_cells(s, s)
        logits: torch.Tensor = self.classifier(self.global_pooling(out).flatten(1))
        return logits, logits_aux


class NetworkImageNet(_Network):
    def __init__(
        self,
        genotype: Genotype,
        channels: int = 48,
        num_classes: int = 1000,
        layers: int = 14,
        auxiliary: bool = True,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        aux_channels = self._build_cells(genotype, channels, layers, channels, channels, True)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadImageNet(aux_channels, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.final_channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        out, logits_aux = self._run_cells(s0, s1)
        logits: torch.Tensor = self.classifier(self.global_pooling(out).flatten(1))
        return logits, logits_aux


def count_parameters(model: nn.Module, auxiliary: bool = False) -> int:
    """Parameters, by default without the auxiliary head (the DARTS convention)."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if auxiliary or not name.startswith("auxiliary_head.")
    )


def multiply_adds(model: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of one image through the inference path (no auxiliary head)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, in_channels, image_size, image_size))
    model.train(was_training)
    return counter.get_total_flops() // 2

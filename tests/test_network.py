"""Evaluation networks: parameter counts pinned to the published figures, shapes, drop-path."""

from __future__ import annotations

import pytest
import torch

from pdarts_cli.genotype import ZOO, Genotype
from pdarts_cli.training.network import (
    Cell,
    NetworkCIFAR,
    NetworkImageNet,
    count_parameters,
    drop_path,
)

# (genotype, network, channels, layers, classes, published millions, exact count today)
PUBLISHED = [
    ("PDARTS", NetworkCIFAR, 36, 20, 10, 3.4, 3_433_798),
    ("PDARTS", NetworkCIFAR, 64, 20, 10, 10.5, 10_521_802),
    ("DARTS_V2", NetworkCIFAR, 36, 20, 10, 3.3, 3_349_342),
    ("PDARTS", NetworkImageNet, 48, 14, 1000, 4.9, 4_944_352),
    ("DARTS_V2", NetworkImageNet, 48, 14, 1000, 4.7, 4_718_752),
]


@pytest.mark.parametrize(
    ("name", "network", "channels", "layers", "classes", "millions", "exact"), PUBLISHED
)
def test_parameter_counts_match_the_papers(
    name: str, network: type, channels: int, layers: int, classes: int, millions: float, exact: int
) -> None:
    model = network(ZOO[name](), channels, classes, layers, True)
    count = count_parameters(model)  # auxiliary head excluded, as DARTS counts
    assert round(count / 1e6, 1) == millions
    assert count == exact
    assert count_parameters(model, auxiliary=True) > count


def test_cifar_network_outputs_and_auxiliary_logits() -> None:
    torch.manual_seed(0)
    model = NetworkCIFAR(ZOO["PDARTS"](), channels=8, num_classes=10, layers=5, auxiliary=True)
    model.train()
    logits, aux = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert aux is not None
    assert aux.shape == (2, 10)
    model.eval()
    _, aux = model(torch.randn(2, 3, 32, 32))
    assert aux is None


def test_drop_path_zeroes_whole_samples_and_rescales() -> None:
    torch.manual_seed(0)
    x = torch.ones(64, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_sample = y.flatten(1)
    kept = per_sample[:, 0] != 0
    assert torch.all(per_sample[kept] == 1 / 0.75)
    assert torch.all(per_sample[~kept] == 0)
    assert 0 < int(kept.sum()) < 64


def _cell_outputs(gene: list[tuple[str, int]], reduction: bool, drop_prob: float) -> torch.Tensor:
    genotype = Genotype(tuple(gene), (2, 3, 4, 5), tuple(gene), (2, 3, 4, 5))
    torch.manual_seed(0)
    cell = Cell(genotype, 4, 4, 4, reduction=reduction, reduction_prev=False).train()
    x0, x1 = torch.randn(2, 2, 4, 8, 8).unbind(0)
    torch.manual_seed(1)
    return cell(x0, x1, drop_prob)


def test_drop_path_spares_identities_only() -> None:
    """DARTS drops paths through every op but an identity (a skip-connect that keeps the size);
    a reducing skip-connect (a factorized reduction) is dropped like any op."""
    skips = [("skip_connect", 0), ("skip_connect", 1)] * 4
    assert torch.equal(_cell_outputs(skips, False, 0.9), _cell_outputs(skips, False, 0.0))
    assert not torch.equal(_cell_outputs(skips, True, 0.9), _cell_outputs(skips, True, 0.0))
    convs = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4
    assert not torch.equal(_cell_outputs(convs, False, 0.9), _cell_outputs(convs, False, 0.0))

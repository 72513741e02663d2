"""The search supernet: mixed ops by hand, skip dropout, shapes, alphas and alpha gradients.

Every op in the registry gets the same shape / stride / gradient / NaN test (timm style), so a
plugin's op is covered as soon as it is installed.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from pdarts_ops import FactorizedReduce, Zero, avg_pool_3x3, max_pool_3x3, skip_connect, zero
from torch import nn
from torch.func import functional_call

from pdarts_cli.arch import arch_from_dict, arch_json
from pdarts_cli.device import Precision
from pdarts_cli.registry import op_registry
from pdarts_cli.schedule import DARTS_OPS
from pdarts_cli.searching.architect import first_order_grads, second_order_grads
from pdarts_cli.searching.supernet import (
    MixedOp,
    SearchNetwork,
    SkipDropout,
    build_candidate,
)
from pdarts_cli.topology import reduction_indices

FP32 = Precision("cpu", None)
EDGES = 14  # a 4-step cell
BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default


def all_candidates(ops: tuple[str, ...] = DARTS_OPS) -> tuple[tuple[str, ...], ...]:
    return tuple(ops for _ in range(EDGES))


def tiny_network(
    normal: tuple[str, ...] = DARTS_OPS,
    reduce: tuple[str, ...] = DARTS_OPS,
    seed: int = 0,
    alpha_init_scale: float = 1e-3,
) -> SearchNetwork:
    """4 channels, 3 cells (normal, reduce, reduce), 1-channel 8x8 images, 10 classes."""
    torch.manual_seed(seed)
    factories = {name: op_registry().get(name) for name in sorted({*normal, *reduce})}
    return SearchNetwork(
        channels=4,
        num_classes=10,
        cells=3,
        in_channels=1,
        normal_candidates=all_candidates(normal),
        reduce_candidates=all_candidates(reduce),
        factories=factories,
        alpha_init_scale=alpha_init_scale,
    )


def tiny_batch(seed: int = 1, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=generator)
    y = torch.arange(n) % 10
    return x, y


# ---------------------------------------------------------------------------------------------
# mixed op


def hand_mixed_op(channels: int) -> MixedOp:
    ops = nn.ModuleList(
        [
            build_candidate("none", zero, channels, 1),
            build_candidate("skip_connect", skip_connect, channels, 1),
            build_candidate("avg_pool_3x3", avg_pool_3x3, channels, 1),
        ]
    )
    return MixedOp(ops, ("none", "skip_connect", "avg_pool_3x3")).eval()


def test_mixed_op_matches_a_hand_computation() -> None:
    mixed = hand_mixed_op(2)
    # channel 0 is 0..8 row by row; channel 1 is -2 times channel 0
    plane = torch.arange(9.0).reshape(3, 3)
    x = torch.stack([plane, -2 * plane]).unsqueeze(0)
    # 3x3 average, stride 1, padding 1, padding excluded: each output is the mean of the
    # in-image pixels of its window, e.g. corner (0,0): (0+1+3+4)/4 = 2, edge (0,1):
    # (0+1+2+3+4+5)/6 = 2.5, centre: 36/9 = 4
    pooled = torch.tensor([[2.0, 2.5, 3.0], [3.5, 4.0, 4.5], [5.0, 5.5, 6.0]])
    pooled = torch.stack([pooled, -2 * pooled]).unsqueeze(0)
    # affine-free BN in eval with fresh running stats (mean 0, var 1): x / sqrt(1 + eps)
    bn_pooled = pooled / math.sqrt(1 + BN_EPS)
    w_none, w_skip, w_avg = 0.5, 0.3, 0.2
    expected = w_skip * x + w_avg * bn_pooled  # none adds 0
    out = mixed(x, torch.tensor([w_none, w_skip, w_avg]))
    torch.testing.assert_close(out, expected)


def test_none_contributes_nothing() -> None:
    mixed = hand_mixed_op(2)
    x = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    out = mixed(x, torch.tensor([100.0, 0.0, 0.0]))
    assert torch.equal(out, torch.zeros_like(x))
    only_none = MixedOp(nn.ModuleList([build_candidate("none", zero, 2, 2)]), ("none",))
    out = only_none(x, torch.tensor([1.0]))
    assert out.shape == (1, 2, 3, 3)
    assert not out.any()


# ---------------------------------------------------------------------------------------------
# candidates as the search network holds them


def test_skip_dropout_follows_identity_skip_connects_only() -> None:
    identity = build_candidate("skip_connect", skip_connect, 4, 1)
    assert isinstance(identity, nn.Sequential)
    assert isinstance(identity[0], nn.Identity)
    assert isinstance(identity[1], SkipDropout)
    reduce = build_candidate("skip_connect", skip_connect, 4, 2)
    assert isinstance(reduce, FactorizedReduce)
    assert not any(isinstance(m, SkipDropout) for m in reduce.modules())
    for name in DARTS_OPS:
        if name == "skip_connect":
            continue
        for stride in (1, 2):
            op = build_candidate(name, op_registry().get(name), 4, stride)
            assert not any(isinstance(m, SkipDropout) for m in op.modules()), (name, stride)


@pytest.mark.parametrize("factory", [max_pool_3x3, avg_pool_3x3])
@pytest.mark.parametrize("stride", [1, 2])
def test_pooling_is_followed_by_affine_free_batchnorm(factory: object, stride: int) -> None:
    op = build_candidate("pool", factory, 4, stride)  # type: ignore[arg-type]
    assert isinstance(op, nn.Sequential)
    assert len(op) == 2
    assert isinstance(op[1], nn.BatchNorm2d)
    assert op[1].num_features == 4
    assert not op[1].affine


@pytest.mark.parametrize("name", DARTS_OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_search_candidates_are_affine_free(name: str, stride: int) -> None:
    op = build_candidate(name, op_registry().get(name), 4, stride)
    norms = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.affine for m in norms)
    if name == "none":
        assert isinstance(op, Zero)


def test_skip_dropout_in_training() -> None:
    op = build_candidate("skip_connect", skip_connect, 4, 1)
    dropout = next(m for m in op.modules() if isinstance(m, SkipDropout))
    x = torch.ones(2, 4, 8, 8)
    op.train()
    assert torch.equal(op(x), x)  # p = 0 until the stage loop sets it
    dropout.p = 0.5
    torch.manual_seed(0)
    out = op(x)
    # element-wise dropout: zeros, the rest scaled by 1 / (1 - 0.5) = 2
    assert set(out.unique().tolist()) == {0.0, 2.0}
    dropout.p = 0.2
    out = op(x)
    kept = out[out != 0]
    assert (out == 0).any()
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.8))
    op.eval()
    assert torch.equal(op(x), x)


# ---------------------------------------------------------------------------------------------
# the network


@pytest.mark.parametrize(
    ("cells", "expected"),
    [(3, (1, 2)), (5, (1, 3)), (8, (2, 5)), (11, (3, 7)), (17, (5, 11)), (20, (6, 13))],
)
def test_reduction_indices(cells: int, expected: tuple[int, int]) -> None:
    assert reduction_indices(cells) == expected


def test_set_skip_dropout_reaches_every_skip_dropout() -> None:
    net = tiny_network()
    dropouts = [m for m in net.modules() if isinstance(m, SkipDropout)]
    # 3 cells: normal, reduce, reduce. A normal cell has 14 identity skip-connects; in a
    # reduction cell the 8 edges from the two inputs stride 2 (FactorizedReduce), leaving
    # 14 - 8 = 6 identities: 14 + 6 + 6 = 26
    assert [c.reduction for c in net.cells] == [False, True, True]
    assert len(dropouts) == 26
    assert all(m.p == 0.0 for m in dropouts)
    net.set_skip_dropout(0.3)
    assert all(m.p == 0.3 for m in dropouts)


def test_forward_shapes() -> None:
    net = tiny_network()
    shapes = []
    for c in net.cells:
        c.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    x, _ = tiny_batch(n=2)
    logits = net(x)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    # 4 nodes concatenated: 4 * C channels; C doubles and the size halves at each reduction
    assert shapes == [(2, 16, 8, 8), (2, 32, 4, 4), (2, 64, 2, 2)]


def test_alphas_shape_and_init_scale() -> None:
    net = tiny_network(normal=("none", "skip_connect", "sep_conv_3x3"), reduce=DARTS_OPS[:5])
    assert net.alphas_normal.shape == (EDGES, 3)
    assert net.alphas_reduce.shape == (EDGES, 5)
    full = tiny_network()
    alphas = full.alphas_normal.detach()
    assert alphas.shape == (EDGES, 8)
    # 1e-3 * N(0, 1) over 112 values
    assert alphas.abs().max() < 1e-2
    assert 5e-4 < float(alphas.std()) < 2e-3
    # the same random draw scaled: alphas = init_scale * N(0, 1)
    doubled = tiny_network(alpha_init_scale=2e-3).alphas_normal.detach()
    torch.testing.assert_close(doubled, 2 * alphas)


def test_weight_parameters_exclude_the_alphas() -> None:
    net = tiny_network()
    weights = {id(p) for p in net.weight_parameters()}
    alphas = {id(p) for p in net.arch_parameters()}
    assert alphas == {id(net.alphas_normal), id(net.alphas_reduce)}
    assert not weights & alphas
    assert weights | alphas == {id(p) for p in net.parameters()}


def test_arch_weights_round_trip() -> None:
    net = tiny_network(normal=("none", "skip_connect", "sep_conv_3x3"), reduce=DARTS_OPS[:5])
    arch = net.arch_weights({"stage": 2, "cells_in_network": 3})
    assert arch.steps == 4
    assert arch.normal[0].ops == ("none", "skip_connect", "sep_conv_3x3")
    assert arch.reduce[13].ops == DARTS_OPS[:5]
    assert arch.normal[7].alpha == tuple(net.alphas_normal[7].tolist())
    assert dict(arch.extra) == {"stage": 2, "cells_in_network": 3}
    assert arch_from_dict(arch.to_dict()) == arch
    assert arch_from_dict(json.loads(arch_json(arch))) == arch


# ---------------------------------------------------------------------------------------------
# alpha gradients


def test_first_order_grads_reach_only_the_alphas() -> None:
    net = tiny_network()
    x, y = tiny_batch()
    grads, loss, logits = first_order_grads(net, x, y, FP32)
    assert all(p.grad is None for p in net.parameters())
    assert [g.shape for g in grads] == [p.shape for p in net.arch_parameters()]
    assert logits.shape == (4, 10)

    reference = F.cross_entropy(net(x), y)
    reference.backward()
    torch.testing.assert_close(loss, reference.detach())
    for g, p in zip(grads, net.arch_parameters()):
        assert p.grad is not None
        torch.testing.assert_close(g, p.grad)
        assert g.abs().sum() > 0


def test_second_order_grads_are_finite_and_leave_the_weights() -> None:
    net = tiny_network()
    x, y = tiny_batch(seed=1)
    xa, ya = tiny_batch(seed=2)
    optimizer = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    # one real step, so that the momentum buffer is part of the virtual step
    F.cross_entropy(net(x), y).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in net.parameters()]

    grads, loss, logits = second_order_grads(net, x, y, xa, ya, optimizer, FP32)
    assert [g.shape for g in grads] == [p.shape for p in net.arch_parameters()]
    assert all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(loss)
    assert logits.shape == (4, 10)
    for old, p in zip(before, net.parameters()):
        assert torch.equal(old, p.detach())


def test_second_order_matches_the_darts_formula() -> None:
    """DARTS (Liu et al. 2019, eqs. 7-8), written out here with torch.func:
    w' = w - lr * (dL_train/dw + wd * w + momentum * buf);  v = dL_val(w', a)/dw';
    eps = 0.01 / ||v||;  grad = dL_val(w', a)/da - lr * (dL_train(w + eps v)/da
    - dL_train(w - eps v)/da) / (2 eps)."""
    net = tiny_network(alpha_init_scale=1.0)  # alphas of order 1: a sizeable Hessian term
    x, y = tiny_batch(seed=1)
    xa, ya = tiny_batch(seed=2)
    lr, momentum, decay = 0.1, 0.9, 3e-4
    optimizer = torch.optim.SGD(
        net.weight_parameters(), lr=lr, momentum=momentum, weight_decay=decay
    )
    F.cross_entropy(net(x), y).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    got, _, _ = second_order_grads(net, x, y, xa, ya, optimizer, FP32)

    names = [n for n, _ in net.named_parameters() if not n.startswith("alphas_")]
    params = net.weight_parameters()
    alphas = net.arch_parameters()
    alpha_names = ["alphas_normal", "alphas_reduce"]

    def loss_at(weights: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        state = {**dict(zip(names, weights)), **dict(zip(alpha_names, alphas))}
        return F.cross_entropy(functional_call(net, state, (xb,)), yb)

    w = [p.detach() for p in params]
    g = torch.autograd.grad(loss_at(list(params), x, y), params)
    virtual = [
        (wi - lr * (gi + decay * wi + momentum * optimizer.state[p]["momentum_buffer"]))
        .detach()
        .requires_grad_(True)
        for wi, gi, p in zip(w, g, params)
    ]
    out = torch.autograd.grad(loss_at(virtual, xa, ya), [*alphas, *virtual])
    direct, v = out[: len(alphas)], out[len(alphas) :]
    eps = 0.01 / torch.cat([t.flatten() for t in v]).norm()
    plus = torch.autograd.grad(loss_at([a + eps * b for a, b in zip(w, v)], x, y), alphas)
    minus = torch.autograd.grad(loss_at([a - eps * b for a, b in zip(w, v)], x, y), alphas)
    expected = [d - lr * (p - m) / (2 * eps) for d, p, m in zip(direct, plus, minus)]

    for e, d, r in zip(expected, direct, got):
        assert (e - d).norm() > 0.1 * e.norm()  # the Hessian term matters in this check
        torch.testing.assert_close(r, e, rtol=1e-3, atol=1e-5)


def test_second_order_with_zero_lr_is_first_order() -> None:
    # with lr 0 the virtual step is no step and the Hessian term is multiplied by 0
    net = tiny_network()
    x, y = tiny_batch(seed=1)
    xa, ya = tiny_batch(seed=2)
    optimizer = torch.optim.SGD(net.weight_parameters(), lr=0.0, momentum=0.9)
    second, _, _ = second_order_grads(net, x, y, xa, ya, optimizer, FP32)
    first, _, _ = first_order_grads(net, xa, ya, FP32)
    for s, f in zip(second, first):
        torch.testing.assert_close(s, f)


# ---------------------------------------------------------------------------------------------
# every registered op (timm style)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", op_registry().names())
def test_registered_op(name: str, stride: int, affine: bool) -> None:
    torch.manual_seed(0)
    op = op_registry().get(name)(4, stride, affine)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = op(x)
    assert out.shape == (2, 4, 8 // stride, 8 // stride)
    assert torch.isfinite(out).all()
    # a random projection: a plain sum through a BatchNorm has a zero gradient
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    params = list(op.parameters())
    for p in params:
        assert p.grad is not None
        assert torch.isfinite(p.grad).all()
    if params:
        assert any(p.grad.abs().sum() > 0 for p in params if p.grad is not None)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", op_registry().names())
def test_registered_op_as_a_search_candidate(name: str, stride: int) -> None:
    torch.manual_seed(0)
    op = build_candidate(name, op_registry().get(name), 4, stride)
    out = op(torch.randn(2, 4, 8, 8))
    assert out.shape == (2, 4, 8 // stride, 8 // stride)
    assert torch.isfinite(out).all()

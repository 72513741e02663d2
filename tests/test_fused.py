"""The fused mixed op computes the plain ``sum_o w_o * o(x)``: same logits, same gradients, same
running statistics, on every op at both strides, in either memory format."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pdarts_cli.device import Precision
from pdarts_cli.registry import op_registry
from pdarts_cli.schedule import DARTS_OPS
from pdarts_cli.searching.architect import first_order_grads
from pdarts_cli.searching.depthwise import run_conv
from pdarts_cli.searching.fused import plan_candidate
from pdarts_cli.searching.supernet import MixedOp, SearchNetwork, build_candidate

CHANNELS = 6


def candidates(stride: int, names: tuple[str, ...] = DARTS_OPS) -> nn.ModuleList:
    torch.manual_seed(0)
    return nn.ModuleList(
        build_candidate(name, op_registry().get(name), CHANNELS, stride) for name in names
    )


def plain_sum(
    ops: nn.ModuleList, names: tuple[str, ...], x: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """The definition, one candidate at a time."""
    terms = [w[i] * op(x) for i, (name, op) in enumerate(zip(names, ops)) if name != "none"]
    out = terms[0]
    for term in terms[1:]:
        out = out + term
    return out


def inputs(channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, CHANNELS, 8, 8, generator=generator)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    alphas = torch.randn(len(DARTS_OPS), generator=generator)
    return x.requires_grad_(True), alphas.requires_grad_(True)


def buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in module.named_buffers()}


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_mixed_op_equals_the_plain_sum(stride: int, channels_last: bool) -> None:
    ops = candidates(stride)
    fused = MixedOp(ops, DARTS_OPS).train()
    plain = copy.deepcopy(ops).train()
    x, alphas = inputs(channels_last)
    x2, alphas2 = (t.detach().clone().requires_grad_(True) for t in (x, alphas))

    out = fused(x, alphas.softmax(-1))
    expected = plain_sum(plain, DARTS_OPS, x2, alphas2.softmax(-1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)

    grad = torch.randn_like(out)
    params = [alphas, x, *ops.parameters()]
    params2 = [alphas2, x2, *plain.parameters()]
    for got, want in zip(
        torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params2, grad)
    ):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for (name, got), want in zip(buffers(ops).items(), buffers(plain).values()):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=name)


def test_eval_and_no_grad_take_the_plain_path() -> None:
    ops = candidates(1)
    fused = MixedOp(ops, DARTS_OPS)
    plain = copy.deepcopy(ops)
    x, alphas = inputs(False)
    w = alphas.softmax(-1).detach()
    with torch.no_grad():
        torch.testing.assert_close(fused(x, w), plain_sum(plain, DARTS_OPS, x, w))
        assert torch.equal(buffers(ops)["1.1.running_mean"], buffers(plain)["1.1.running_mean"])
    fused.eval()
    plain.eval()
    torch.testing.assert_close(fused(x, w), plain_sum(plain, DARTS_OPS, x, w))


def test_plans_split_relu_body_and_batchnorm() -> None:
    ops = candidates(1)
    plans = {name: plan_candidate(i, op) for i, (name, op) in enumerate(zip(DARTS_OPS, ops))}
    sep = plans["sep_conv_3x3"]
    assert sep.relu_input
    assert sep.norm is not None
    assert not sep.recomputable
    # ReLU dw pw BN ReLU dw pw BN: the first ReLU and the last BN come off
    assert [type(m).__name__ for m in sep.body] == [
        "Conv2d", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "Conv2d",
    ]  # fmt: skip
    pool = plans["max_pool_3x3"]
    assert not pool.relu_input
    assert pool.norm is not None
    assert pool.recomputable
    skip = plans["skip_connect"]
    assert not skip.relu_input
    assert skip.norm is None


def test_momentum_none_and_zero_follow_batchnorm() -> None:
    """A cumulative average (momentum None) and a frozen one (momentum 0, as the cell
    checkpoint's recomputation sets it) update the statistics as nn.BatchNorm2d does."""
    for momentum in (None, 0.0):
        ops = candidates(1, ("avg_pool_3x3", "dil_conv_3x3"))
        for module in ops.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = momentum
        plain = copy.deepcopy(ops)
        x, alphas = inputs(False)
        for _ in range(2):
            MixedOp(ops, ("avg_pool_3x3", "dil_conv_3x3"))(x, alphas[:2])
            plain_sum(plain, ("avg_pool_3x3", "dil_conv_3x3"), x, alphas[:2])
        for (name, got), want in zip(buffers(ops).items(), buffers(plain).values()):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=name)


def test_network_gradients_match_the_plain_network() -> None:
    """A whole supernet, fused against the same weights run op by op."""
    torch.manual_seed(0)
    factories = {name: op_registry().get(name) for name in DARTS_OPS}
    edges = tuple(DARTS_OPS for _ in range(14))
    network = SearchNetwork(4, 10, 3, 1, edges, edges, factories).train()
    plain = copy.deepcopy(network)
    for module in plain.modules():
        if isinstance(module, MixedOp):
            module.forward = _plain_forward.__get__(module)  # type: ignore[method-assign]
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(4)
    loss = nn.functional.cross_entropy(network(x), y)
    loss2 = nn.functional.cross_entropy(plain(x), y)
    torch.testing.assert_close(loss, loss2, rtol=1e-6, atol=1e-6)
    grads = torch.autograd.grad(loss, list(network.parameters()))
    grads2 = torch.autograd.grad(loss2, list(plain.parameters()))
    for got, want in zip(grads, grads2):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def _plain_forward(self: MixedOp, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = plain_sum(self.ops, DARTS_OPS, x, weights)
    return out


@pytest.mark.parametrize(
    ("kernel", "dilation", "stride"),
    [(3, 2, 1), (5, 2, 1), (3, 2, 2), (5, 2, 2), (3, 3, 1), (3, 1, 1), (5, 1, 2)],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_rewrites_compute_the_convolution(
    kernel: int, dilation: int, stride: int, channels_last: bool
) -> None:
    torch.manual_seed(0)
    padding = dilation * (kernel - 1) // 2
    conv = nn.Conv2d(CHANNELS, CHANNELS, kernel, stride, padding, dilation, CHANNELS, False)
    x, _ = inputs(channels_last)
    out = run_conv(conv, x)
    expected = conv(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(expected)
    got = torch.autograd.grad(out, [x, conv.weight], grad)
    want = torch.autograd.grad(expected, [x, conv.weight], grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    (input_only,) = torch.autograd.grad(run_conv(conv.requires_grad_(False), x), [x], grad)
    torch.testing.assert_close(input_only, want[0], rtol=1e-5, atol=1e-5)


def test_the_first_order_alpha_step_freezes_the_weights_only_while_it_runs() -> None:
    torch.manual_seed(0)
    factories = {name: op_registry().get(name) for name in DARTS_OPS}
    edges = tuple(DARTS_OPS for _ in range(14))
    network = SearchNetwork(4, 10, 3, 1, edges, edges, factories).train()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(4)
    reference = copy.deepcopy(network)
    loss = nn.functional.cross_entropy(reference(x), y)
    expected = torch.autograd.grad(loss, reference.arch_parameters())
    grads, _, _ = first_order_grads(network, x, y, Precision("cpu", None))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert all(p.requires_grad for p in network.parameters())

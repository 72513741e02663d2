"""One search iteration, pinned against a computation built by hand (ALGORITHM.md, "Each stage").

In a warm-up epoch only the weights move. In a joint step the alpha gradient comes from the
alpha batch alone, at the current weights (first order), and the alpha update happens before
the weight step, whose loss is then computed with the updated alphas.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_schedule_dict
from searchhelpers import largest_alpha_change
from torch import nn

from pdarts_cli.context import RunContext
from pdarts_cli.data import DatasetInfo, ImageDataset, ImageTensors
from pdarts_cli.device import resolve_precision
from pdarts_cli.schedule import Schedule, validate_schedule
from pdarts_cli.searching import SearchOptions, run_search
from pdarts_cli.searching.step import Stage, all_candidates, build_stage, search_step
from pdarts_cli.searching.supernet import SearchNetwork

CLASSES = 4
BATCH = 6


def _schedule() -> Schedule:
    return validate_schedule(tiny_schedule_dict(), "step test")


def _environment() -> RunContext:
    images = torch.zeros(8, 1, 8, 8, dtype=torch.uint8)
    data = ImageTensors(images, torch.zeros(8, dtype=torch.int64))
    info = DatasetInfo("synthetic", CLASSES, 1, 8, (0.5,), (0.25,))
    cpu = torch.device("cpu")
    return RunContext(
        data=ImageDataset(info, data, data),
        device=cpu,
        precision=resolve_precision("auto", cpu),
        channels_last=False,
        dataset="synthetic",
    )


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, 1, 8, 8, generator=generator)
    y = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    return x, y


def _stage(schedule: Schedule, env: RunContext) -> Stage:
    candidates = all_candidates(schedule)
    return build_stage(schedule, 0, candidates, candidates, env)


def _weights(network: SearchNetwork) -> list[torch.Tensor]:
    return [p.detach().clone() for p in network.weight_parameters()]


def _alphas(network: SearchNetwork) -> list[torch.Tensor]:
    return [p.detach().clone() for p in network.arch_parameters()]


def _clip_(grads: list[torch.Tensor], max_norm: float) -> None:
    """torch's clip_grad_norm_ rule: scale by max_norm / (norm + 1e-6) when that is < 1."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)


def _adam_first_step(
    values: list[torch.Tensor], grads: list[torch.Tensor], schedule: Schedule
) -> list[torch.Tensor]:
    """Adam's first update from zero state, L2 weight decay added to the gradient."""
    lr, (beta1, beta2), decay = (
        schedule.alphas.lr,
        schedule.alphas.betas,
        schedule.alphas.weight_decay,
    )
    out = []
    for value, grad in zip(values, grads):
        g = grad + decay * value
        m_hat = (1 - beta1) * g / (1 - beta1)
        v_hat = (1 - beta2) * g * g / (1 - beta2)
        out.append(value - lr * m_hat / (v_hat.sqrt() + 1e-8))
    return out


def _sgd_first_step(
    values: list[torch.Tensor], grads: list[torch.Tensor], schedule: Schedule
) -> list[torch.Tensor]:
    """SGD with momentum, first step (the buffer is the gradient), L2 weight decay."""
    lr, decay = schedule.weights.lr, schedule.weights.weight_decay
    return [value - lr * (grad + decay * value) for value, grad in zip(values, grads)]


def _grads(
    network: nn.Module, params: list[nn.Parameter], batch: tuple[torch.Tensor, ...]
) -> list[torch.Tensor]:
    loss = F.cross_entropy(network(batch[0]), batch[1])
    return [g.detach().clone() for g in torch.autograd.grad(loss, params)]


def _hand_weight_step(
    network: SearchNetwork, batch: tuple[torch.Tensor, ...], schedule: Schedule
) -> list[torch.Tensor]:
    """The weights after one clipped SGD step on ``batch`` at the network's current alphas."""
    grads = _grads(network, network.weight_parameters(), batch)
    _clip_(grads, schedule.weights.grad_clip_norm)
    return _sgd_first_step(_weights(network), grads, schedule)


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b))


def test_a_warmup_step_moves_the_weights_and_not_the_alphas() -> None:
    schedule, env = _schedule(), _environment()
    stage = _stage(schedule, env)
    alphas_before, weights_before = _alphas(stage.network), _weights(stage.network)
    _, _, alpha_result = search_step(schedule, stage, _batch(0), None, env)
    assert alpha_result is None
    assert all(torch.equal(a, b) for a, b in zip(alphas_before, _alphas(stage.network)))
    assert not _close(weights_before, _weights(stage.network))


def test_a_joint_step_matches_the_hand_built_computation() -> None:
    schedule, env = _schedule(), _environment()
    stage = _stage(schedule, env)
    weight_batch, alpha_batch = _batch(1), _batch(2)
    reference = copy.deepcopy(stage.network)

    # 1. alpha gradient on the alpha batch at the current weights; clip; Adam step.
    alpha_grads = _grads(reference, reference.arch_parameters(), alpha_batch)
    _clip_(alpha_grads, schedule.alphas.grad_clip_norm)
    new_alphas = _adam_first_step(_alphas(reference), alpha_grads, schedule)
    with torch.no_grad():
        for param, value in zip(reference.arch_parameters(), new_alphas):
            param.copy_(value)
    # 2. weight gradient on the weight batch, with the updated alphas; clip; SGD step.
    new_weights = _hand_weight_step(reference, weight_batch, schedule)

    search_step(schedule, stage, weight_batch, alpha_batch, env)
    assert _close(_alphas(stage.network), new_alphas)
    assert _close(_weights(stage.network), new_weights)


def test_the_alpha_update_ignores_the_weight_batch() -> None:
    schedule, env = _schedule(), _environment()
    alpha_batch = _batch(2)
    alphas_after = []
    for weight_seed in (3, 4):
        stage = _stage(schedule, env)
        search_step(schedule, stage, _batch(weight_seed), alpha_batch, env)
        alphas_after.append(_alphas(stage.network))
    assert all(torch.equal(a, b) for a, b in zip(*alphas_after))


def test_the_alpha_update_comes_before_the_weight_step() -> None:
    """Weights stepped with the old alphas (the other order) give a different result."""
    schedule, env = _schedule(), _environment()
    stage = _stage(schedule, env)
    weight_batch, alpha_batch = _batch(1), _batch(2)
    weights_with_old_alphas = _hand_weight_step(
        copy.deepcopy(stage.network), weight_batch, schedule
    )

    search_step(schedule, stage, weight_batch, alpha_batch, env)
    assert not _close(_weights(stage.network), weights_with_old_alphas)


@pytest.mark.parametrize("order", ["first", "second"])
def test_a_joint_step_moves_the_alphas(order: str) -> None:
    schedule = _schedule().with_overrides(alphas={"order": order})
    env = _environment()
    stage = _stage(schedule, env)
    before = _alphas(stage.network)
    _, _, alpha_result = search_step(schedule, stage, _batch(1), _batch(2), env)
    assert alpha_result is not None
    change = max(float((a - b).abs().max()) for a, b in zip(before, _alphas(stage.network)))
    assert change > 0.5 * schedule.alphas.lr  # Adam's first step moves each alpha by ~lr


def test_a_whole_search_moves_the_alphas_from_their_start(tmp_path: Path) -> None:
    """The end-to-end counterpart, also run on CUDA by test_gpu.py: the final alphas differ
    from the last stage's initial ones by at least one Adam step."""
    schedule = _schedule().with_overrides(epochs=2)
    run_search(schedule, SearchOptions(dataset="digits", device="cpu"), tmp_path / "r")
    assert largest_alpha_change(tmp_path / "r", schedule, "digits") > schedule.alphas.lr

"""safetensors checkpoints: exact round trips of optimiser state, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pdarts_cli.checkpoint import (
    flatten_state,
    load_tensors,
    save_tensors,
    unflatten_state,
)
from pdarts_cli.errors import ArtifactError


def _trained_optimizers() -> tuple[torch.optim.SGD, torch.optim.Adam]:
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))
    sgd = torch.optim.SGD([a], lr=0.1, momentum=0.9, weight_decay=3e-4)
    adam = torch.optim.Adam([b], lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    for _ in range(2):
        loss = (a**2).sum() + (b**3).sum()
        loss.backward()
        sgd.step()
        adam.step()
    return sgd, adam


def test_optimizer_state_round_trips_exactly(tmp_path: Path) -> None:
    sgd, adam = _trained_optimizers()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = {
        "sgd": flatten_state(sgd.state_dict(), "sgd", tensors),
        "adam": flatten_state(adam.state_dict(), "adam", tensors),
    }
    path = tmp_path / "state.safetensors"
    save_tensors(path, tensors, skeleton)
    loaded, metadata = load_tensors(path)
    adam_state = unflatten_state(metadata["adam"], loaded)
    assert adam_state["param_groups"][0]["betas"] == (0.5, 0.999)  # tuples stay tuples
    assert list(adam_state["state"]) == [0]  # int keys stay ints
    original = adam.state_dict()["state"][0]
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(adam_state["state"][0][key], original[key])
    restored = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3, 2))], lr=1.0)
    restored.load_state_dict(unflatten_state(metadata["sgd"], loaded))
    buffers = [s["momentum_buffer"] for s in restored.state.values()]
    assert torch.equal(buffers[0], sgd.state_dict()["state"][0]["momentum_buffer"])


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot store set"):
        flatten_state({"x": {1, 2}}, "root", {})


def test_truncated_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    save_tensors(path, {"w": torch.ones(100)}, {"k": 1})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(ArtifactError, match="not a readable safetensors checkpoint"):
        load_tensors(path)


def test_foreign_safetensors_file_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(ArtifactError, match="not written by pdarts"):
        load_tensors(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no checkpoint"):
        load_tensors(tmp_path / "none.safetensors")


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    save_tensors(path, {"w": torch.zeros(2)}, {"version": 1})
    save_tensors(path, {"w": torch.ones(2)}, {"version": 2})
    tensors, metadata = load_tensors(path)
    assert metadata == {"version": 2}
    assert torch.equal(tensors["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]

"""The Python API: ``from pdarts_cli import search, refine, train, evaluate``."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import pdarts_cli
from pdarts_cli.arch import read_arch
from pdarts_cli.errors import ConfigError
from pdarts_cli.searching.derive import derive_genotype

SMALL = {"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "channels": 4}
OVERRIDES = {
    "stages": [
        {"cells": 3, "ops_per_edge": 8, "skip_dropout_rate": 0.0, **SMALL},
        {"cells": 4, "ops_per_edge": 3, "skip_dropout_rate": 0.4, **SMALL},
    ],
    "min_weight_steps": 2,
    "valid_last_epochs": 1,
}


def images_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 1, 8, 8), dtype=torch.uint8, generator=generator)
    return images, torch.arange(96) % 3


def test_the_api_names_are_functions_even_after_the_packages_load() -> None:
    for package in ("pdarts_cli.searching", "pdarts_cli.training", "pdarts_cli.refinement"):
        importlib.import_module(package)
    from pdarts_cli import evaluate, refine, search, train

    assert [f.__module__ for f in (search, refine, train, evaluate)] == ["pdarts_cli.api"] * 4
    assert set(pdarts_cli.__all__) >= {"Schedule", "Recipe", "Genotype", "read_arch"}
    with pytest.raises(AttributeError):
        _ = pdarts_cli.no_such_name


@pytest.mark.slow
def test_search_of_a_dataset_and_of_tensors_into_a_run_directory_agree(tmp_path: Path) -> None:
    images, labels = images_and_labels()
    dataset = TensorDataset(images.float() / 255, labels)  # floats in [0, 1]
    in_memory = pdarts_cli.search(dataset, "quick", overrides=OVERRIDES, device="cpu")
    assert in_memory.run_dir is None
    assert [(m.stage, m.epoch) for m in in_memory.metrics] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    on_disk = pdarts_cli.search(
        (images, labels), "quick", out_dir=tmp_path / "run", overrides=OVERRIDES, device="cpu"
    )
    assert on_disk.run_dir == tmp_path / "run"
    assert on_disk.arch.normal == in_memory.arch.normal
    assert on_disk.genotype == in_memory.genotype
    assert pdarts_cli.refine(tmp_path / "run") == on_disk.genotype
    assert pdarts_cli.refine(tmp_path / "run" / "final.arch.json", None) == on_disk.unrefined
    arch = read_arch(tmp_path / "run" / "final.arch.json")
    assert pdarts_cli.refine(arch, 0) == derive_genotype(arch, 0)


def test_overrides_are_validated_before_any_work() -> None:
    images, labels = images_and_labels()
    with pytest.raises(ConfigError, match="epochs"):
        pdarts_cli.search((images, labels), "quick", overrides={"stages.1.epochs": 0})

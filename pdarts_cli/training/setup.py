"""What a training run is set up with before its first step: its options, its run context
(data, device, numerics, processes) and its network."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn

from pdarts_cli.config import FrozenModel
from pdarts_cli.context import RunContext
from pdarts_cli.data import DatasetInfo, resolve_dataset
from pdarts_cli.device import (
    Precision,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
)
from pdarts_cli.distributed import join_processes
from pdarts_cli.errors import ConfigError
from pdarts_cli.genotype import Genotype
from pdarts_cli.training.network import NetworkCIFAR, NetworkImageNet
from pdarts_cli.training.recipe import Recipe

AUXILIARY_MIN_SIZE = 5  # the auxiliary head pools 5x5 windows


class TrainOptions(FrozenModel):
    dataset: str = Field(description="Dataset spec: cifar10, cifar100, digits, npz:PATH, ...")
    data_dir: Path | None = None
    download: bool = False
    image_size: int | None = Field(default=None, ge=4)
    device: str = "auto"
    threads: PositiveInt | Literal["auto"] | None = Field(
        default=None,
        description="CPU threads: a count, or auto (the cores other processes leave free); "
        "None: PDARTS_THREADS, else auto.",
    )


def training_precision(recipe: Recipe, device: torch.device) -> Precision:
    """``auto``: bf16 autocast for ImageNet networks, float32 for CIFAR ones. Measured on an
    H200 (benchmarks/results/train-step-h200.jsonl): bf16 with channels_last trains the
    ImageNet network 25% faster at batch 256 and halves its memory, while at CIFAR size bf16
    was 5-30% slower."""
    mode = recipe.amp
    if mode == "auto":
        mode = "bf16" if recipe.network == "imagenet" else "off"
    return resolve_precision(mode, device)


def training_channels_last(recipe: Recipe, device: torch.device) -> bool:
    """``auto``: channels_last on CUDA, 10% faster for the CIFAR network in float32 on an
    H200 and part of the faster ImageNet setting."""
    if recipe.channels_last == "auto":
        return device.type == "cuda"
    return resolve_channels_last(recipe.channels_last, device)


def train_context(recipe: Recipe, options: TrainOptions) -> RunContext:
    """The device (this rank's GPU under torchrun), numerics, processes and data of a run."""
    device, setup = join_processes(resolve_device(options.device))
    data = resolve_dataset(options.dataset, options.data_dir, options.download, options.image_size)
    return RunContext(
        data=data,
        device=device,
        precision=training_precision(recipe, device),
        channels_last=training_channels_last(recipe, device),
        dist=setup,
        dataset=options.dataset,
    )


def auxiliary_input_size(recipe: Recipe, image_size: int) -> int:
    """Side of the feature map the auxiliary head sees (after the second reduction)."""
    stem_stride = 8 if recipe.network == "imagenet" else 1
    return math.ceil(image_size / stem_stride / 4)


def build_network(genotype: Genotype, recipe: Recipe, info: DatasetInfo) -> nn.Module:
    auxiliary = recipe.auxiliary_weight > 0
    if auxiliary and auxiliary_input_size(recipe, info.image_size) < AUXILIARY_MIN_SIZE:
        raise ConfigError(
            f"the auxiliary head needs {AUXILIARY_MIN_SIZE}x{AUXILIARY_MIN_SIZE} feature maps, "
            f"but {info.image_size}px images give "
            f"{auxiliary_input_size(recipe, info.image_size)}; set auxiliary_weight = 0"
        )
    network_class = NetworkImageNet if recipe.network == "imagenet" else NetworkCIFAR
    return network_class(
        genotype,
        channels=recipe.channels,
        num_classes=info.num_classes,
        layers=recipe.layers,
        auxiliary=auxiliary,
        in_channels=info.channels,
    )

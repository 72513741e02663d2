"""Training recipes: how an evaluation network is trained (ALGORITHM.md, "Evaluation networks").

Presets: ``paper-cifar`` and ``paper-cifar-large`` (DARTS/P-DARTS CIFAR training),
``paper-imagenet`` (the mobile setting) and ``quick`` (a CPU demo). Every field can be set in a
recipe file or by a flag; they go through the same machinery as search schedules.
``lr_at`` and ``drop_path_at`` are what a recipe prescribes for one epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, model_validator

from pdarts_cli import overrides
from pdarts_cli.config import (
    FrozenModel,
    config_json,
    load_config,
    read_config_file,
    validate_config,
)
from pdarts_cli.rates import cosine_lr, drop_path_p, linear_tail_lr, warmup_factor

RECIPE_FORMAT: Final = "pdarts-recipe/1"
IMAGENET_REFERENCE_BATCH = 1024  # the paper's lr 0.5 is for batch 1024 (8 GPUs)
LINEAR_TAIL_EPOCHS = 5  # P-DARTS ImageNet code: the last 5 epochs decay 5x more slowly


class Recipe(FrozenModel):
    format: Literal["pdarts-recipe/1"] = RECIPE_FORMAT
    name: str = Field(default="custom", description="Preset or file the recipe came from.")
    network: Literal["cifar", "imagenet"] = Field(
        default="cifar", description="NetworkCIFAR (32x32 stem) or NetworkImageNet (224x224)."
    )
    channels: int = Field(default=36, ge=2, description="Initial channels (paper: 36).")
    layers: int = Field(default=20, ge=3, description="Cells (paper: 20 CIFAR, 14 ImageNet).")
    epochs: int = Field(default=600, ge=1, description="Training epochs (paper: 600 / 250).")
    batch_size: int = Field(default=128, ge=1, description="Global batch size (P-DARTS: 128).")
    lr: float = Field(default=0.025, gt=0, description="Initial SGD learning rate (0.025).")
    lr_min: float = Field(default=0.0, ge=0, description="Cosine floor (0).")
    lr_schedule: Literal["cosine", "linear"] = Field(
        default="cosine",
        description="cosine to lr_min (CIFAR); linear decay to 0 (P-DARTS ImageNet code).",
    )
    lr_reference_batch: int | None = Field(
        default=None,
        ge=1,
        description="When set, lr is for this batch and scales linearly with batch_size "
        "(ImageNet: 0.5 at 1024).",
    )
    warmup_epochs: int = Field(
        default=0,
        ge=0,
        description="Linear lr warm-up epochs (ImageNet: 5).",
    )
    warmup_above_batch: int = Field(
        default=0,
        ge=0,
        description="Warm up only when batch_size exceeds this (ImageNet: 256, as the authors' "
        "code does).",
    )
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum (0.9).")
    weight_decay: float = Field(
        default=3e-4, ge=0, description="Weight decay (3e-4; 5e-4 on CIFAR-100; 3e-5 ImageNet)."
    )
    grad_clip_norm: float = Field(default=5.0, gt=0, description="Gradient norm clip (5).")
    auxiliary_weight: float = Field(
        default=0.4, ge=0, description="Auxiliary head loss weight; 0 removes the head (0.4)."
    )
    drop_path_prob: float = Field(
        default=0.3,
        ge=0,
        lt=1,
        description="Drop-path probability, ramped linearly from 0 over training (0.3).",
    )
    cutout: int = Field(default=16, ge=0, description="Cutout square side in pixels (16).")
    crop_padding: int = Field(default=4, ge=0, description="Random-crop padding (4 at 32x32).")
    horizontal_flip: bool = Field(default=True, description="Random horizontal flip.")
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=1, description="Label smoothing (ImageNet: 0.1)."
    )
    ema_decay: float | None = Field(
        default=None, gt=0, lt=1, description="Keep an EMA of the weights with this decay."
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        default="auto",
        description="Autocast on CUDA. auto: bf16 for ImageNet networks, float32 for CIFAR ones "
        "(measured on an H200).",
    )
    channels_last: Literal["auto", "on", "off"] = Field(
        default="auto", description="channels_last memory format (auto: on CUDA)."
    )
    nonfinite: Literal["stop", "skip"] = Field(
        default="stop",
        description="A step whose gradient is not finite (NaN or inf): stop the run, keeping "
        "the last checkpoint, or skip the step and go on (AMP-style).",
    )
    valid_portion: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Part of the training set held out (seeded, stratified) to choose "
        "best.safetensors on; 0 holds out nothing and writes no best.safetensors. The test "
        "split never chooses anything.",
    )
    seed: int = Field(default=0, ge=0, description="Random seed (DARTS: 0).")
    num_workers: int = Field(default=4, ge=0, description="Loader workers for image folders.")

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs: must be less than epochs ({self.epochs}), got {self.warmup_epochs}"
            )
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self

    @property
    def base_lr(self) -> float:
        """The learning rate at this batch size (linear scaling when a reference is set)."""
        if self.lr_reference_batch is None:
            return self.lr
        return self.lr * self.batch_size / self.lr_reference_batch

    def with_overrides(self, **fields: Any) -> Recipe:
        """A copy with fields replaced; ``None`` values are ignored, so CLI flags can be passed
        straight through (``overrides.with_overrides`` sets nested fields by dotted key)."""
        given = {k: v for k, v in fields.items() if v is not None}
        return overrides.with_overrides(self, given, source=overrides.FLAGS_SOURCE)


def lr_at(recipe: Recipe, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based)."""
    base, epochs = recipe.base_lr, recipe.epochs
    if recipe.lr_schedule == "cosine":
        lr = cosine_lr(base, recipe.lr_min, epoch, epochs)
    else:
        lr = linear_tail_lr(base, epoch, epochs, LINEAR_TAIL_EPOCHS)
    if recipe.batch_size > recipe.warmup_above_batch:
        lr *= warmup_factor(epoch, recipe.warmup_epochs)
    return lr


def drop_path_at(recipe: Recipe, epoch: int) -> float:
    """Drop-path probability ramped linearly from 0 (DARTS: p * epoch / epochs)."""
    return drop_path_p(recipe.drop_path_prob, epoch, recipe.epochs)


def _paper_cifar() -> Recipe:
    return Recipe(name="paper-cifar")


def _paper_cifar_large() -> Recipe:
    return Recipe(name="paper-cifar-large", channels=64)


def _paper_imagenet() -> Recipe:
    return Recipe(
        name="paper-imagenet",
        network="imagenet",
        channels=48,
        layers=14,
        epochs=250,
        batch_size=1024,
        lr=0.5,
        lr_schedule="linear",
        lr_reference_batch=IMAGENET_REFERENCE_BATCH,
        warmup_epochs=5,
        warmup_above_batch=256,
        weight_decay=3e-5,
        drop_path_prob=0.0,
        cutout=0,
        crop_padding=0,
        label_smoothing=0.1,
    )


def _quick() -> Recipe:
    """A CPU demo: a small CIFAR-style network for a few minutes on the 8x8 digits."""
    return Recipe(
        name="quick",
        channels=8,
        layers=5,
        epochs=10,
        batch_size=64,
        lr=0.05,
        drop_path_prob=0.1,
        cutout=0,
        crop_padding=1,
        horizontal_flip=False,
        auxiliary_weight=0.0,  # 8x8 digits are too small for the auxiliary head
        num_workers=0,
    )


PRESETS: dict[str, Callable[[], Recipe]] = {
    "paper-cifar": _paper_cifar,
    "paper-cifar-large": _paper_cifar_large,
    "paper-imagenet": _paper_imagenet,
    "quick": _quick,
}
CIFAR100_WEIGHT_DECAY = 5e-4  # the paper's CIFAR-100 setting


def recipe_for_dataset(dataset: str) -> str:
    """The paper's recipe for a dataset when none is named."""
    name = dataset.split(":", 1)[0]
    return "paper-imagenet" if name == "imagenet" else "paper-cifar"


def adapt_to_dataset(recipe: Recipe, dataset: str, flags: Mapping[str, Any]) -> Recipe:
    """The paper's CIFAR-100 weight decay, unless the recipe is custom or the flag is set."""
    paper = recipe.name in {"paper-cifar", "paper-cifar-large"}
    if paper and dataset.split(":", 1)[0] == "cifar100" and flags.get("weight_decay") is None:
        return recipe.model_copy(update={"weight_decay": CIFAR100_WEIGHT_DECAY})
    return recipe


def validate_recipe(data: Mapping[str, Any], source: str) -> Recipe:
    return validate_config(Recipe, data, "recipe", source)


def load_recipe(name_or_path: str) -> Recipe:
    return load_config(Recipe, name_or_path, PRESETS, "recipe")


def recipe_json(recipe: Recipe) -> str:
    return config_json(recipe)


def read_recipe_file(path: Path) -> Recipe:
    return read_config_file(Recipe, path, "recipe")

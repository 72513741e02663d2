"""Where a search's data comes from and what runs it (the schedule says what is computed)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class SearchOptions(BaseModel):
    """Where the data comes from and what runs it; the schedule says what is computed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(description="Dataset spec: cifar10, cifar100, digits, npz:PATH, ...")
    data_dir: Path | None = Field(default=None, description="Root of downloaded datasets.")
    download: bool = False
    image_size: int | None = Field(default=None, ge=4, description="For image folders.")
    device: str = "auto"
    threads: PositiveInt | Literal["auto"] | None = Field(
        default=None,
        description="CPU threads: a count, or auto (the cores other processes leave free); "
        "None: PDARTS_THREADS, else auto.",
    )
    auto_batch_size: bool = Field(
        default=False,
        description="Pick each stage's batch size with the memory profiler before it starts.",
    )
    memory_budget_bytes: int | None = Field(
        default=None, gt=0, description="Budget for auto_batch_size (default: the device's)."
    )
    raise_batch: bool = Field(
        default=False,
        description="With auto_batch_size: allow a batch above the schedule's (auto-max), "
        "scaling the stage's learning rates linearly (lr_scale = batch / schedule batch).",
    )
    force_batch: bool = Field(
        default=False,
        description="Run batch sizes that leave a stage fewer than the schedule's "
        "min_weight_steps weight steps per epoch, or exceed a half of the data.",
    )

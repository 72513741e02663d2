"""The schedule's pydantic models: every field, its default, its source and its rules.

Defaults are the ``paper-cifar10`` values of ../shared/ALGORITHM.md; each field's description
names its source. Models are frozen and forbid unknown keys, so a typo in a schedule file fails
instead of silently falling back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from pdarts_ops import CANONICAL_OPS
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pdarts_cli import overrides, topology
from pdarts_cli.config import FrozenModel, validate_config
from pdarts_cli.errors import ConfigError
from pdarts_cli.registry import op_registry

SCHEDULE_FORMAT: Final = "pdarts-schedule/1"
PAPER_MAX_SKIP: Final = 2  # the paper's M: skip-connects kept in the normal cell (section 3.2.2)
MAX_SKIP_LIMIT: Final = 64  # far above any cell's edge count (8 for 4 steps)

# The DARTS candidate ops in their canonical order (ALGORITHM.md, "Search space"); the ops
# package defines the order, this name is the schedule's.
DARTS_OPS: tuple[str, ...] = CANONICAL_OPS


class StageSchedule(FrozenModel):
    """One progressive stage: a fresh supernet, searched for ``epochs`` epochs."""

    cells: int = Field(ge=1, description="Cells in the supernet (paper: 5, 11, 17).")
    ops_per_edge: int = Field(
        ge=2,
        description="Candidate ops per edge at the start of the stage (paper: 8, 5, 3); "
        "at least 2, or the alphas have nothing to choose between.",
    )
    skip_dropout_rate: float = Field(
        ge=0.0,
        lt=1.0,
        description="Initial dropout rate after identity skip-connects "
        "(paper CIFAR-10: 0.0, 0.4, 0.7; CIFAR-100: 0.1, 0.2, 0.3).",
    )
    epochs: int = Field(default=25, ge=1, description="Epochs of the stage (paper: 25).")
    warmup_epochs: int = Field(
        default=10,
        ge=0,
        description="First epochs that train the weights only (authors' code: 10).",
    )
    batch_size: int = Field(
        default=96, ge=1, description="Batch size of both training halves (paper: 96)."
    )
    channels: int = Field(default=16, ge=1, description="Initial channels (paper: 16).")
    lr_scale: float = Field(
        default=1.0,
        gt=0,
        description="Multiplies weights.lr and alphas.lr in this stage (1). "
        "`--batch-size auto-max` sets it to the chosen batch / the schedule's batch: the "
        "linear scaling rule for a batch raised above the paper's.",
    )

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_shorter_than_stage(cls, warmup_epochs: int, info: ValidationInfo) -> int:
        epochs = info.data.get("epochs")
        if epochs is not None and warmup_epochs >= epochs:
            raise ValueError(
                f"must be less than epochs ({epochs}), got {warmup_epochs}: "
                "a stage needs at least one epoch that updates the alphas"
            )
        return warmup_epochs


class WeightOptimizer(FrozenModel):
    """SGD on the network weights (DARTS / P-DARTS train_search)."""

    lr: float = Field(default=0.025, gt=0, description="Initial learning rate (paper: 0.025).")
    lr_min: float = Field(default=0.0, ge=0, description="Cosine floor (authors' code: 0).")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum (0.9).")
    weight_decay: float = Field(default=3e-4, ge=0, description="L2 weight decay (3e-4).")
    grad_clip_norm: float = Field(default=5.0, gt=0, description="Gradient norm clip (5).")

    @model_validator(mode="after")
    def _floor_below_start(self) -> WeightOptimizer:
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        return self


class ArchOptimizer(FrozenModel):
    """Adam on the architecture weights (alphas)."""

    lr: float = Field(default=6e-4, gt=0, description="Adam learning rate (paper: 6e-4).")
    betas: tuple[float, float] = Field(
        default=(0.5, 0.999), description="Adam betas (DARTS: 0.5, 0.999)."
    )
    weight_decay: float = Field(default=1e-3, ge=0, description="Adam weight decay (1e-3).")
    grad_clip_norm: float = Field(
        default=5.0, gt=0, description="Alpha gradient norm clip (authors' code: 5)."
    )
    init_scale: float = Field(
        default=1e-3, gt=0, description="Alphas start as init_scale * N(0, 1) (DARTS: 1e-3)."
    )
    order: Literal["first", "second"] = Field(
        default="first",
        description="first: the alpha step uses the current weights (P-DARTS); second: DARTS's "
        "unrolled approximation with one virtual weight step.",
    )

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"each beta must be in [0, 1), got {list(betas)}")
        return betas


class SkipDropoutDecay(FrozenModel):
    """How the skip-connect dropout rate decays within a stage (ALGORITHM.md)."""

    kind: Literal["pdarts-code", "linear", "constant"] = Field(
        default="pdarts-code",
        description="pdarts-code: r*(E-e-1)/E during warm-up, then r*exp(-factor*(e-W)) "
        "(authors' code); linear: r*(E-e-1)/E throughout; constant: r.",
    )
    factor: float = Field(
        default=0.2, gt=0, description="Exponential decay per joint epoch (authors' code: 0.2)."
    )


class DataSchedule(FrozenModel):
    train_portion: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Share of the training set that tunes the weights; the rest tunes the "
        "alphas (paper: 0.5).",
    )
    split: Literal["auto", "contiguous", "stratified"] = Field(
        default="auto",
        description="How the training set is cut into the weight and alpha halves. "
        "contiguous: the first train_portion of the indices, then the rest (the authors' split, "
        "meaningful only when the data's order is mixed); stratified: a seeded shuffle within "
        "each class, so both halves hold every class in proportion; auto: contiguous for "
        "cifar10 and cifar100 (official order, already mixed), stratified for everything else. "
        "schedule.json records the resolved choice.",
    )
    crop_padding: int = Field(
        default=4, ge=0, description="Random-crop padding in pixels (paper: 4 at 32x32)."
    )
    horizontal_flip: bool = Field(default=True, description="Random horizontal flip (paper).")
    num_workers: int = Field(
        default=0, ge=0, description="Loader workers for image folders (in-memory sets need none)."
    )


class Schedule(FrozenModel):
    """A whole P-DARTS search."""

    format: Literal["pdarts-schedule/1"] = SCHEDULE_FORMAT
    name: str = Field(default="custom", description="Preset or file the schedule came from.")
    seed: int = Field(default=2, ge=0, description="Random seed (authors' code: 2).")
    steps: int = Field(default=4, ge=1, description="Intermediate nodes per cell (DARTS: 4).")
    stem_multiplier: int = Field(default=3, ge=1, description="Stem channels / channels (3).")
    candidate_ops: tuple[str, ...] = Field(
        default=DARTS_OPS,
        description="Candidate ops per edge, in canonical order (the 8 DARTS ops).",
    )
    stages: tuple[StageSchedule, ...] = Field(min_length=1)
    weights: WeightOptimizer = WeightOptimizer()
    alphas: ArchOptimizer = ArchOptimizer()
    skip_dropout_decay: SkipDropoutDecay = SkipDropoutDecay()
    data: DataSchedule = DataSchedule()
    valid_last_epochs: int = Field(
        default=4,
        ge=0,
        description="Evaluate on the alpha half during the last N epochs of each stage "
        "(authors' code: `epochs - epoch < 5` over 0-based epochs, i.e. the last 4).",
    )
    min_weight_steps: int = Field(
        default=20,
        ge=1,
        description="A stage whose batch leaves fewer weight steps per epoch is refused "
        "(`--force-batch` insists): with a handful of steps the weights barely train and the "
        "alphas learn nothing.",
    )
    max_skip: int | None = Field(
        default=PAPER_MAX_SKIP,
        ge=0,
        le=MAX_SKIP_LIMIT,
        description="Architecture refinement: genotype.json keeps at most this many "
        "skip-connects in the normal cell (paper: M = 2; the authors' code keeps at most M). "
        "null: no refinement, genotype.json is the plain derivation.",
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        default="auto",
        description="Autocast on CUDA. auto = off: measured slower for the launch-bound "
        "supernet; bf16 halves peak memory (fp16 where bf16 is unsupported).",
    )
    checkpoint_cells: bool = Field(
        default=False,
        description="Activation checkpointing of search cells: recompute each cell in the "
        "backward pass, trading time for memory; results are unchanged.",
    )
    channels_last: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="channels_last memory format. auto: on the CPU (faster there), off on CUDA.",
    )
    nonfinite: Literal["stop", "skip"] = Field(
        default="stop",
        description="A step whose gradient is not finite (NaN or inf): stop the run, keeping "
        "the last checkpoint, or skip the step and go on (AMP-style).",
    )

    @field_validator("candidate_ops")
    @classmethod
    def _known_unique_ops(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        known = op_registry().names()
        unknown = [op for op in ops if op not in known]
        if unknown:
            raise ValueError(f"unknown op {unknown[0]!r}; known ops: {', '.join(known)}")
        duplicates = sorted({op for op in ops if ops.count(op) > 1})
        if duplicates:
            raise ValueError(f"op {duplicates[0]!r} is listed twice")
        if len(ops) < 2:
            raise ValueError("needs at least 2 candidate ops")
        return ops

    @model_validator(mode="after")
    def _progressive_stages(self) -> Schedule:
        first = self.stages[0]
        if first.ops_per_edge != len(self.candidate_ops):
            raise ValueError(
                f"stage 1, ops_per_edge: the first stage searches every candidate op, so it must "
                f"equal the number of candidate_ops ({len(self.candidate_ops)}), "
                f"got {first.ops_per_edge}"
            )
        for k, stage in enumerate(self.stages):
            if stage.cells < 3:
                raise ValueError(
                    f"stage {k + 1}, cells: needs at least 3 cells so that both normal and "
                    f"reduction cells are searched, got {stage.cells}"
                )
            if k == 0:
                continue
            before = self.stages[k - 1]
            if stage.cells <= before.cells:
                raise ValueError(
                    f"stage {k + 1}, cells: depth must increase strictly across stages, "
                    f"got {stage.cells} after {before.cells}"
                )
            if stage.ops_per_edge > before.ops_per_edge:
                raise ValueError(
                    f"stage {k + 1}, ops_per_edge: ops kept per edge must never increase, "
                    f"got {stage.ops_per_edge} after {before.ops_per_edge}"
                )
        return self

    @property
    def edges_per_cell(self) -> int:
        """Edges of one cell: intermediate node k has k + 2 inputs (14 for 4 steps)."""
        return topology.edges_per_cell(self.steps)

    def with_overrides(self, **fields: Any) -> Schedule:
        """A copy with per-stage fields (epochs, batch_size, ...) or top-level fields replaced.

        ``None`` values are ignored, so CLI flags can be passed straight through. A stage
        field reaches every stage; ``overrides.with_overrides`` sets one stage or a nested field.
        """
        dotted: dict[str, Any] = {}
        for key, value in fields.items():
            if value is None:
                continue
            if key in StageSchedule.model_fields:
                dotted.update(_per_stage(key, [value] * len(self.stages)))
            elif key in Schedule.model_fields:
                dotted[key] = value
            else:
                raise KeyError(key)
        return overrides.with_overrides(self, dotted, source=overrides.FLAGS_SOURCE)


def _per_stage(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """Dotted overrides of the stage field ``name``: ``values[k]`` for stage ``k + 1``."""
    return {f"stages.{k}.{name}": value for k, value in enumerate(values, start=1)}


def with_stage_values(schedule: Schedule, name: str, values: Sequence[Any]) -> Schedule:
    """A copy with the stage field ``name`` set from ``values``: one value for every stage,
    or one per stage in order."""
    count = len(schedule.stages)
    if len(values) not in (1, count):
        raise ConfigError(
            f"{name}: give one value for every stage or one per stage ({count}), got {len(values)}"
        )
    per_stage = list(values) * count if len(values) == 1 else list(values)
    return overrides.with_overrides(
        schedule, _per_stage(name, per_stage), source=overrides.FLAGS_SOURCE
    )


def validate_schedule(data: Mapping[str, Any], source: str) -> Schedule:
    return validate_config(Schedule, data, "schedule", source)

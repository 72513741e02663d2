"""What a search keeps on disk: its checkpoint (where to resume) and its results.

Every epoch ends with an atomic ``checkpoint.safetensors`` holding the stage's network,
optimizers and candidates; ``read_resume_point`` reads it back. ``RunFiles`` writes a run
directory's files; a search given no directory gets ``RunFiles(None)``, which writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pdarts_cli.arch import ArchWeights, arch_json, read_arch
from pdarts_cli.checkpoint import flatten_state, load_tensors, save_tensors, unflatten_state
from pdarts_cli.errors import RunDirError
from pdarts_cli.files import atomic_write_text
from pdarts_cli.genotype import Genotype, genotype_json, read_genotype_file
from pdarts_cli.runlog import (
    CHECKPOINT_FILE,
    FINAL_ARCH_FILE,
    GENOTYPE_FILE,
    METRICS_FILE,
    UNREFINED_GENOTYPE_FILE,
    MetricsLog,
    stage_arch_file,
    stage_weights_file,
)
from pdarts_cli.searching.events import EpochMetrics, SearchResult
from pdarts_cli.searching.step import Stage
from pdarts_cli.searching.supernet import CellCandidates

CHECKPOINT_FORMAT = "pdarts-search-checkpoint/1"
STAGE_WEIGHTS_FORMAT = "pdarts-stage-weights/1"


@dataclass(frozen=True)
class ResumePoint:
    stage: int  # 0-based stage in progress
    next_epoch: int  # 0-based epoch to run next
    normal: CellCandidates
    reduce: CellCandidates
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    complete: bool = False

    @property
    def mid_stage(self) -> bool:
        """Whether the stage in progress has finished epochs to restore."""
        return self.next_epoch > 0


def stage_state(stage: Stage) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The stage's network and optimizer tensors, and the skeleton that puts them back."""
    tensors = {f"model.{k}": v for k, v in stage.network.state_dict().items()}
    skeleton = {
        "weights": flatten_state(stage.weight_optimizer.state_dict(), "weights", tensors),
        "alphas": flatten_state(stage.alpha_optimizer.state_dict(), "alphas", tensors),
        "scalers": [s.state_dict() for s in stage.scalers] if stage.scalers else None,
    }
    return tensors, skeleton


def restore_stage(stage: Stage, point: ResumePoint) -> None:
    """Put the network and optimizers of ``point`` back into a freshly built ``stage``."""
    model = {k[len("model.") :]: v for k, v in point.tensors.items() if k.startswith("model.")}
    stage.network.load_state_dict(model)
    state = point.metadata["state"]
    stage.weight_optimizer.load_state_dict(unflatten_state(state["weights"], point.tensors))
    stage.alpha_optimizer.load_state_dict(unflatten_state(state["alphas"], point.tensors))
    if stage.scalers and state["scalers"]:
        for scaler, saved in zip(stage.scalers, state["scalers"]):
            scaler.load_state_dict(saved)


def read_resume_point(run_dir: Path) -> ResumePoint | None:
    """Where a killed run stopped; None when it never reached its first checkpoint."""
    path = run_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    tensors, metadata = load_tensors(path)
    written = metadata.get("format")
    if written != CHECKPOINT_FORMAT:
        if isinstance(written, str) and written.split("/")[0] == CHECKPOINT_FORMAT.split("/")[0]:
            raise RunDirError(
                f"{path} is in format {written}; this pdarts reads {CHECKPOINT_FORMAT}"
            )
        raise RunDirError(f"{path} is not a search checkpoint")
    candidates = metadata["candidates"]
    return ResumePoint(
        stage=metadata["stage"],
        next_epoch=metadata["next_epoch"],
        normal=tuple(tuple(e) for e in candidates["normal"]),
        reduce=tuple(tuple(e) for e in candidates["reduce"]),
        tensors=tensors,
        metadata=metadata,
        complete=bool(metadata["complete"]),
    )


def finished_result(run_dir: Path) -> SearchResult:
    """The result a complete run left on disk (its time: the sum of its epochs')."""
    genotype = read_genotype_file(run_dir / GENOTYPE_FILE)
    unrefined_path = run_dir / UNREFINED_GENOTYPE_FILE
    unrefined = read_genotype_file(unrefined_path) if unrefined_path.is_file() else genotype
    seconds = sum(r["seconds"] for r in MetricsLog(run_dir / METRICS_FILE).read())
    arch = read_arch(run_dir / FINAL_ARCH_FILE)
    return SearchResult(run_dir, genotype, arch, seconds, unrefined=unrefined)


class RunFiles:
    """The files a search writes into ``run_dir``; with ``run_dir`` None, none."""

    def __init__(self, run_dir: Path | None, identity: dict[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.identity = identity  # provenance.checkpoint_identity: checked on resume

    def checkpoint(
        self,
        stage_index: int,
        next_epoch: int,
        normal: CellCandidates,
        reduce: CellCandidates,
        stage: Stage | None,
        complete: bool = False,
    ) -> None:
        """Where to resume: stage ``stage_index`` (0-based) at ``next_epoch``, with the live
        ``stage``'s state when it has finished epochs."""
        if self.run_dir is None:
            return
        tensors: dict[str, torch.Tensor] = {}
        state: dict[str, Any] | None = None
        if stage is not None and next_epoch > 0:
            tensors, state = stage_state(stage)
        metadata = {
            "format": CHECKPOINT_FORMAT,
            "stage": stage_index,
            "next_epoch": next_epoch,
            "candidates": {
                "normal": [list(e) for e in normal],
                "reduce": [list(e) for e in reduce],
            },
            "complete": complete,
            "state": state,
            "identity": self.identity,
        }
        save_tensors(self.run_dir / CHECKPOINT_FILE, tensors, metadata)

    def append_metrics(self, metrics: EpochMetrics) -> None:
        if self.run_dir is not None:
            MetricsLog(self.run_dir / METRICS_FILE).append(metrics.to_dict())

    def drop_metrics_from(self, stage_index: int, epoch: int) -> None:
        """Forget the lines of epochs at or after (stage, epoch) (0-based): a resumed run
        writes them again."""
        if self.run_dir is not None:
            MetricsLog(self.run_dir / METRICS_FILE).keep(
                lambda r: (r["stage"] - 1, r["epoch"] - 1) < (stage_index, epoch)
            )

    def stage_outputs(self, stage: Stage, arch: ArchWeights) -> None:
        """stage-N.arch.json and stage-N.safetensors of a finished stage."""
        if self.run_dir is None:
            return
        number = stage.index + 1
        atomic_write_text(self.run_dir / stage_arch_file(number), arch_json(arch))
        save_tensors(
            self.run_dir / stage_weights_file(number),
            stage.network.state_dict(),
            {"format": STAGE_WEIGHTS_FORMAT, "stage": number, "arch": arch.to_dict()},
        )

    def results(self, arch: ArchWeights, genotype: Genotype, unrefined: Genotype) -> None:
        """final.arch.json, genotype.json (refined) and genotype-unrefined.json."""
        if self.run_dir is None:
            return
        atomic_write_text(self.run_dir / FINAL_ARCH_FILE, arch_json(arch))
        atomic_write_text(self.run_dir / UNREFINED_GENOTYPE_FILE, genotype_json(unrefined))
        atomic_write_text(self.run_dir / GENOTYPE_FILE, genotype_json(genotype))

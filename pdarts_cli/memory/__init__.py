"""profile-memory: measure a search iteration's peak memory per stage, fit, recommend a batch.

Every measurement runs in a fresh child process (``pdarts_cli.memory.probe``), so its peak is
its own. On CUDA the figure that matters is ``max_memory_reserved`` (what the allocator holds);
on the CPU it is the child's peak resident memory, shown beside the peak of an idle child
that only imported torch and built the data. For a fixed stage, memory is affine in the batch
size: peak = intercept + slope * batch.

``sizes`` reads sizes and batch lists; ``candidates`` chooses the ops a stage is profiled
with; ``profiling`` runs the children (``probe``) and ``fit`` turns their peaks into a pick;
``results`` holds what comes back. Everything a caller needs is importable from here; a test
that fakes the children patches ``profiling.run_probe``.
"""

from pdarts_cli.memory.candidates import memory_ranking, stage_candidates
from pdarts_cli.memory.fit import MAX_RECOMMENDED_BATCH, device_budget, fit_affine, recommend
from pdarts_cli.memory.profiling import profile_memory, profile_stage
from pdarts_cli.memory.results import (
    CandidateSource,
    EdgeOps,
    Measurement,
    MemoryProfile,
    ProbeReport,
    StageCandidates,
    StageProfile,
    schedule_with_picks,
)
from pdarts_cli.memory.sizes import mib, parse_batch_sizes, parse_size

__all__ = [
    "MAX_RECOMMENDED_BATCH",
    "CandidateSource",
    "EdgeOps",
    "Measurement",
    "MemoryProfile",
    "ProbeReport",
    "StageCandidates",
    "StageProfile",
    "device_budget",
    "fit_affine",
    "memory_ranking",
    "mib",
    "parse_batch_sizes",
    "parse_size",
    "profile_memory",
    "profile_stage",
    "recommend",
    "schedule_with_picks",
    "stage_candidates",
]

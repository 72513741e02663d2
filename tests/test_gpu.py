"""The CUDA path: a tiny search in bf16 autocast with channels_last. Skipped without a GPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pdarts_cli.arch import read_arch
from pdarts_cli.schedule import Schedule
from pdarts_cli.search import SearchOptions, run_search

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("amp", ["auto", "off"])
def test_tiny_search_on_cuda(tmp_path: Path, tiny_schedule: Schedule, amp: str) -> None:
    schedule = tiny_schedule.with_overrides(amp=amp, channels_last="auto")
    result = run_search(schedule, SearchOptions(dataset="digits", device="cuda"), tmp_path / "r")
    arch = read_arch(tmp_path / "r" / "final.arch.json")
    alphas = [a for edge in arch.normal + arch.reduce for a in edge.alpha]
    assert all(math.isfinite(a) for a in alphas)
    assert max(abs(a) for a in alphas) > 1e-3  # the alpha steps moved them
    assert len(result.genotype.normal) == 8

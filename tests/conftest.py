"""Shared fixtures: a tiny schedule that searches the embedded digits in seconds."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from pdarts_cli.schedule import Schedule, validate_schedule

# The tests' networks are tiny: one thread runs them faster than two, and child processes
# (the resume test) must compute with the same thread count as the parent to match bit for bit.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["PDARTS_THREADS"] = "1"  # runs pin it too, instead of measuring the load
torch.set_num_threads(1)


def tiny_schedule_dict(**top: Any) -> dict[str, Any]:
    """Two stages on 8x8 digits: 3 then 4 cells, 8 then 3 ops per edge."""
    stage = {"epochs": 3, "warmup_epochs": 1, "batch_size": 128, "channels": 4}
    return {
        "name": "tiny",
        "stages": [
            {"cells": 3, "ops_per_edge": 8, "skip_dropout_rate": 0.0, **stage},
            {"cells": 4, "ops_per_edge": 3, "skip_dropout_rate": 0.4, **stage},
        ],
        "data": {"crop_padding": 1, "horizontal_flip": False},
        "valid_last_epochs": 1,
        "min_weight_steps": 1,  # 6 steps of 128 per epoch: fast, and refused by default
        **top,
    }


@pytest.fixture
def tiny_schedule() -> Schedule:
    return validate_schedule(tiny_schedule_dict(), "tiny")

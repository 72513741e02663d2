"""Every random stream of a run, derived from its one seed.

A run never draws from a generator seeded once at the start: each purpose (initial weights,
one epoch's shuffle, the alpha half, a data split) gets a seed of its own from
``derive_seed(seed, label, ...)``. Resuming at any epoch therefore needs no saved generator
state, and adding a stream never changes another.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """The label of each random stream. The values are part of every run's results: a new
    stream takes a new value, an old one never changes."""

    SEARCH_INIT = 0  # a stage's network and alphas
    SEARCH_EPOCH = 1  # dropout and skip-connect dropout of one epoch of a stage
    SEARCH_WEIGHT_DATA = 2  # the weight half's shuffle and augmentation of one epoch
    SEARCH_ALPHA_DATA = 3  # the alpha half's
    SEARCH_SPLIT = 4  # the weight/alpha split of the training set
    TRAIN_EPOCH = 10  # drop-path and dropout of one training epoch
    TRAIN_DATA = 11  # the training shuffle and augmentation of one epoch
    TRAIN_INIT = 12  # the evaluation network's initial weights
    TRAIN_VALID_SPLIT = 13  # the validation split held out of the training set


def derive_seed(seed: int, *labels: int) -> int:
    """An independent 63-bit seed for one purpose of one run (numpy's SeedSequence)."""
    state = np.random.SeedSequence(entropy=seed, spawn_key=labels).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])

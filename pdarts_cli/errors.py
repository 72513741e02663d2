"""Exceptions for mistakes a user can fix.

The CLI prints a :class:`PdartsError` as one line and exits with its ``exit_code``; every
other exception is an internal error and keeps its traceback.
"""

from __future__ import annotations


class PdartsError(Exception):
    """A user mistake (bad input, missing data, wrong run directory), reported in one line."""

    exit_code = 2


class ConfigError(PdartsError):
    """A schedule or option that fails validation."""


class RegistryError(PdartsError):
    """An unknown op or dataset name, or a plugin that cannot be loaded."""


class DatasetError(PdartsError):
    """A dataset that is missing, malformed, or cannot be fetched."""


class RunDirError(PdartsError):
    """A run directory that cannot be created, overwritten or resumed."""


class ArtifactError(PdartsError):
    """A genotype, architecture or checkpoint file that cannot be read."""


class NonFiniteError(PdartsError):
    """A loss or gradient that is NaN or infinite stopped a run (a failure during work)."""

    exit_code = 1

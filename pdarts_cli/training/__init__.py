"""Training evaluation networks: ``run_training``, ``resume_training``, ``dry_run``,
``evaluate_checkpoint``.

The modules, from the entry points down: ``run`` (start, resume, size), ``evaluate`` (score a
weights file), ``loop`` (the epochs), ``state`` (checkpoint and weights files), ``batches``
(the validation split and each split's batches), ``setup`` (options, run context, network),
``metrics`` (what a run records and reports), ``recipe`` and ``network``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdarts_cli.lazy import lazy_exports

if TYPE_CHECKING:
    from pdarts_cli.training.evaluate import Evaluation, evaluate_checkpoint
    from pdarts_cli.training.metrics import (
        TrainMetrics,
        TrainObserver,
        TrainProgress,
        best_on_valid,
    )
    from pdarts_cli.training.network import count_parameters
    from pdarts_cli.training.run import NetworkSummary, dry_run, resume_training, run_training
    from pdarts_cli.training.setup import TrainOptions
    from pdarts_cli.training.state import BEST_FILE, FINAL_FILE, LAST_FILE, TrainState

# public name -> the module that defines it (loaded on first use: the recipe and the CLI's help
# need none of the training loop)
_EXPORTS = {
    "Evaluation": "pdarts_cli.training.evaluate",
    "evaluate_checkpoint": "pdarts_cli.training.evaluate",
    "TrainMetrics": "pdarts_cli.training.metrics",
    "TrainObserver": "pdarts_cli.training.metrics",
    "TrainProgress": "pdarts_cli.training.metrics",
    "best_on_valid": "pdarts_cli.training.metrics",
    "count_parameters": "pdarts_cli.training.network",
    "NetworkSummary": "pdarts_cli.training.run",
    "dry_run": "pdarts_cli.training.run",
    "resume_training": "pdarts_cli.training.run",
    "run_training": "pdarts_cli.training.run",
    "TrainOptions": "pdarts_cli.training.setup",
    "BEST_FILE": "pdarts_cli.training.state",
    "FINAL_FILE": "pdarts_cli.training.state",
    "LAST_FILE": "pdarts_cli.training.state",
    "TrainState": "pdarts_cli.training.state",
}

__all__ = [
    "BEST_FILE",
    "FINAL_FILE",
    "LAST_FILE",
    "Evaluation",
    "NetworkSummary",
    "TrainMetrics",
    "TrainObserver",
    "TrainOptions",
    "TrainProgress",
    "TrainState",
    "best_on_valid",
    "count_parameters",
    "dry_run",
    "evaluate_checkpoint",
    "resume_training",
    "run_training",
]

__getattr__ = lazy_exports(globals(), _EXPORTS)

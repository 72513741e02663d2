"""Training evaluation networks: ``run_training``, ``resume_training``, ``dry_run``,
``evaluate_checkpoint``.

The modules, from the entry points down: ``run`` (start, resume, size), ``evaluate`` (score a
weights file), ``loop`` (the epochs), ``state`` (checkpoint and weights files), ``batches``
(the validation split and each split's batches), ``setup`` (options, run context, network),
``metrics`` (what a run records and reports), ``recipe`` and ``network``.
"""

from __future__ import annotations

from pdarts_cli.training.evaluate import Evaluation, evaluate_checkpoint
from pdarts_cli.training.metrics import TrainMetrics, TrainObserver, TrainProgress, best_on_valid
from pdarts_cli.training.network import count_parameters
from pdarts_cli.training.run import NetworkSummary, dry_run, resume_training, run_training
from pdarts_cli.training.setup import TrainOptions
from pdarts_cli.training.state import BEST_FILE, FINAL_FILE, LAST_FILE, TrainState

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

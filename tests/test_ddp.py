"""Two processes under torchrun with the gloo backend on the CPU: DDP keeps the ranks in step."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pdarts_cli.data import resolve_dataset

EPOCHS, BATCH = 2, 64

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from pdarts_cli.genotype import ZOO
    from pdarts_cli.training import TrainOptions, run_training
    from pdarts_cli.training.recipe import load_recipe
    from pdarts_cli.training import TrainObserver

    torch.set_num_threads(1)
    out = sys.argv[1]
    rank = int(os.environ["RANK"])

    class CountSteps(TrainObserver):
        steps = 0
        def batch_finished(self, progress):
            self.steps += 1

    counter = CountSteps()
    recipe = load_recipe("quick").with_overrides(epochs={epochs}, batch_size={batch})
    state = run_training(
        ZOO["PDARTS"](), recipe, TrainOptions(dataset="digits", device="cpu"),
        os.path.join(out, "run"), observer=counter,
    )
    weights = {{k: v.contiguous() for k, v in state.model.state_dict().items()}}
    save_file(weights, os.path.join(out, f"rank{{rank}}.safetensors"))
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"steps": counter.steps}}, f)
    """
).format(epochs=EPOCHS, batch=BATCH)


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    assert all(rank0[k].equal(rank1[k]) for k in rank0)

    # Every rank takes its half of each global batch of BATCH images.
    train_images = len(resolve_dataset("digits").train)
    expected_steps = EPOCHS * math.ceil(train_images / BATCH)
    for rank in (0, 1):
        steps = (tmp_path / f"rank{rank}.json").read_text()
        assert steps == f'{{"steps": {expected_steps}}}'
    # Only rank 0 writes the run directory's files, once per epoch.
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == EPOCHS
    assert (tmp_path / "run" / "final.safetensors").exists()


@pytest.mark.slow
def test_nproc_hands_over_to_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pdarts_cli",
            "train",
            "PDARTS",
            "--dataset",
            "digits",
            "--recipe",
            "quick",
            "--epochs",
            "1",
            "--nproc",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = (out / "run.json").read_text()
    assert '"world_size": 2' in run
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

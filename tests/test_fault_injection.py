"""Kill at any moment: SIGKILL a search and a training run again and again, at moments drawn from
a seed (mid-step, mid-epoch, between stages, and inside a checkpoint write, after the new file
is written and before it replaces the old), resume each time, and end bit for bit where an
uninterrupted run ends. After every kill the run directory's checkpoint, if any, loads."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import tiny_schedule_dict
from safetensors.torch import load_file

from pdarts_cli.checkpoint import load_tensors
from pdarts_cli.runlog import CHECKPOINT_FILE
from pdarts_cli.schedule import schedule_json, validate_schedule
from pdarts_cli.training.recipe import load_recipe, recipe_json

SEED = 20261130
KILLS = 3  # per run; each resumed run is killed again until one finishes

# The child counts two kinds of events, a step and a file rename (the last act of every atomic
# write: the new checkpoint is complete on disk, the old one still in place), and kills itself
# with SIGKILL at the N-th event of the kind it was given. "none" runs to the end.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from pdarts_cli import files

    kind, at = sys.argv[1], int(sys.argv[2])
    counts = {"step": 0, "write": 0}

    def event(name):
        counts[name] += 1
        if name == kind and counts[name] == at:
            os.kill(os.getpid(), signal.SIGKILL)

    def counted(module, name):
        original = getattr(module, name)
        def step(*args, **kwargs):
            event("step")
            return original(*args, **kwargs)
        setattr(module, name, step)

    replace = files.os.replace
    def replacing(src, dst):
        if str(dst).endswith(".safetensors"):
            event("write")
        return replace(src, dst)
    files.os.replace = replacing

    what, run_dir, config = sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
    if what == "search":
        from pdarts_cli.schedule import read_schedule_file
        from pdarts_cli.searching import SearchOptions, epoch, resume_search, run_search
        counted(epoch, "search_step")
        if (run_dir / "run.json").exists():
            resume_search(run_dir)
        else:
            run_search(read_schedule_file(config), SearchOptions(dataset="digits"), run_dir)
    else:
        from pdarts_cli.genotype import load_genotype
        from pdarts_cli.training import TrainOptions, loop, resume_training, run_training
        from pdarts_cli.training.recipe import read_recipe_file
        counted(loop, "_optimizer_step")
        if (run_dir / "run.json").exists():
            resume_training(run_dir)
        else:
            recipe = read_recipe_file(config)
            options = TrainOptions(dataset="digits")
            run_training(load_genotype("PDARTS"), recipe, options, run_dir)
    """
)


def _child(what: str, run_dir: Path, config: Path, kind: str, at: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(at), what, str(run_dir), str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


def _kill_points(rng: random.Random, steps: int, writes: int) -> list[tuple[str, int]]:
    """Where each successive child dies: mid-step, inside a checkpoint write, mid-step again,
    each at a position drawn from ``rng``."""
    kinds = ["step", "write", "step"][:KILLS]
    return [(kind, rng.randint(1, steps if kind == "step" else writes)) for kind in kinds]


def _killed_and_resumed(
    what: str, config: Path, run_dir: Path, points: list[tuple[str, int]], checkpoint: str
) -> list[str]:
    """Run, killed at each point in turn (resuming each time), then to the end. Returns how
    each child ended."""
    ended = []
    for kind, at in [*points, ("none", 0)]:
        code = _child(what, run_dir, config, kind, at)
        ended.append(f"{kind} {at}: {'killed' if code else 'finished'}")
        path = run_dir / checkpoint
        if path.exists():
            load_tensors(path)  # never left without a loadable checkpoint
        if code == 0:
            break
    return ended


def _metrics(run_dir: Path) -> list[dict[str, object]]:
    """metrics.jsonl without its timings."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _same_files(names: list[str], one: Path, other: Path) -> None:
    for name in names:
        a, b = load_file(str(one / name)), load_file(str(other / name))
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_a_search_killed_anywhere_ends_bit_for_bit(tmp_path: Path) -> None:
    data = tiny_schedule_dict()
    schedule = validate_schedule(data, "tiny").with_overrides(epochs=2)  # 2 stages x 2 x 6 steps
    config = tmp_path / "tiny.json"
    config.write_text(schedule_json(schedule))
    whole = tmp_path / "whole"
    assert _child("search", whole, config, "none", 0) == 0

    rng = random.Random(SEED)
    points = _kill_points(rng, steps=12, writes=3)
    killed = tmp_path / "killed"
    ended = _killed_and_resumed("search", config, killed, points, CHECKPOINT_FILE)
    assert ended[-1].endswith("finished"), ended
    assert sum(e.endswith("killed") for e in ended) >= 2, ended
    assert (killed / "genotype.json").read_text() == (whole / "genotype.json").read_text()
    assert (killed / "final.arch.json").read_text() == (whole / "final.arch.json").read_text()
    _same_files(["stage-1.safetensors", "stage-2.safetensors"], killed, whole)
    assert _metrics(killed) == _metrics(whole)  # one line per epoch, none repeated


@pytest.mark.slow
def test_a_training_run_killed_anywhere_ends_bit_for_bit(tmp_path: Path) -> None:
    recipe = load_recipe("quick").with_overrides(epochs=3, channels=4, layers=3)
    config = tmp_path / "tiny.json"
    config.write_text(recipe_json(recipe))
    whole = tmp_path / "whole"
    assert _child("train", whole, config, "none", 0) == 0

    rng = random.Random(SEED + 1)
    points = _kill_points(rng, steps=20, writes=4)
    killed = tmp_path / "killed"
    ended = _killed_and_resumed("train", config, killed, points, "last.safetensors")
    assert ended[-1].endswith("finished"), ended
    assert sum(e.endswith("killed") for e in ended) >= 2, ended
    _same_files(["last.safetensors", "final.safetensors"], killed, whole)
    assert _metrics(killed) == _metrics(whole)  # one line per epoch, none repeated
    assert len(_metrics(whole)) == recipe.epochs

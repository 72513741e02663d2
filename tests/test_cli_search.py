"""`pdarts search` end to end on the embedded digits: the run directory and what is printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import tiny_schedule_dict
from safetensors.torch import load_file
from typer.testing import CliRunner

from pdarts_cli.arch import read_arch
from pdarts_cli.cli.app import app
from pdarts_cli.genotype import read_genotype_file
from pdarts_cli.schedule import read_schedule_file, validate_schedule
from pdarts_cli.searching import resolve_for_dataset
from pdarts_cli.searching.derive import derive_genotype

runner = CliRunner()

RUN_FILES = {
    "run.json",
    "schedule.json",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "stage-1.arch.json",
    "stage-1.safetensors",
    "stage-2.arch.json",
    "stage-2.safetensors",
    "final.arch.json",
    "genotype.json",
    "genotype-unrefined.json",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cli")
    schedule = root / "tiny.json"
    schedule.write_text(json.dumps(tiny_schedule_dict(seed=5)))
    out = root / "run"
    result = runner.invoke(
        app,
        [
            "search",
            "--dataset",
            "digits",
            "--schedule",
            str(schedule),
            "--out",
            str(out),
            "--epochs",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_run_directory_holds_every_artifact(finished_run: tuple[Path, str]) -> None:
    out, _ = finished_run
    assert {p.name for p in out.iterdir()} == RUN_FILES


def test_schedule_json_is_what_ran(finished_run: tuple[Path, str]) -> None:
    out, _ = finished_run
    ran = read_schedule_file(out / "schedule.json")
    given = validate_schedule(tiny_schedule_dict(seed=5), "t").with_overrides(epochs=2)
    assert ran.data.split == "stratified"  # auto, resolved for digits
    assert ran.max_skip == 2
    assert ran == resolve_for_dataset(given, "digits")


def test_run_json_records_what_determinism_depends_on(finished_run: tuple[Path, str]) -> None:
    out, _ = finished_run
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "search"
    assert run["device"]["type"] == "cpu"
    assert run["torch_threads"] == torch.get_num_threads()  # conftest pins 1
    assert run["versions"]["torch"] == torch.__version__
    assert set(run["versions"]) >= {"pdarts", "torch", "numpy", "python", "cuda", "cudnn"}


def test_genotype_json_is_the_refined_genotype(finished_run: tuple[Path, str]) -> None:
    out, output = finished_run
    arch = read_arch(out / "final.arch.json")
    refined = read_genotype_file(out / "genotype.json")
    unrefined = read_genotype_file(out / "genotype-unrefined.json")
    assert refined == derive_genotype(arch, 2)
    assert refined.meta["max_skip"] == 2
    assert refined.count("skip_connect") <= 2
    assert unrefined == derive_genotype(arch)
    assert unrefined.meta["max_skip"] is None
    removed = unrefined.count("skip_connect") - refined.count("skip_connect")
    assert f"({removed} removed by refinement)" in output
    assert "at most 2 normal skip-connects" in output


def test_stage_files_follow_the_approximation(finished_run: tuple[Path, str]) -> None:
    out, _ = finished_run
    stage1, stage2 = read_arch(out / "stage-1.arch.json"), read_arch(out / "stage-2.arch.json")
    assert stage1.extra["stage"] == 1
    assert stage2.extra["cells_in_network"] == 4
    assert all(len(edge.ops) == 8 for edge in stage1.normal + stage1.reduce)
    assert all(len(edge.ops) == 3 for edge in stage2.normal + stage2.reduce)
    for before, after in zip(stage1.normal, stage2.normal, strict=True):
        assert set(after.ops) <= set(before.ops)
    assert read_arch(out / "final.arch.json") == stage2
    weights = load_file(str(out / "stage-2.safetensors"))
    assert weights["alphas_normal"].shape == (14, 3)


def test_genotype_and_metrics(finished_run: tuple[Path, str]) -> None:
    out, output = finished_run
    genotype = read_genotype_file(out / "genotype.json")
    assert len(genotype.normal) == 8
    assert genotype.normal_concat == (2, 3, 4, 5)
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    assert genotype.to_darts() in output.replace("\n", "")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert set(records[0]) >= {"lr", "train_loss", "train_accuracy", "skip_dropout_p", "seconds"}
    assert records[0]["alpha_loss"] is None
    assert records[1]["alpha_loss"] is not None
    assert records[2]["skip_dropout_p"] == pytest.approx(0.4 * (2 - 0 - 1) / 2)


def test_plain_output_when_not_a_terminal(finished_run: tuple[Path, str]) -> None:
    _, output = finished_run
    assert "stage 1 epoch 1" in output
    assert "stage 2 normal cell" in output
    assert "\x1b[" not in output  # no terminal control sequences in logs
    assert "(* kept for the next stage)" in output  # survivors are marked, not only bold
    assert "(* final op)" in output
    stage_one = output[output.index("stage 1 normal cell") : output.index("stage 1 reduce cell")]
    edges = re.split(r"│ +\d->\d │", stage_one)[1:]  # an edge's text, wrapped lines included
    assert len(edges) == 14
    assert all(text.count("*") == 3 for text in edges)  # 3 of 8 ops kept on every edge
    assert re.search(r"skip_connect\(0\.\d{3}\)", stage_one)  # an op and its weight together


def test_existing_run_is_not_overwritten_without_force(finished_run: tuple[Path, str]) -> None:
    out, _ = finished_run
    before = (out / "genotype.json").read_text()
    result = runner.invoke(
        app, ["search", "--dataset", "digits", "--force-batch", "--out", str(out)]
    )
    assert result.exit_code != 0
    assert "already holds a run" in result.output
    assert "--force" in result.output
    assert "Traceback" not in result.output
    assert (out / "genotype.json").read_text() == before


def test_resume_of_finished_run_prints_its_genotype(finished_run: tuple[Path, str]) -> None:
    out, _ = finished_run
    result = runner.invoke(app, ["search", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert "already complete; nothing to resume" in result.output
    genotype = read_genotype_file(out / "genotype.json")
    assert genotype.to_darts() in result.output.replace("\n", "")


def test_quiet_prints_only_the_genotype(tmp_path: Path) -> None:
    schedule = tmp_path / "tiny.toml"
    schedule.write_text(
        "\n".join(
            [
                'name = "tiny-toml"',
                "valid_last_epochs = 0",
                "min_weight_steps = 1",
                "[data]",
                "crop_padding = 0",
                "[[stages]]",
                "cells = 3",
                "ops_per_edge = 8",
                "skip_dropout_rate = 0.0",
                "epochs = 2",
                "warmup_epochs = 1",
                "batch_size = 256",
                "channels = 4",
            ]
        )
    )
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["search", "-d", "digits", "-s", str(schedule), "-o", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == read_genotype_file(out / "genotype.json").to_darts()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--dataset", "digits", "--schedule", "no-such-preset"], "unknown schedule"),
        (["--dataset", "cifar10", "--data-dir", "{tmp}"], "--download"),
        (["--dataset", "digits", "--epochs", "1"], "warmup_epochs"),
        (["--dataset", "digits", "--force-batch", "--out", "/proc/pdarts-run"], "cannot write"),
        (["--dataset", "digits"], "stage 1: batch 96 gives 8 weight steps per epoch"),
        (["--resume", "{tmp}"], "holds no pdarts run"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["search", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_broken_schedule_file_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[stages]\ncells = ")
    result = runner.invoke(app, ["search", "-d", "digits", "-s", str(broken)])
    assert result.exit_code != 0
    assert "cannot parse schedule" in result.output
    assert "Traceback" not in result.output


def test_non_run_folder_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    args = ["search", "-d", "digits", "--force-batch", "-o", str(tmp_path), "--force"]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "holds no pdarts run" in result.output
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_unknown_op_in_a_schedule_file_is_one_line(tmp_path: Path) -> None:
    schedule = tmp_path / "ops.json"
    data = tiny_schedule_dict(candidate_ops=["none", "skip_connect", "conv_9x9"])
    schedule.write_text(json.dumps(data))
    result = runner.invoke(app, ["search", "-d", "digits", "-s", str(schedule)])
    assert result.exit_code != 0
    assert "unknown op 'conv_9x9'; known ops: avg_pool_3x3," in result.output
    assert len(result.output.strip().splitlines()) == 1


def _interrupt(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_prints_the_resume_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pdarts_cli.searching.run

    monkeypatch.setattr(pdarts_cli.searching.run, "run_stages", _interrupt)
    out = tmp_path / "my run"
    result = runner.invoke(
        app, ["search", "--dataset", "digits", "--force-batch", "--out", str(out)]
    )
    assert result.exit_code == 130
    assert f"pdarts search --resume '{out}'" in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_before_the_run_directory_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pdarts_cli.searching.run

    monkeypatch.setattr(pdarts_cli.searching.run, "search_context", _interrupt)
    args = ["search", "--dataset", "digits", "--force-batch", "--out", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert "interrupted before the run directory was written" in result.output
    assert "--resume" not in result.output


# Batch sizes that would wreck a search are refused (digits: 716 images in the weight half).


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            "5000",
            "stage 1: batch 5,000 is larger than the 716 images of each half of the training "
            "set; use --batch-size 35 or less, or --force-batch to insist",
        ),
        (
            "64",
            "stage 1: batch 64 gives 12 weight steps per epoch on 716 images, fewer than 20; "
            "use --batch-size 35 or less, or --force-batch to insist",
        ),
        (
            "32,32,64",
            "stage 3: batch 64 gives 12 weight steps per epoch",
        ),
    ],
)
def test_a_batch_that_leaves_too_few_steps_is_refused(
    tmp_path: Path, batch: str, message: str
) -> None:
    out = tmp_path / "r"
    args = ["search", "--dataset", "digits", "--schedule", "quick", "--batch-size", batch]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything is written


def test_force_batch_insists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pdarts_cli.searching.run

    monkeypatch.setattr(
        pdarts_cli.searching.run, "run_stages", _interrupt
    )  # stop once past the check
    args = ["search", "--dataset", "digits", "--schedule", "quick", "--batch-size", "5000"]
    result = runner.invoke(app, [*args, "--force-batch", "--out", str(tmp_path / "r")])
    assert result.exit_code == 130, result.output
    assert "weight steps" not in result.output
    assert "--resume" in result.output  # it got as far as the run directory


def test_the_quick_schedule_gives_every_stage_enough_steps(tmp_path: Path) -> None:
    from pdarts_cli.context import RunContext
    from pdarts_cli.data import resolve_dataset
    from pdarts_cli.schedule import load_schedule
    from pdarts_cli.searching import data_halves
    from pdarts_cli.searching.batching import weight_steps

    quick = resolve_for_dataset(load_schedule("quick"), "digits")
    env = RunContext(resolve_dataset("digits"), torch.device("cpu"), None, False, "digits")  # type: ignore[arg-type]
    halves = data_halves(quick, env)
    assert [weight_steps(halves.weight_images, s.batch_size) for s in quick.stages] == [23] * 3

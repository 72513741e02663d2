"""Training evaluation networks (ALGORITHM.md, "Evaluation networks"): the recipes and their
schedules, the published network sizes, a real run on the embedded digits, the validation split
that alone chooses best.safetensors, kill-and-resume, and the CLI's one-line errors."""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from clihelpers import assert_one_error_line
from fakedata import write_fake_npz
from rich.console import Console
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from pdarts_cli import plotting
from pdarts_cli.checkpoint import load_tensors, save_tensors
from pdarts_cli.cli.app import app
from pdarts_cli.cli.train_progress import summary_table
from pdarts_cli.context import RunContext as TrainEnvironment
from pdarts_cli.data import dataset_labels, resolve_dataset
from pdarts_cli.device import resolve_precision
from pdarts_cli.distributed import Distributed
from pdarts_cli.errors import ArtifactError, ConfigError, RunDirError
from pdarts_cli.genotype import ZOO, read_genotype_file
from pdarts_cli.runlog import METRICS_FILE
from pdarts_cli.training import (
    TrainOptions,
    evaluate_checkpoint,
    resume_training,
    run_training,
)
from pdarts_cli.training import loop as trainer
from pdarts_cli.training.batches import train_batches, training_split
from pdarts_cli.training.metrics import Scores, TrainMetrics, TrainObserver, TrainProgress
from pdarts_cli.training.recipe import (
    PRESETS,
    Recipe,
    adapt_to_dataset,
    drop_path_at,
    load_recipe,
    lr_at,
    read_recipe_file,
    recipe_json,
    validate_recipe,
)
from pdarts_cli.training.state import BEST_FILE, FINAL_FILE, LAST_FILE, TrainState

runner = CliRunner()

EPOCHS = 3  # the quick recipe cut to three epochs: ~10 s on one CPU thread
OPTIONS = TrainOptions(dataset="digits", device="cpu")  # the CPU: bit-for-bit resumes
RUN_FILES = {
    "run.json",
    "recipe.json",
    "genotype.json",
    METRICS_FILE,
    "last.safetensors",
    "final.safetensors",  # no best.safetensors: without a validation split nothing is chosen
}
DIGITS_TRAIN, DIGITS_TEST, DIGITS_CLASSES = 1438, 359, 10
VALID_PORTION = 0.25


def quick_recipe() -> Recipe:
    return load_recipe("quick").with_overrides(epochs=EPOCHS)


def metrics_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainState]:
    """One uninterrupted quick run of PDARTS on the digits; tests must not change it."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    state = run_training(ZOO["PDARTS"](), quick_recipe(), OPTIONS, run_dir)
    return run_dir, state


def tiny_valid_recipe() -> Recipe:
    """A tiny network for two epochs, a quarter of the training set held out: ~5 s."""
    return load_recipe("quick").with_overrides(
        epochs=2, channels=4, layers=3, valid_portion=VALID_PORTION
    )


class StepCounter(TrainObserver):
    def __init__(self) -> None:
        self.steps: dict[int, int] = {}  # epoch -> steps in it

    def batch_finished(self, progress: TrainProgress) -> None:
        self.steps[progress.epoch] = progress.steps


@pytest.fixture(scope="module")
def valid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainState, StepCounter]:
    """A run with a validation split; tests must not change it."""
    run_dir = tmp_path_factory.mktemp("train-valid") / "run"
    counter = StepCounter()
    state = run_training(ZOO["PDARTS"](), tiny_valid_recipe(), OPTIONS, run_dir, observer=counter)
    return run_dir, state, counter


# --- recipes -----------------------------------------------------------------------------------


def test_paper_cifar_recipe_is_the_papers() -> None:
    r = load_recipe("paper-cifar")
    assert (r.name, r.network, r.channels, r.layers) == ("paper-cifar", "cifar", 36, 20)
    assert (r.epochs, r.batch_size, r.cutout) == (600, 128, 16)
    assert (r.drop_path_prob, r.auxiliary_weight, r.grad_clip_norm) == (0.3, 0.4, 5.0)
    assert (r.lr, r.lr_min, r.lr_schedule, r.base_lr) == (0.025, 0.0, "cosine", 0.025)
    assert (r.momentum, r.weight_decay, r.warmup_epochs, r.label_smoothing) == (0.9, 3e-4, 0, 0)


def test_paper_cifar_large_differs_only_in_channels() -> None:
    large, base = load_recipe("paper-cifar-large"), load_recipe("paper-cifar")
    assert large.channels == 64
    assert large.model_copy(update={"channels": 36, "name": "paper-cifar"}) == base


def test_paper_imagenet_recipe_is_the_papers() -> None:
    r = load_recipe("paper-imagenet")
    assert (r.network, r.channels, r.layers, r.epochs) == ("imagenet", 48, 14, 250)
    assert (r.label_smoothing, r.warmup_epochs, r.lr_schedule) == (0.1, 5, "linear")
    assert (r.weight_decay, r.auxiliary_weight, r.drop_path_prob, r.grad_clip_norm) == (
        3e-5,
        0.4,
        0.0,
        5.0,
    )
    assert (r.lr, r.batch_size, r.base_lr) == (0.5, 1024, 0.5)  # lr 0.5 at batch 1024
    assert r.with_overrides(batch_size=256).base_lr == pytest.approx(0.125)  # scaled linearly


def test_every_preset_is_valid_and_named_after_itself() -> None:
    for name, make in PRESETS.items():
        recipe = make()
        assert recipe.name == name
        assert validate_recipe(recipe.model_dump(), name) == recipe
    quick = load_recipe("quick")
    assert quick.auxiliary_weight == 0  # 8x8 digits are too small for the auxiliary head
    assert quick.epochs < 600
    assert quick.channels < 36


@pytest.mark.parametrize("name", ["paper-cifar", "paper-cifar-large"])
def test_cifar100_gets_the_papers_weight_decay(name: str) -> None:
    adapted = adapt_to_dataset(load_recipe(name), "cifar100", {"weight_decay": None})
    assert adapted.weight_decay == 5e-4
    assert adapt_to_dataset(load_recipe(name), "cifar10", {}).weight_decay == 3e-4


def test_cifar100_weight_decay_yields_to_the_flag_and_to_custom_recipes(tmp_path: Path) -> None:
    flagged = load_recipe("paper-cifar").with_overrides(weight_decay=1e-4)
    assert adapt_to_dataset(flagged, "cifar100", {"weight_decay": 1e-4}).weight_decay == 1e-4
    custom = Recipe(weight_decay=3e-4)
    assert adapt_to_dataset(custom, "cifar100", {}) == custom
    quick = load_recipe("quick")
    assert adapt_to_dataset(quick, "cifar100", {}) == quick
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nchannels = 16\n')
    mine = load_recipe(str(path))
    assert adapt_to_dataset(mine, "cifar100", {}).weight_decay == 3e-4


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs: must be less than epochs (5)"),
        ({"lr": 0.01, "lr_min": 0.02}, "lr_min (0.02) must not exceed lr (0.01)"),
        ({"chanels": 16}, "chanels: unknown field"),
        ({"batch_size": 0}, "batch_size:"),
        ({"valid_portion": 1.0}, "valid_portion:"),
        ({"valid_portion": -0.1}, "valid_portion:"),
    ],
)
def test_invalid_recipes_are_one_line_config_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_recipe(data, "test")
    message = str(caught.value)
    assert fragment in message
    assert message.startswith("invalid recipe (test): ")
    assert "\n" not in message


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="warmup_epochs"):
        load_recipe("paper-imagenet").with_overrides(epochs=5)


def test_a_toml_recipe_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "short.toml"
    path.write_text(
        textwrap.dedent(
            """
            name = "short"
            channels = 12
            layers = 6
            epochs = 40
            lr_schedule = "linear"
            warmup_epochs = 2
            label_smoothing = 0.1
            ema_decay = 0.999
            """
        )
    )
    recipe = load_recipe(str(path))
    assert (recipe.name, recipe.channels, recipe.layers, recipe.epochs) == ("short", 12, 6, 40)
    assert (recipe.lr_schedule, recipe.warmup_epochs) == ("linear", 2)
    assert (recipe.label_smoothing, recipe.ema_decay) == (0.1, 0.999)
    assert recipe.batch_size == 128  # unnamed fields keep the paper's CIFAR defaults


def test_a_bad_toml_recipe_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("epochs = 0\n")
    with pytest.raises(ConfigError, match=r"epochs: .*greater than or equal to 1"):
        load_recipe(str(path))
    with pytest.raises(ConfigError, match="unknown recipe 'paper-cifra'"):
        load_recipe("paper-cifra")


@pytest.mark.parametrize("name", list(PRESETS))
def test_recipe_json_round_trips(name: str, tmp_path: Path) -> None:
    recipe = load_recipe(name).with_overrides(ema_decay=0.99, seed=7)
    text = recipe_json(recipe)
    assert validate_recipe(json.loads(text), "json") == recipe
    path = tmp_path / "recipe.json"
    path.write_text(text)
    assert read_recipe_file(path) == recipe
    assert load_recipe(str(path)) == recipe


# --- schedules ---------------------------------------------------------------------------------


def test_cosine_lr_starts_at_lr_and_halves_at_the_midpoint() -> None:
    recipe = load_recipe("paper-cifar")
    assert lr_at(recipe, 0) == 0.025
    assert lr_at(recipe, 300) == pytest.approx(0.0125)
    assert lr_at(recipe, 150) == pytest.approx(0.025 * (1 + math.cos(math.pi / 4)) / 2)
    assert lr_at(recipe, 599) == pytest.approx(0.025 * (1 + math.cos(math.pi * 599 / 600)) / 2)
    floored = recipe.with_overrides(epochs=10).model_copy(update={"lr_min": 0.001})
    assert lr_at(floored, 5) == pytest.approx(0.001 + 0.024 / 2)


def test_linear_lr_follows_the_pdarts_imagenet_code() -> None:
    recipe = load_recipe("paper-imagenet").with_overrides(batch_size=512)
    base = 0.25
    assert recipe.base_lr == pytest.approx(base)
    # warm-up: epoch e < 5 multiplies the linear rule by (e + 1) / 5
    assert lr_at(recipe, 0) == pytest.approx(base * (245 / 245) * (1 / 5))
    assert lr_at(recipe, 2) == pytest.approx(base * (243 / 245) * (3 / 5))
    assert lr_at(recipe, 4) == pytest.approx(base * (241 / 245))
    assert lr_at(recipe, 5) == pytest.approx(base * (240 / 245))
    assert lr_at(recipe, 100) == pytest.approx(base * (145 / 245))
    # the last 5 epochs decay 5x more slowly, continuing from where the first rule ends
    assert lr_at(recipe, 244) == pytest.approx(base / 245)
    assert lr_at(recipe, 245) == pytest.approx(base * 5 / (245 * 5))
    assert lr_at(recipe, 247) == pytest.approx(base * 3 / (245 * 5))
    assert lr_at(recipe, 249) == pytest.approx(base * 1 / (245 * 5))
    rates = [lr_at(recipe, e) for e in range(4, 250)]  # after warm-up: never rising, never 0
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert min(rates) > 0


def test_the_authors_code_warms_up_only_above_batch_256() -> None:
    recipe = load_recipe("paper-imagenet").with_overrides(batch_size=256)
    assert lr_at(recipe, 0) == pytest.approx(0.125)


def test_linear_lr_without_warmup_starts_at_base() -> None:
    recipe = load_recipe("paper-imagenet").model_copy(update={"warmup_epochs": 0})
    assert lr_at(recipe, 0) == pytest.approx(0.5)


def test_drop_path_ramps_linearly_from_zero() -> None:
    recipe = load_recipe("paper-cifar")
    assert drop_path_at(recipe, 0) == 0
    assert drop_path_at(recipe, 300) == pytest.approx(0.15)
    assert drop_path_at(recipe, 599) == pytest.approx(0.3 * 599 / 600)
    assert drop_path_at(load_recipe("paper-imagenet"), 100) == 0


# --- network sizes (dry run) -------------------------------------------------------------------


def dry_run_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = runner.invoke(app, ["train", *args, "--dry-run", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


@pytest.mark.parametrize(
    ("args", "parameters"),
    [
        (["PDARTS", "--dataset", "cifar10"], 3_433_798),  # paper: 3.4M
        (["PDARTS", "--dataset", "cifar10", "--recipe", "paper-cifar-large"], 10_521_802),
        (["DARTS_V2", "--dataset", "cifar10"], 3_349_342),  # DARTS paper: 3.3M
        (["PDARTS", "--dataset", "imagenet"], 4_944_352),  # paper: 4.9M
        (["DARTS_V2", "--dataset", "imagenet"], 4_718_752),  # DARTS paper: 4.7M
    ],
)
def test_dry_run_counts_the_published_sizes(
    args: list[str], parameters: int, tmp_path: Path
) -> None:
    report = dry_run_json(*args, "--data-dir", str(tmp_path))  # an empty folder: no data read
    assert report["parameters"] == parameters
    assert report["parameters_with_auxiliary"] > parameters  # the head is excluded above


def test_dry_run_reports_the_network_it_would_train() -> None:
    report = dry_run_json("PDARTS", "--dataset", "imagenet")
    assert (report["network"], report["channels"], report["layers"]) == ("imagenet", 48, 14)
    assert (report["image_size"], report["num_classes"]) == (224, 1000)
    assert 500e6 < report["multiply_adds"] < 600e6  # mobile setting: under 600M (paper 557M)


def test_dry_run_follows_channel_and_layer_flags() -> None:
    small = dry_run_json("PDARTS", "--dataset", "cifar10", "--channels", "16", "--layers", "8")
    assert (small["channels"], small["layers"]) == (16, 8)
    assert 0 < small["parameters"] < 3_433_798 // 4


def test_dry_run_reads_no_data(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    report = dry_run_json("PDARTS", "--dataset", "cifar10", env={"PDARTS_DATA": str(empty)})
    assert report["parameters"] == 3_433_798
    hundred = dry_run_json("PDARTS", "--dataset", "cifar100", "--data-dir", str(empty))
    assert hundred["num_classes"] == 100
    assert hundred["parameters"] == 3_433_798 + 90 * (576 + 1)  # a wider classifier only
    assert list(empty.iterdir()) == []


def test_train_cli_hands_the_adapted_recipe_to_run_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pdarts_cli.training as train_module

    seen: list[tuple[Recipe, TrainOptions, Path]] = []

    def fake_run_training(genotype, recipe, options, out, force, observer):  # type: ignore[no-untyped-def]
        assert genotype == ZOO["PDARTS"]()
        seen.append((recipe, options, Path(out)))
        return SimpleNamespace(history=[])

    monkeypatch.setattr(train_module, "run_training", fake_run_training)
    out = tmp_path / "run"
    base = ["train", "PDARTS", "--dataset", "cifar100", "--out", str(out), "--device", "cpu"]
    assert runner.invoke(app, base).exit_code == 0
    flags = ["--weight-decay", "1e-4", "--epochs", "7", "--valid-portion", "0.1"]
    assert runner.invoke(app, [*base, *flags]).exit_code == 0
    (paper, options, where), (flagged, _, _) = seen
    assert paper == load_recipe("paper-cifar").with_overrides(weight_decay=5e-4)
    assert paper.valid_portion == 0  # the paper holds nothing out for training
    assert (options.dataset, options.device, where) == ("cifar100", "cpu", out)
    assert (flagged.weight_decay, flagged.epochs, flagged.valid_portion) == (1e-4, 7, 0.1)


# --- a real run on the digits ------------------------------------------------------------------


def test_a_quick_run_leaves_a_complete_run_directory(trained_run: tuple[Path, TrainState]) -> None:
    run_dir, state = trained_run
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "train"
    assert run["options"]["dataset"] == "digits"
    assert run["world_size"] == 1
    assert read_recipe_file(run_dir / "recipe.json") == quick_recipe()
    assert read_genotype_file(run_dir / "genotype.json") == ZOO["PDARTS"]()
    assert state.next_epoch == EPOCHS
    assert len(state.history) == EPOCHS


def test_metrics_record_every_epoch_with_its_schedule(trained_run: tuple[Path, TrainState]) -> None:
    run_dir, state = trained_run
    records = metrics_of(run_dir)
    recipe = quick_recipe()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for epoch, record in enumerate(records):
        assert record["lr"] == pytest.approx(lr_at(recipe, epoch))
        assert record["drop_path_prob"] == pytest.approx(recipe.drop_path_prob * epoch / EPOCHS)
        assert record == state.history[epoch].to_dict()
        assert TrainMetrics.from_dict(record) == state.history[epoch]
        assert record["train_loss"] > 0
        assert record["test_loss"] > 0
        assert record["test_top1"] <= record["test_top5"] <= 1
        assert (record["valid_loss"], record["valid_top1"]) == (None, None)  # no valid split
        assert record["splits"] == {"train": DIGITS_TRAIN, "valid": 0, "test": DIGITS_TEST}
    assert [r["drop_path_prob"] for r in records] == pytest.approx([0, 1 / 30, 2 / 30])
    assert [r["lr"] for r in records] == pytest.approx([0.05, 0.0375, 0.0125])
    assert records[-1]["train_loss"] < records[0]["train_loss"]


def test_a_quick_run_learns_the_digits(trained_run: tuple[Path, TrainState]) -> None:
    run_dir, state = trained_run
    final = metrics_of(run_dir)[-1]["test_top1"]
    assert final > 0.75  # chance is 0.10; three epochs reach about 0.94 on one CPU thread
    assert state.best_valid_top1 is None  # nothing was chosen
    assert not (run_dir / BEST_FILE).exists()
    tensors, metadata = load_tensors(run_dir / FINAL_FILE)
    assert metadata["format"] == "pdarts-weights/1"
    assert (metadata["chosen_by"], metadata["epoch"]) == ("last_epoch", EPOCHS)
    assert (metadata["test_top1"], metadata["valid_top1"]) == (final, None)
    assert metadata["genotype"] == ZOO["PDARTS"]().to_dict()
    assert validate_recipe(metadata["recipe"], "final") == quick_recipe()
    assert not any(k.startswith(("optimizer.", "model.")) for k in tensors)
    model = state.model.state_dict()
    assert all(torch.equal(tensors[k], model[k]) for k in model)  # the last epoch's weights
    _, last = load_tensors(run_dir / LAST_FILE)
    assert (last["format"], last["next_epoch"], last["best_valid_top1"]) == (
        "pdarts-train-checkpoint/1",
        EPOCHS,
        None,
    )


def unwrapped(result: Any) -> str:
    return " ".join(result.output.split())  # rich wraps long lines at 80 columns


def evaluated_top1(result: Any) -> str:
    match = re.search(r"top-1 (\d+\.\d\d)%", unwrapped(result))
    assert match, result.output
    return match.group(1)


def test_evaluate_reproduces_the_final_epoch_without_the_genotype(
    trained_run: tuple[Path, TrainState],
) -> None:
    run_dir, _ = trained_run
    records = metrics_of(run_dir)
    result = runner.invoke(app, ["evaluate", str(run_dir / FINAL_FILE), "--dataset", "digits"])
    assert result.exit_code == 0, result.output
    assert evaluated_top1(result) == f"{100 * records[-1]['test_top1']:.2f}"
    assert "(359 test images)" in unwrapped(result)
    last = runner.invoke(app, ["evaluate", str(run_dir / "last.safetensors"), "-d", "digits"])
    assert last.exit_code == 0, last.output
    assert evaluated_top1(last) == f"{100 * records[-1]['test_top1']:.2f}"


def test_resuming_a_finished_run_changes_nothing(
    trained_run: tuple[Path, TrainState], tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained_run[0], copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    state = resume_training(copy, ZOO["PDARTS"](), device="cpu")
    assert state.next_epoch == EPOCHS
    assert [m.epoch for m in state.history] == [1, 2, 3]
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


# --- one-line errors ---------------------------------------------------------------------------


def test_an_unknown_genotype_name_is_one_line() -> None:
    result = runner.invoke(app, ["train", "PDARTZ", "--dataset", "cifar10", "--dry-run"])
    line = assert_one_error_line(result)
    assert "'PDARTZ'" in line
    assert "PDARTS" in line


def test_a_genotype_file_with_an_unknown_op_is_one_line(tmp_path: Path) -> None:
    data = ZOO["PDARTS"]().to_dict()
    data["normal"][1] = ["conv_9x9", 1]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["train", str(path), "--dataset", "cifar10", "--dry-run"])
    line = assert_one_error_line(result)
    assert "unknown op 'conv_9x9'" in line


def test_evaluate_refuses_a_truncated_checkpoint(
    trained_run: tuple[Path, TrainState], tmp_path: Path
) -> None:
    data = (trained_run[0] / FINAL_FILE).read_bytes()
    for cut in (len(data) - 100, len(data) // 2, 20):
        path = tmp_path / f"cut-{cut}.safetensors"
        path.write_bytes(data[:cut])
        result = runner.invoke(app, ["evaluate", str(path), "--dataset", "digits"])
        line = assert_one_error_line(result)
        assert path.name in line


def test_evaluate_refuses_a_foreign_safetensors_file(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    line = assert_one_error_line(
        runner.invoke(app, ["evaluate", str(foreign), "--dataset", "digits"])
    )
    assert "not written by pdarts" in line
    search = tmp_path / "stage-1.safetensors"  # pdarts, but no trained network
    save_tensors(search, {"weight": torch.zeros(3)}, {"format": "pdarts-search-checkpoint/1"})
    line = assert_one_error_line(
        runner.invoke(app, ["evaluate", str(search), "--dataset", "digits"])
    )
    assert "holds no trained network" in line
    missing = tmp_path / "missing.safetensors"
    line = assert_one_error_line(
        runner.invoke(app, ["evaluate", str(missing), "--dataset", "digits"])
    )
    assert "no checkpoint" in line


def _evaluate_on_npz(
    checkpoint: Path, npz: Path, size: int, channels: int | None, classes: int
) -> str:
    """The one error line of ``pdarts evaluate`` on a generated .npz of that shape."""
    write_fake_npz(npz, n_train=20, n_test=20, size=size, channels=channels, num_classes=classes)
    result = runner.invoke(app, ["evaluate", str(checkpoint), "--dataset", f"npz:{npz}"])
    return " ".join(assert_one_error_line(result).split())


@pytest.mark.parametrize(
    ("size", "channels", "classes", "theirs"),
    [
        (32, 3, DIGITS_CLASSES, "3-channel 32x32 images"),
        (8, 3, DIGITS_CLASSES, "3-channel 8x8 images"),
        (16, None, DIGITS_CLASSES, "1-channel 16x16 images"),
        (8, None, 4, "1-channel 8x8 images with 4 classes"),
    ],
)
def test_evaluate_on_data_of_another_shape_names_both_shapes(
    trained_run: tuple[Path, TrainState],
    tmp_path: Path,
    size: int,
    channels: int | None,
    classes: int,
    theirs: str,
) -> None:
    checkpoint = trained_run[0] / FINAL_FILE
    npz = tmp_path / "d.npz"
    line = _evaluate_on_npz(checkpoint, npz, size, channels, classes)
    assert line.endswith(
        f"{checkpoint} was trained on 1-channel 8x8 images with 10 classes; npz:{npz} has {theirs}"
    )
    assert "does not fit its own genotype" not in line


def test_evaluate_of_a_checkpoint_without_its_shape_falls_back_to_loading(
    trained_run: tuple[Path, TrainState], tmp_path: Path
) -> None:
    """Checkpoints that record no channels or image size are tried as they are."""
    tensors, metadata = load_tensors(trained_run[0] / FINAL_FILE)
    del metadata["in_channels"], metadata["image_size"]
    old = tmp_path / "old.safetensors"
    save_tensors(old, tensors, metadata)
    assert evaluate_checkpoint(old, OPTIONS).images == DIGITS_TEST
    line = _evaluate_on_npz(old, tmp_path / "d.npz", 8, 3, DIGITS_CLASSES)
    assert "does not fit its own genotype" in line
    assert "stem.0.weight" in line


def test_evaluate_at_another_image_size_only_when_asked(
    trained_run: tuple[Path, TrainState], tmp_path: Path
) -> None:
    """The networks pool globally, so another size runs, but only a size the caller asked
    for is taken as meant."""
    tensors, metadata = load_tensors(trained_run[0] / FINAL_FILE)
    larger = tmp_path / "trained-at-16.safetensors"
    save_tensors(larger, tensors, {**metadata, "image_size": 16})
    with pytest.raises(ArtifactError, match="1-channel 16x16 images with 10 classes; digits "):
        evaluate_checkpoint(larger, OPTIONS)
    asked = OPTIONS.model_copy(update={"image_size": 8})
    assert evaluate_checkpoint(larger, asked).images == DIGITS_TEST


def test_evaluate_asks_for_the_trained_image_size(
    trained_run: tuple[Path, TrainState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Datasets without a native size (image folders) are resized to the trained size."""
    import pdarts_cli.training.setup as train_module

    requested: list[int | None] = []

    def recording(spec: str, data_dir: Path | None, download: bool, size: int | None) -> Any:
        requested.append(size)
        return resolve_dataset(spec, data_dir, download, size)

    monkeypatch.setattr(train_module, "resolve_dataset", recording)
    evaluate_checkpoint(trained_run[0] / FINAL_FILE, OPTIONS)
    evaluate_checkpoint(trained_run[0] / FINAL_FILE, OPTIONS.model_copy(update={"image_size": 8}))
    assert requested == [8, 8]


def test_resume_with_another_genotype_is_refused(trained_run: tuple[Path, TrainState]) -> None:
    run_dir, _ = trained_run
    before = (run_dir / "last.safetensors").read_bytes()
    result = runner.invoke(
        app, ["train", "DARTS_V2", "--dataset", "digits", "--resume", str(run_dir)]
    )
    line = assert_one_error_line(result)
    assert "another genotype" in line
    assert (run_dir / "last.safetensors").read_bytes() == before


def test_resume_refuses_flags_that_would_change_the_run(
    trained_run: tuple[Path, TrainState],
) -> None:
    """As ``pdarts search --resume`` does: the run keeps its settings. Its own dataset may be
    repeated; another is refused."""
    run_dir, _ = trained_run
    before = (run_dir / "last.safetensors").read_bytes()
    result = runner.invoke(app, ["train", "PDARTS", "--resume", str(run_dir), "--epochs", "3"])
    assert result.exit_code == 2
    assert "--epochs cannot be combined with --resume" in assert_one_error_line(result)
    repeated = ["train", "PDARTS", "--dataset", "digits", "--resume", str(run_dir), "--lr", "1"]
    assert "--lr cannot" in assert_one_error_line(runner.invoke(app, repeated))
    other = ["train", "PDARTS", "--dataset", "cifar10", "--resume", str(run_dir)]
    assert "--dataset cannot" in assert_one_error_line(runner.invoke(app, other))
    set_epochs = ["train", "PDARTS", "--resume", str(run_dir), "--set", "epochs=3"]
    assert "--set cannot" in assert_one_error_line(runner.invoke(app, set_epochs))
    assert (run_dir / "last.safetensors").read_bytes() == before


def test_set_overrides_recipe_fields_after_the_flags() -> None:
    args = ["train", "PDARTS", "--dataset", "digits", "--recipe", "quick", "--channels", "6"]
    result = runner.invoke(
        app, [*args, "--set", "channels=4", "--set", "layers=3", "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["channels"], report["layers"]) == (4, 3)
    unknown = runner.invoke(app, [*args, "--set", "epochz=1", "--dry-run"])
    assert unknown.exit_code == 2
    assert "unknown key 'epochz'" in assert_one_error_line(unknown)
    invalid = runner.invoke(app, [*args, "--set", "epochs=0", "--dry-run"])
    assert "--set" in assert_one_error_line(invalid)


def test_train_without_a_dataset_or_a_resume_is_refused() -> None:
    line = assert_one_error_line(runner.invoke(app, ["train", "PDARTS", "--dry-run"]))
    assert "give --dataset" in line


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "PDARTS", "--dataset", "digits", "--resume", str(tmp_path)]
    )
    line = assert_one_error_line(result)
    assert "holds no pdarts run" in line
    with pytest.raises(RunDirError):
        resume_training(tmp_path / "absent")


def test_a_batch_that_does_not_split_across_ranks_is_refused() -> None:
    cpu = torch.device("cpu")
    env = TrainEnvironment(
        data=resolve_dataset("digits"),
        device=cpu,
        precision=resolve_precision("auto", cpu),
        channels_last=False,
        dist=Distributed(rank=0, world_size=3),
        dataset="digits",
    )
    with pytest.raises(ConfigError, match="batch size 64 does not divide across 3 ranks"):
        train_batches(quick_recipe(), env)
    assert len(train_batches(quick_recipe().with_overrides(batch_size=63), env)) > 0


def test_the_auxiliary_head_on_8px_digits_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "PDARTS", "--dataset", "digits", "--recipe", "paper-cifar", "--out", str(out)]
    line = assert_one_error_line(runner.invoke(app, args))
    assert "auxiliary" in line
    dry = runner.invoke(app, [*args[:6], "--dry-run"])
    assert "auxiliary" in assert_one_error_line(dry)


def test_a_refused_recipe_leaves_no_run_behind(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "PDARTS", "--dataset", "digits", "--recipe", "paper-cifar", "--out", str(out)]
    runner.invoke(app, args)
    again = assert_one_error_line(runner.invoke(app, args))
    assert "auxiliary" in again


def test_numerics_defaults_follow_the_network_and_stay_off_on_the_cpu() -> None:
    from pdarts_cli.training.setup import training_channels_last, training_precision

    cpu = torch.device("cpu")
    for name in ("paper-cifar", "paper-imagenet"):
        recipe = load_recipe(name)
        assert training_precision(recipe, cpu).dtype is None
        assert training_channels_last(recipe, cpu) is False


def test_ema_weights_are_checkpointed_and_scored(tmp_path: Path) -> None:
    recipe = load_recipe("quick").with_overrides(epochs=1, ema_decay=0.9)
    state = run_training(
        ZOO["PDARTS"](), recipe, TrainOptions(dataset="digits", device="cpu"), tmp_path / "r"
    )
    assert state.ema is not None
    last, _ = load_tensors(tmp_path / "r" / "last.safetensors")
    assert any(key.startswith("ema.") for key in last)
    final, metadata = load_tensors(tmp_path / "r" / FINAL_FILE)
    ema_weights = state.ema.module.state_dict()
    assert all(torch.equal(final[k], ema_weights[k]) for k in final)  # what was scored
    assert metadata["recipe"]["ema_decay"] == 0.9
    assert not (tmp_path / "r" / BEST_FILE).exists()


# --- the validation split alone chooses best.safetensors ------------------------------------


def test_the_validation_split_is_seeded_stratified_and_disjoint() -> None:
    data = resolve_dataset("digits")
    labels = dataset_labels(data.train)
    split = training_split(tiny_valid_recipe(), data)
    assert split.train is not None
    assert split.valid is not None
    train, valid = set(split.train.tolist()), set(split.valid.tolist())
    assert not train & valid
    assert train | valid == set(range(DIGITS_TRAIN))
    for cls in range(DIGITS_CLASSES):  # every class on both sides, in the portion
        members = int((labels == cls).sum())
        held = int((labels[split.valid] == cls).sum())
        assert 0 < held < members
        assert abs(held - VALID_PORTION * members) <= 1
    again = training_split(tiny_valid_recipe(), data)
    assert again.valid is not None
    assert torch.equal(again.valid, split.valid)  # the same on every rank and on resume
    other = training_split(tiny_valid_recipe().with_overrides(seed=1), data)
    assert other.valid is not None
    assert not torch.equal(other.valid, split.valid)
    none = training_split(quick_recipe(), data)
    assert (none.train, none.valid) == (None, None)


def test_every_rank_trains_on_its_share_of_the_training_part_only() -> None:
    data = resolve_dataset("digits")
    recipe = tiny_valid_recipe()
    split = training_split(recipe, data)
    assert split.train is not None
    cpu = torch.device("cpu")
    seen: list[torch.Tensor] = []
    for rank in (0, 1):
        env = TrainEnvironment(
            data=data,
            device=cpu,
            precision=resolve_precision("auto", cpu),
            channels_last=False,
            dist=Distributed(rank=rank, world_size=2),
            dataset="digits",
        )
        batches = train_batches(recipe, env, split.train)
        assert len(batches) == math.ceil(len(split.train) / recipe.batch_size)
        seen += [y for _, y in batches.epoch(seed=3)]
    labels = dataset_labels(data.train)
    assert torch.equal(torch.cat(seen).sort().values, labels[split.train].sort().values)


def test_a_run_with_a_validation_split_records_it(
    valid_run: tuple[Path, TrainState, StepCounter],
) -> None:
    run_dir, state, counter = valid_run
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES | {BEST_FILE}
    split = training_split(tiny_valid_recipe(), resolve_dataset("digits"))
    assert split.train is not None
    assert split.valid is not None
    sizes = {"train": len(split.train), "valid": len(split.valid), "test": DIGITS_TEST}
    assert sizes["train"] + sizes["valid"] == DIGITS_TRAIN
    steps = math.ceil(sizes["train"] / tiny_valid_recipe().batch_size)
    assert counter.steps == {1: steps, 2: steps}  # the held-out images never train
    records = metrics_of(run_dir)
    for record, metrics in zip(records, state.history, strict=True):
        assert record == metrics.to_dict()
        assert record["splits"] == sizes
        assert 0 <= record["valid_top1"] <= 1
        assert record["valid_loss"] > 0
        assert 0 <= record["test_top1"] <= 1


def test_best_is_the_highest_valid_top1_and_evaluates_to_its_test_top1(
    valid_run: tuple[Path, TrainState, StepCounter],
) -> None:
    run_dir, state, _ = valid_run
    records = metrics_of(run_dir)
    best = max(records, key=lambda r: r["valid_top1"])  # the first of equals, as the trainer
    _, metadata = load_tensors(run_dir / BEST_FILE)
    assert (metadata["chosen_by"], metadata["epoch"]) == ("valid_top1", best["epoch"])
    assert metadata["valid_top1"] == best["valid_top1"] == state.best_valid_top1
    assert metadata["test_top1"] == best["test_top1"]  # recorded, never compared
    evaluated = evaluate_checkpoint(run_dir / BEST_FILE, OPTIONS)
    assert evaluated.top1 == best["test_top1"]
    final = evaluate_checkpoint(run_dir / FINAL_FILE, OPTIONS)
    assert final.top1 == records[-1]["test_top1"]


class StoppedError(Exception):
    """Ends a run in process after an epoch's files are written, as a kill between epochs."""


class StopAfterEpoch(TrainObserver):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_finished(self, metrics: TrainMetrics) -> None:
        if metrics.epoch == self.epoch:
            raise StoppedError


def test_best_follows_valid_not_test_and_survives_a_resume(
    valid_run: tuple[Path, TrainState, StepCounter],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Validation scores scripted to fall while the test ones rise: best.safetensors stays at
    epoch 1, through a resume, even though epoch 2 scores higher on the test split."""
    real_score = trainer.score_epoch
    scripted = iter([0.9, 0.5])  # valid top-1 of epochs 1 and 2

    def score(*args: Any) -> Scores:
        real = real_score(*args)
        return Scores(
            real.valid_loss, next(scripted), real.test_loss, real.test_top1, real.test_top5
        )

    monkeypatch.setattr(trainer, "score_epoch", score)
    run_dir = tmp_path / "run"
    with pytest.raises(StoppedError):
        run_training(
            ZOO["PDARTS"](), tiny_valid_recipe(), OPTIONS, run_dir, observer=StopAfterEpoch(1)
        )
    assert load_tensors(run_dir / LAST_FILE)[1]["best_valid_top1"] == 0.9
    state = resume_training(run_dir)
    assert state.best_valid_top1 == 0.9
    records = metrics_of(run_dir)
    assert [r["valid_top1"] for r in records] == [0.9, 0.5]
    assert records[1]["test_top1"] > records[0]["test_top1"]  # the test split would pick 2
    assert load_tensors(run_dir / BEST_FILE)[1]["epoch"] == 1
    # The held-out images are the same after the resume: the run ends as an uninterrupted one.
    resumed, whole = load_file(str(run_dir / FINAL_FILE)), load_file(str(valid_run[0] / FINAL_FILE))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


class NoteTaker(TrainObserver):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_a_run_from_before_the_validation_split_resumes(
    trained_run: tuple[Path, TrainState], tmp_path: Path
) -> None:
    """An older finished run: best_top1 (a test number) in last.safetensors, history and
    recipe without the new fields, a best.safetensors chosen on test, no final.safetensors."""
    run_dir = tmp_path / "old"
    shutil.copytree(trained_run[0], run_dir)
    tensors, metadata = load_tensors(run_dir / LAST_FILE)
    del metadata["best_valid_top1"]
    metadata["best_top1"] = 0.93
    new_keys = ("valid_loss", "valid_top1", "splits")
    metadata["history"] = [
        {k: v for k, v in m.items() if k not in new_keys} for m in metadata["history"]
    ]
    save_tensors(run_dir / LAST_FILE, tensors, metadata)
    recipe = json.loads((run_dir / "recipe.json").read_text())
    del recipe["valid_portion"]
    (run_dir / "recipe.json").write_text(json.dumps(recipe))
    (run_dir / FINAL_FILE).rename(run_dir / BEST_FILE)

    notes = NoteTaker()
    state = resume_training(run_dir, observer=notes)
    assert state.best_valid_top1 is None  # a test-split best chooses nothing
    assert [m.splits for m in state.history] == [None] * EPOCHS
    assert any("chosen on the test split" in note for note in notes.notes)
    written, original = load_file(str(run_dir / FINAL_FILE)), load_file(str(run_dir / BEST_FILE))
    assert all(torch.equal(written[k], original[k]) for k in original)  # the last epoch's


def summary_rows(state: TrainState, run_dir: Path) -> dict[str, str]:
    """The summary table's rows as quantity -> value."""
    console = Console(file=io.StringIO(), width=200)
    console.print(summary_table(state, 1000, run_dir))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    return {row[0]: row[1] for row in cells if len(row) == 2}


def test_the_summary_reports_the_final_epoch_not_a_test_best(
    trained_run: tuple[Path, TrainState], valid_run: tuple[Path, TrainState, StepCounter]
) -> None:
    run_dir, state = trained_run
    rows = summary_rows(state, run_dir)
    last = state.history[-1]
    final = f"{100 * last.test_top1:.2f}% / {100 * last.test_top5:.2f}%"
    assert rows["final test top-1 / top-5"] == final
    assert rows["network to report"] == str(run_dir / FINAL_FILE)
    assert not any("best" in quantity for quantity in rows)  # nothing chosen without valid
    valid_dir, valid_state, _ = valid_run
    best = max(valid_state.history, key=lambda m: m.valid_top1 or 0.0)
    assert best.valid_top1 is not None
    with_valid = summary_rows(valid_state, valid_dir)
    assert with_valid[f"best valid top-1 ({BEST_FILE})"] == (
        f"{100 * best.valid_top1:.2f}% (epoch {best.epoch})"
    )
    assert not any("test" in quantity and "best" in quantity for quantity in with_valid)


def test_the_plot_names_the_trainers_best_file() -> None:
    assert plotting.BEST_FILE == BEST_FILE

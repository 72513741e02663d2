"""Entry-point registries, and a real plugin distribution installed for the test.

tests/plugins/pdarts-example-op is built and installed with pip into a temporary folder, as a
user would install a plugin; its op then takes part in a real (tiny) search.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pdarts_ops
import pytest
import torch
from clihelpers import stderr_of
from torch import nn
from typer.testing import CliRunner

from pdarts_cli.arch import ARCH_FORMAT, read_arch
from pdarts_cli.checkpoint import load_tensors
from pdarts_cli.cli.app import app
from pdarts_cli.errors import ArtifactError, RegistryError
from pdarts_cli.genotype import ZOO, load_genotype
from pdarts_cli.registry import DATASETS_GROUP, OPS_GROUP, Entry, dataset_registry, op_registry
from pdarts_cli.runlog import FINAL_ARCH_FILE, stage_arch_file, stage_weights_file
from pdarts_cli.schedule import DARTS_OPS, DataSchedule, Schedule, StageSchedule
from pdarts_cli.searching import SearchOptions, run_search

PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "pdarts-example-op"
PLUGIN_DIST = "pdarts-example-op"
PLUGIN_MODULE = "pdarts_example_op"
PLUGIN_OP = "std_conv_3x3"
BROKEN_OP = "broken_op"
BROKEN_ERROR = "ImportError: pdarts_example_op.broken needs a library that is not installed"
BUILT_IN_DATASETS = ["cifar10", "cifar100", "digits", "imagefolder", "imagenet", "npz"]

runner = CliRunner()


def entry_point_names(group_entries: list[Entry]) -> list[str]:
    """Names that come from installed distributions (not registered at run time)."""
    return [e.name for e in group_entries if e.distribution != "<runtime>"]


# --- built-ins -----------------------------------------------------------------------------


def test_names_do_not_import_the_ops() -> None:
    code = (
        "from pdarts_cli.registry import op_registry; names = op_registry().names(); "
        "import sys; print(','.join(names)); print('pdarts_ops' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    names, imported = done.stdout.splitlines()
    assert set(DARTS_OPS) <= set(names.split(","))
    assert imported == "False"


def test_built_in_ops_come_from_pdarts_ops() -> None:
    registry = op_registry()
    assert registry.group == OPS_GROUP
    assert set(DARTS_OPS) <= set(registry.names())
    built_in = {e.name: e for e in registry.entries() if e.distribution == "pdarts-ops"}
    assert sorted(built_in) == sorted(DARTS_OPS)
    assert built_in["sep_conv_3x3"].target == "pdarts_ops:sep_conv_3x3"
    assert built_in["none"].target == "pdarts_ops:zero"
    assert "sep_conv_3x3" in registry
    assert registry.get("sep_conv_3x3") is pdarts_ops.sep_conv_3x3
    assert registry.get("none") is pdarts_ops.zero


def test_built_in_datasets_come_from_pdarts() -> None:
    registry = dataset_registry()
    assert registry.group == DATASETS_GROUP
    built_in = {e.name: e for e in registry.entries() if e.distribution == "pdarts"}
    assert sorted(built_in) == BUILT_IN_DATASETS
    assert built_in["digits"].target == "pdarts_cli.data.providers:digits"


def test_unknown_name_lists_the_known_ones() -> None:
    registry = op_registry()
    with pytest.raises(RegistryError) as excinfo:
        registry.get("sep_conv_7x7")
    known = ", ".join(registry.names())
    assert str(excinfo.value) == f"unknown op 'sep_conv_7x7'; known: {known}"
    for name in DARTS_OPS:
        assert name in known
    with pytest.raises(RegistryError, match=r"^unknown dataset 'mnist'; known: .*digits"):
        dataset_registry().get("mnist")


def identity(channels: int, stride: int, affine: bool) -> nn.Module:
    """Identity (a test's own op)."""
    return nn.Identity()


@pytest.fixture
def runtime_op() -> Iterator[str]:
    name = "test_identity"
    op_registry().register(name, identity)
    yield name
    op_registry().unregister(name)


def test_register_and_unregister_at_run_time(runtime_op: str) -> None:
    registry = op_registry()
    assert runtime_op in registry.names()
    assert registry.get(runtime_op) is identity
    (entry,) = [e for e in registry.entries() if e.name == runtime_op]
    assert entry.distribution == "<runtime>"
    # A registered op is a valid schedule candidate at once.
    schedule = Schedule(
        candidate_ops=("skip_connect", runtime_op),
        stages=(StageSchedule(cells=3, ops_per_edge=2, skip_dropout_rate=0.0),),
    )
    assert runtime_op in schedule.candidate_ops
    registry.unregister(runtime_op)
    assert runtime_op not in registry.names()
    with pytest.raises(RegistryError, match=f"^unknown op '{runtime_op}'"):
        registry.get(runtime_op)


@pytest.mark.parametrize("name", ["sep_conv_3x3", "test_identity"])
def test_duplicate_registration_is_refused(runtime_op: str, name: str) -> None:
    before = op_registry().get(name)
    with pytest.raises(RegistryError) as excinfo:
        op_registry().register(name, lambda c, s, a: nn.Identity())
    assert str(excinfo.value) == f"op {name!r} is already registered"
    assert op_registry().get(name) is before


def test_unregister_leaves_entry_points_alone() -> None:
    op_registry().unregister("sep_conv_3x3")
    assert op_registry().get("sep_conv_3x3") is pdarts_ops.sep_conv_3x3


def test_cli_datasets_list() -> None:
    result = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in BUILT_IN_DATASETS:
        assert name in result.output
    assert "warning" not in result.output


# --- a real plugin distribution -------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, installed by pip into a folder of its own (not the venv)."""
    root = tmp_path_factory.mktemp("plugin")
    # Build from a copy: pip builds in-tree and would leave build/ and *.egg-info in tests/.
    source = shutil.copytree(PLUGIN_SOURCE, root / "source")
    site = root / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--quiet",
        "--target",
        str(site),
        str(source),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (site / PLUGIN_MODULE / "__init__.py").is_file()
    return site


def forget_plugin_modules() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == PLUGIN_MODULE]:
        del sys.modules[name]


@pytest.fixture
def plugin(plugin_site: Path) -> Iterator[Path]:
    """The plugin on sys.path and a fresh op registry that scans it; both undone afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(plugin_site))
        op_registry.cache_clear()
        yield plugin_site
    forget_plugin_modules()
    op_registry.cache_clear()


def test_plugin_ops_are_listed_with_their_distribution(plugin: Path) -> None:
    registry = op_registry()
    entries = {e.name: e for e in registry.entries()}
    assert entries[PLUGIN_OP] == Entry(PLUGIN_OP, PLUGIN_DIST, f"{PLUGIN_MODULE}:{PLUGIN_OP}")
    assert entries[BROKEN_OP].distribution == PLUGIN_DIST
    assert {PLUGIN_OP, BROKEN_OP, *DARTS_OPS} <= set(registry.names())
    assert PLUGIN_MODULE not in sys.modules  # listed by name, not imported


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_plugin_op_builds_a_module(plugin: Path, stride: int, affine: bool) -> None:
    factory = op_registry().get(PLUGIN_OP)
    assert factory.__module__ == PLUGIN_MODULE
    op = factory(4, stride, affine)
    out = op(torch.randn(2, 4, 8, 8))
    assert out.shape == (2, 4, 8 // stride, 8 // stride)
    (batchnorm,) = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batchnorm.affine is affine


def test_broken_plugin_op_names_itself_and_its_distribution(plugin: Path) -> None:
    with pytest.raises(RegistryError) as excinfo:
        op_registry().get(BROKEN_OP)
    assert str(excinfo.value) == (
        f"op '{BROKEN_OP}' from {PLUGIN_DIST} failed to load: {BROKEN_ERROR}"
    )
    # The others keep working.
    assert op_registry().get(PLUGIN_OP).__name__ == PLUGIN_OP


def test_load_all_reports_the_broken_op_and_loads_the_rest(plugin: Path) -> None:
    loaded, failures = op_registry().load_all()
    loaded_names = {entry.name for entry, _ in loaded}
    assert {PLUGIN_OP, *DARTS_OPS} <= loaded_names
    assert BROKEN_OP not in loaded_names
    (failure,) = failures
    assert failure.entry.name == BROKEN_OP
    assert failure.entry.distribution == PLUGIN_DIST
    assert str(failure) == (
        f"{BROKEN_OP} ({PLUGIN_DIST}): op '{BROKEN_OP}' from {PLUGIN_DIST} failed to load: "
        f"{BROKEN_ERROR}"
    )


def test_cli_ops_list_shows_the_plugin_and_warns_about_the_broken_op(plugin: Path) -> None:
    result = runner.invoke(app, ["ops", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "Traceback" not in result.output
    (row,) = [line for line in result.output.splitlines() if PLUGIN_OP in line]
    assert PLUGIN_DIST in row
    assert "ReLU, full 3x3 convolution, BatchNorm." in row
    warnings = [line for line in stderr_of(result).splitlines() if BROKEN_OP in line]
    assert warnings == [
        f"warning: skipped {BROKEN_OP} ({PLUGIN_DIST}): op '{BROKEN_OP}' from {PLUGIN_DIST} "
        f"failed to load: {BROKEN_ERROR}"
    ]


def plugin_files(folder: Path) -> tuple[Path, Path]:
    """A genotype and a one-step architecture that name the plugin's op."""
    genotype = ZOO["PDARTS"]().to_dict()
    genotype["normal"][3] = [PLUGIN_OP, 1]
    genotype_path = folder / "plugin.json"
    genotype_path.write_text(json.dumps(genotype), encoding="utf-8")
    edge = {"ops": ["none", PLUGIN_OP], "alpha": [0.0, 1.0]}
    arch = {
        "format": ARCH_FORMAT,
        "steps": 1,
        "cells": {"normal": [edge] * 2, "reduce": [edge] * 2},
    }
    arch_path = folder / "plugin.arch.json"
    arch_path.write_text(json.dumps(arch), encoding="utf-8")
    return genotype_path, arch_path


def test_genotypes_and_architectures_may_name_a_plugin_op(plugin: Path, tmp_path: Path) -> None:
    genotype_path, arch_path = plugin_files(tmp_path)
    assert load_genotype(str(genotype_path)).normal[3] == (PLUGIN_OP, 1)
    assert read_arch(arch_path).normal[0].ops == ("none", PLUGIN_OP)
    result = runner.invoke(app, ["genotype", "show", str(genotype_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert PLUGIN_OP in result.output
    assert PLUGIN_MODULE not in sys.modules  # checked by name, not imported


def test_without_the_plugin_its_op_is_refused(tmp_path: Path) -> None:
    # The plugin fixture uninstalls the plugin again; a leftover install would hide this check.
    assert PLUGIN_OP not in op_registry().names(), f"{PLUGIN_DIST} is still installed"
    genotype_path, arch_path = plugin_files(tmp_path)
    for read in (lambda: load_genotype(str(genotype_path)), lambda: read_arch(arch_path)):
        with pytest.raises(ArtifactError, match=f"unknown op '{PLUGIN_OP}', which no installed"):
            read()


def plugin_conv_count(weights: dict[str, torch.Tensor]) -> int:
    """Full c x c 3x3 kernels: only the plugin's op has them (separable and dilated convs are
    depthwise + 1x1, the stem has the image's channels in, preprocessing is 1x1)."""
    return sum(
        1
        for t in weights.values()
        if t.ndim == 4 and t.shape[0] == t.shape[1] > 1 and tuple(t.shape[2:]) == (3, 3)
    )


@pytest.mark.slow
def test_search_with_a_plugin_op(plugin: Path, tmp_path: Path) -> None:
    """The key test: a plugin installed by pip becomes a candidate of a real search."""
    candidates = ("none", "skip_connect", "sep_conv_3x3", PLUGIN_OP)
    stage = {"epochs": 2, "warmup_epochs": 1, "batch_size": 64, "channels": 4}
    # Built only now: validation checks op names against the (refreshed) registry.
    schedule = Schedule(
        name="plugin",
        candidate_ops=candidates,
        stages=(
            StageSchedule(cells=3, ops_per_edge=4, skip_dropout_rate=0.0, **stage),
            StageSchedule(cells=4, ops_per_edge=2, skip_dropout_rate=0.0, **stage),
        ),
        valid_last_epochs=1,
        min_weight_steps=1,  # 12 steps of 64: a fast test, refused by default
        data=DataSchedule(crop_padding=1, horizontal_flip=False),
    )
    run_dir = tmp_path / "run"
    result = run_search(schedule, SearchOptions(dataset="digits", device="cpu"), run_dir)

    assert result.run_dir == run_dir
    assert (run_dir / FINAL_ARCH_FILE).is_file()
    first = read_arch(run_dir / stage_arch_file(1))
    for edge in (*first.normal, *first.reduce):
        assert edge.ops == candidates  # every edge searched the plugin's op
    second = read_arch(run_dir / stage_arch_file(2))
    assert all(len(edge.ops) == 2 for edge in (*second.normal, *second.reduce))

    # The supernet really held the plugin's module: one full 3x3 conv per edge of every cell.
    weights, _ = load_tensors(run_dir / stage_weights_file(1))
    assert plugin_conv_count(weights) == 3 * schedule.edges_per_cell

    chosen = {op for cell in ("normal", "reduce") for op, _ in result.genotype.cell(cell)}
    assert chosen <= set(candidates) - {"none"}

"""Schedules: every validation rule, the paper's presets, files, flag overrides, the JSON
Schema snapshot, and the ``schedule`` and ``search`` commands' parsing (library call patched)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from clihelpers import stderr_of
from typer.testing import CliRunner, Result

import pdarts_cli.searching
from pdarts_cli.cli.app import app
from pdarts_cli.config import FrozenModel, error_location
from pdarts_cli.errors import ConfigError
from pdarts_cli.genotype import ZOO
from pdarts_cli.overrides import parse_overrides, with_overrides
from pdarts_cli.registry import op_registry
from pdarts_cli.schedule import (
    DARTS_OPS,
    PRESETS,
    ArchOptimizer,
    Schedule,
    load_schedule,
    preset_for_dataset,
    read_schedule_file,
    schedule_json,
    validate_schedule,
)
from pdarts_cli.searching import SearchOptions

SNAPSHOT = Path(__file__).parent / "snapshots" / "schedule.schema.json"
UPDATE_SNAPSHOTS_ENV = "PDARTS_UPDATE_SNAPSHOTS"
SOURCE = "test"


def quick_dict() -> dict[str, Any]:
    """The ``quick`` preset as plain data: cells 3/4/5, ops 8/5/3, 4 epochs, 2 warm-up."""
    data: dict[str, Any] = json.loads(schedule_json(PRESETS["quick"]()))
    return data


def with_value(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """``quick_dict()`` with the item at ``path`` set (or added) to ``value``."""
    data = quick_dict()
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def refusal(data: dict[str, Any]) -> str:
    """The one-line ConfigError that ``data`` is refused with, without the source prefix."""
    with pytest.raises(ConfigError) as excinfo:
        validate_schedule(data, SOURCE)
    message = str(excinfo.value)
    assert "\n" not in message
    prefix = f"invalid schedule ({SOURCE}): "
    assert message.startswith(prefix)
    return message.removeprefix(prefix)


def first_error(message: str, expected: str) -> bool:
    """Whether ``message`` is ``expected``, maybe followed by a count of further errors."""
    rest = message.removeprefix(expected)
    return rest != message and re.fullmatch(r"( \(and \d+ more\))?", rest) is not None


# --- validation rules: each case fails if its rule is removed ---------------------------

WARMUP_RULE = "a stage needs at least one epoch that updates the alphas"

REFUSED: list[tuple[str, tuple[str | int, ...], Any, str]] = [
    # (id, path in the quick preset, value, expected `field.path: message`)
    (
        "cells-equal",
        ("stages", 1, "cells"),
        3,
        "stage 2, cells: depth must increase strictly across stages, got 3 after 3",
    ),
    (
        "cells-decreasing",
        ("stages", 2, "cells"),
        3,
        "stage 3, cells: depth must increase strictly across stages, got 3 after 4",
    ),
    (
        "ops-per-edge-increasing",
        ("stages", 2, "ops_per_edge"),
        6,
        "stage 3, ops_per_edge: ops kept per edge must never increase, got 6 after 5",
    ),
    (
        "first-stage-ops-below-candidates",
        ("stages", 0, "ops_per_edge"),
        7,
        "stage 1, ops_per_edge: the first stage searches every candidate op, so it must equal "
        "the number of candidate_ops (8), got 7",
    ),
    (
        "first-stage-ops-above-candidates",
        ("candidate_ops",),
        ["none", "skip_connect", "sep_conv_3x3"],
        "stage 1, ops_per_edge: the first stage searches every candidate op, so it must equal "
        "the number of candidate_ops (3), got 8",
    ),
    (
        "ops-per-edge-1",
        ("stages", 2, "ops_per_edge"),
        1,
        "stage 3, ops_per_edge: Input should be greater than or equal to 2",
    ),
    (
        "cells-2",
        ("stages", 0, "cells"),
        2,
        "stage 1, cells: needs at least 3 cells so that both normal and reduction cells are "
        "searched, got 2",
    ),
    (
        "skip-dropout-1",
        ("stages", 1, "skip_dropout_rate"),
        1.0,
        "stage 2, skip_dropout_rate: Input should be less than 1",
    ),
    (
        "skip-dropout-negative",
        ("stages", 1, "skip_dropout_rate"),
        -0.1,
        "stage 2, skip_dropout_rate: Input should be greater than or equal to 0",
    ),
    (
        "warmup-equals-epochs",
        ("stages", 0, "warmup_epochs"),
        6,
        f"stage 1, warmup_epochs: must be less than epochs (6), got 6: {WARMUP_RULE}",
    ),
    (
        "warmup-above-epochs",
        ("stages", 2, "warmup_epochs"),
        7,
        f"stage 3, warmup_epochs: must be less than epochs (6), got 7: {WARMUP_RULE}",
    ),
    (
        "epochs-0",
        ("stages", 0),
        {"cells": 3, "ops_per_edge": 8, "skip_dropout_rate": 0.0, "epochs": 0, "warmup_epochs": 0},
        "stage 1, epochs: Input should be greater than or equal to 1",
    ),
    (
        "batch-size-0",
        ("stages", 1, "batch_size"),
        0,
        "stage 2, batch_size: Input should be greater than or equal to 1",
    ),
    (
        "channels-0",
        ("stages", 1, "channels"),
        0,
        "stage 2, channels: Input should be greater than or equal to 1",
    ),
    (
        "duplicate-op",
        ("candidate_ops",),
        ["none", "skip_connect", "none"],
        "candidate_ops: op 'none' is listed twice",
    ),
    (
        "one-candidate-op",
        ("candidate_ops",),
        ["sep_conv_3x3"],
        "candidate_ops: needs at least 2 candidate ops",
    ),
    ("unknown-top-level-field", ("epochs",), 25, "epochs: unknown field"),
    ("unknown-stage-field", ("stages", 1, "epoch"), 25, "stage 2, epoch: unknown field"),
    (
        "unknown-nested-field",
        ("weights", "learning_rate"),
        0.1,
        "weights.learning_rate: unknown field",
    ),
    ("weights-lr-0", ("weights", "lr"), 0.0, "weights.lr: Input should be greater than 0"),
    ("alphas-lr-negative", ("alphas", "lr"), -1e-3, "alphas.lr: Input should be greater than 0"),
    (
        "lr-min-above-lr",
        ("weights", "lr_min"),
        0.1,
        "weights: lr_min (0.1) must not exceed lr (0.025)",
    ),
    ("momentum-1", ("weights", "momentum"), 1.0, "weights.momentum: Input should be less than 1"),
    (
        "momentum-negative",
        ("weights", "momentum"),
        -0.1,
        "weights.momentum: Input should be greater than or equal to 0",
    ),
    (
        "beta-1",
        ("alphas", "betas"),
        [0.5, 1.0],
        "alphas.betas: each beta must be in [0, 1), got [0.5, 1.0]",
    ),
    (
        "beta-negative",
        ("alphas", "betas"),
        [-0.1, 0.999],
        "alphas.betas: each beta must be in [0, 1), got [-0.1, 0.999]",
    ),
    (
        "train-portion-0",
        ("data", "train_portion"),
        0.0,
        "data.train_portion: Input should be greater than 0",
    ),
    (
        "train-portion-1",
        ("data", "train_portion"),
        1.0,
        "data.train_portion: Input should be less than 1",
    ),
    (
        "no-stages",
        ("stages",),
        [],
        "stages: Tuple should have at least 1 item after validation, not 0",
    ),
    (
        "wrong-format",
        ("format",),
        "pdarts-schedule/2",
        "format: Input should be 'pdarts-schedule/1'",
    ),
    (
        "unknown-alpha-order",
        ("alphas", "order"),
        "third",
        "alphas.order: Input should be 'first' or 'second'",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_rule_refuses_with_a_one_line_message(
    path: tuple[str | int, ...], value: Any, expected: str
) -> None:
    assert refusal(with_value(path, value)) == expected


def test_unknown_op_lists_the_known_ones() -> None:
    data = with_value(("candidate_ops",), [*DARTS_OPS[:-1], "sep_conv_7x7"])
    message = refusal(data)
    known = ", ".join(op_registry().names())
    assert message == f"candidate_ops: unknown op 'sep_conv_7x7'; known ops: {known}"
    assert set(DARTS_OPS) <= set(message.split("known ops: ")[1].split(", "))


def test_several_errors_report_the_first_and_a_count() -> None:
    data = with_value(("weights", "lr"), 0.0)
    data["data"]["train_portion"] = 1.0
    assert refusal(data) == "weights.lr: Input should be greater than 0 (and 1 more)"


ACCEPTED: list[tuple[str, tuple[str | int, ...], Any]] = [
    # The edges of each range that must stay allowed.
    ("skip-dropout-0", ("stages", 1, "skip_dropout_rate"), 0.0),
    ("skip-dropout-0.99", ("stages", 2, "skip_dropout_rate"), 0.99),
    ("ops-per-edge-kept", ("stages", 2, "ops_per_edge"), 5),
    ("ops-per-edge-2", ("stages", 2, "ops_per_edge"), 2),
    ("warmup-one-below-epochs", ("stages", 0, "warmup_epochs"), 5),
    ("no-warmup", ("stages", 0, "warmup_epochs"), 0),
    ("lr-min-equals-lr", ("weights", "lr_min"), 0.025),
    ("momentum-0", ("weights", "momentum"), 0.0),
    ("betas-0", ("alphas", "betas"), [0.0, 0.0]),
    ("betas-just-below-1", ("alphas", "betas"), [0.99, 0.9999]),
    ("train-portion-small", ("data", "train_portion"), 0.01),
    ("train-portion-large", ("data", "train_portion"), 0.99),
    ("one-stage", ("stages",), [{"cells": 3, "ops_per_edge": 8, "skip_dropout_rate": 0.0}]),
]


@pytest.mark.parametrize(
    ("path", "value"), [case[1:] for case in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_edge_of_a_rule_is_accepted(path: tuple[str | int, ...], value: Any) -> None:
    dumped: Any = validate_schedule(with_value(path, value), SOURCE).model_dump(mode="json")
    for part in path:
        dumped = dumped[part]
    assert holds(dumped, value)


def holds(dumped: Any, given: Any) -> bool:
    """Whether a dumped value keeps what was given (defaults may add keys to objects)."""
    if isinstance(given, dict):
        return all(holds(dumped[key], value) for key, value in given.items())
    if isinstance(given, list):
        return len(dumped) == len(given) and all(map(holds, dumped, given))
    return bool(dumped == given)


def test_schedules_are_frozen() -> None:
    schedule = PRESETS["quick"]()
    with pytest.raises(ValueError, match="frozen"):
        schedule.seed = 3  # type: ignore[misc]


# --- presets ------------------------------------------------------------------------------


def test_paper_cifar10_is_the_paper_schedule() -> None:
    s = PRESETS["paper-cifar10"]()
    assert s.name == "paper-cifar10"
    assert s.candidate_ops == DARTS_OPS
    assert len(DARTS_OPS) == 8
    assert s.steps == 4
    assert s.edges_per_cell == 14
    assert s.stem_multiplier == 3
    assert [st.cells for st in s.stages] == [5, 11, 17]
    assert [st.ops_per_edge for st in s.stages] == [8, 5, 3]
    assert [st.skip_dropout_rate for st in s.stages] == [0.0, 0.4, 0.7]
    for st in s.stages:
        assert (st.epochs, st.warmup_epochs, st.batch_size, st.channels) == (25, 10, 96, 16)
    w = s.weights
    assert (w.lr, w.lr_min, w.momentum, w.weight_decay, w.grad_clip_norm) == (
        0.025,
        0.0,
        0.9,
        3e-4,
        5.0,
    )
    a = s.alphas
    assert (a.lr, a.betas, a.weight_decay, a.order) == (6e-4, (0.5, 0.999), 1e-3, "first")
    assert s.skip_dropout_decay.kind == "pdarts-code"
    assert s.skip_dropout_decay.factor == 0.2
    assert s.data.train_portion == 0.5
    assert s.data.split == "auto"  # contiguous on CIFAR: the authors' split
    assert (s.data.crop_padding, s.data.horizontal_flip) == (4, True)
    assert s.seed == 2
    assert s.valid_last_epochs == 4  # `epochs - epoch < 5` over range(epochs)
    assert s.max_skip == 2


def test_paper_cifar100_differs_only_in_name_and_dropout() -> None:
    c10 = PRESETS["paper-cifar10"]().model_dump()
    c100 = PRESETS["paper-cifar100"]().model_dump()
    assert c100["name"] == "paper-cifar100"
    assert [st["skip_dropout_rate"] for st in c100["stages"]] == [0.1, 0.2, 0.3]
    for dump in (c10, c100):
        dump.pop("name")
        for st in dump["stages"]:
            st.pop("skip_dropout_rate")
    assert c100 == c10


def test_quick_is_a_small_valid_schedule() -> None:
    s = PRESETS["quick"]()
    assert s.name == "quick"
    assert validate_schedule(s.model_dump(), SOURCE) == s
    assert [st.cells for st in s.stages] == [3, 4, 5]
    assert [st.ops_per_edge for st in s.stages] == [8, 5, 3]
    assert all(st.warmup_epochs < st.epochs <= 6 for st in s.stages)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_loads_by_name(name: str) -> None:
    schedule = load_schedule(name)
    assert schedule == PRESETS[name]()
    assert schedule.name == name


@pytest.mark.parametrize(
    ("dataset", "preset"),
    [
        ("cifar100", "paper-cifar100"),
        ("cifar10", "paper-cifar10"),
        ("digits", "paper-cifar10"),
        ("npz:/data/cifar100.npz", "paper-cifar10"),
        ("imagefolder:cifar100", "paper-cifar10"),
    ],
)
def test_preset_for_dataset(dataset: str, preset: str) -> None:
    assert preset_for_dataset(dataset) == preset


# --- files --------------------------------------------------------------------------------

TOML_SCHEDULE = """\
# A schedule file as a user writes it: only what differs from the defaults.
name = "tiny-toml"
seed = 5
candidate_ops = ["none", "skip_connect", "sep_conv_3x3"]

[[stages]]
cells = 3
ops_per_edge = 3
skip_dropout_rate = 0.0
epochs = 2
warmup_epochs = 1

[[stages]]
cells = 5
ops_per_edge = 2
skip_dropout_rate = 0.3

[alphas]
order = "second"
betas = [0.9, 0.99]
"""


def test_toml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TOML_SCHEDULE, encoding="utf-8")
    s = load_schedule(str(path))
    assert s == read_schedule_file(path)
    assert (s.name, s.seed, s.candidate_ops) == (
        "tiny-toml",
        5,
        ("none", "skip_connect", "sep_conv_3x3"),
    )
    assert [(st.cells, st.ops_per_edge, st.epochs, st.warmup_epochs) for st in s.stages] == [
        (3, 3, 2, 1),
        (5, 2, 25, 10),
    ]
    assert s.stages[1].skip_dropout_rate == 0.3
    assert (s.alphas.order, s.alphas.betas, s.alphas.lr) == ("second", (0.9, 0.99), 6e-4)


def test_json_file_loads(tmp_path: Path) -> None:
    data = {
        "name": "tiny-json",
        "candidate_ops": ["skip_connect", "sep_conv_3x3"],
        "stages": [
            {"cells": 3, "ops_per_edge": 2, "skip_dropout_rate": 0.1},
            {"cells": 4, "ops_per_edge": 2, "skip_dropout_rate": 0.2, "batch_size": 8},
        ],
        "weights": {"lr": 0.1, "lr_min": 0.001},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    s = load_schedule(str(path))
    assert s.name == "tiny-json"
    assert [st.batch_size for st in s.stages] == [96, 8]
    assert (s.weights.lr, s.weights.lr_min, s.weights.momentum) == (0.1, 0.001, 0.9)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_schedule_json_loads_back_equal(name: str, tmp_path: Path) -> None:
    schedule = PRESETS[name]()
    text = schedule_json(schedule)
    assert validate_schedule(json.loads(text), SOURCE) == schedule
    path = tmp_path / f"{name}.json"
    path.write_text(text, encoding="utf-8")
    assert load_schedule(str(path)) == schedule


def file_refusal(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        load_schedule(str(path))
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    message = file_refusal(tmp_path, "broken.toml", "[[stages]\ncells = 3\n")
    assert message.startswith(f"cannot parse schedule {tmp_path / 'broken.toml'}: ")


def test_broken_json_is_one_line(tmp_path: Path) -> None:
    message = file_refusal(tmp_path, "broken.json", '{"stages": [\n  {"cells": 3,}\n]}')
    assert message.startswith(f"cannot parse schedule {tmp_path / 'broken.json'}: ")
    assert "line 2" in message


def test_json_list_is_refused(tmp_path: Path) -> None:
    message = file_refusal(tmp_path, "list.json", "[1, 2]")
    assert message == (
        f"invalid schedule ({tmp_path / 'list.json'}): expected a table/object at the top level"
    )


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    content = TOML_SCHEDULE.replace("warmup_epochs = 1", "warmup_epoch = 1")
    message = file_refusal(tmp_path, "typo.toml", content)
    assert (
        message
        == f"invalid schedule ({tmp_path / 'typo.toml'}): stage 1, warmup_epoch: unknown field"
    )


def test_non_utf8_file_is_one_line(tmp_path: Path) -> None:
    message = file_refusal(tmp_path, "latin1.toml", 'name = "caf\xe9"\n'.encode("latin-1"))
    assert message.startswith(f"cannot read schedule {tmp_path / 'latin1.toml'}")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as excinfo:
        load_schedule(str(path))
    assert str(excinfo.value) == f"cannot read schedule {path}: No such file or directory"


def test_unknown_preset_name() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_schedule("paper-cifar11")
    assert str(excinfo.value) == (
        "unknown schedule 'paper-cifar11': not a preset (paper-cifar10, paper-cifar100, quick) "
        "and not a .toml/.json file"
    )


# --- overrides ----------------------------------------------------------------------------


def test_overrides_reach_every_stage() -> None:
    base = PRESETS["paper-cifar10"]()
    s = base.with_overrides(epochs=12, warmup_epochs=4, batch_size=32, seed=7, channels=8)
    assert s.seed == 7
    for st, before in zip(s.stages, base.stages, strict=True):
        assert (st.epochs, st.warmup_epochs, st.batch_size, st.channels) == (12, 4, 32, 8)
        assert (st.cells, st.ops_per_edge, st.skip_dropout_rate) == (
            before.cells,
            before.ops_per_edge,
            before.skip_dropout_rate,
        )
    assert s.model_dump(exclude={"seed", "stages"}) == base.model_dump(exclude={"seed", "stages"})
    assert base.stages[0].epochs == 25  # the original is untouched


def test_none_overrides_are_ignored() -> None:
    base = PRESETS["quick"]()
    assert base.with_overrides(epochs=None, batch_size=None, seed=None, channels=None) == base
    assert base.with_overrides() == base


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"epochs": 3},
            f"stage 1, warmup_epochs: must be less than epochs (3), got 10: {WARMUP_RULE}",
        ),
        ({"batch_size": 0}, "stage 1, batch_size: Input should be greater than or equal to 1"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ],
)
def test_override_that_breaks_a_rule_is_refused(overrides: dict[str, int], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        PRESETS["paper-cifar10"]().with_overrides(**overrides)
    # An override reaches every stage, so the other stages' errors may be counted too.
    assert first_error(str(excinfo.value), f"invalid schedule (command-line flags): {expected}")


# --- dotted overrides ---------------------------------------------------------------------


def test_dotted_override_sets_a_nested_field() -> None:
    quick = PRESETS["quick"]()
    s = with_overrides(quick, {"alphas.order": "second"})
    assert s.alphas == quick.alphas.model_copy(update={"order": "second"})
    assert s.model_dump(exclude={"alphas"}) == quick.model_dump(exclude={"alphas"})
    assert quick.alphas.order == "first"  # the original is untouched


def test_stage_keys_count_from_one() -> None:
    quick = PRESETS["quick"]()
    s = with_overrides(quick, {"stages.1.epochs": 5, "stages.3.batch_size": 16})
    assert [st.epochs for st in s.stages] == [5, 6, 6]
    assert [st.batch_size for st in s.stages] == [32, 32, 16]


@pytest.mark.parametrize(
    ("overrides", "betas"),
    [
        ({"alphas.betas": [0.6, 0.9]}, (0.6, 0.9)),
        ({"alphas.betas.2": 0.99}, (0.5, 0.99)),
    ],
)
def test_list_values_and_list_items(overrides: dict[str, Any], betas: tuple[float, ...]) -> None:
    assert with_overrides(PRESETS["quick"](), overrides).alphas.betas == betas


def test_a_key_replaces_a_whole_table_and_later_keys_refine_it() -> None:
    quick = PRESETS["quick"]()
    s = with_overrides(quick, {"alphas": {"order": "second"}})
    assert s.alphas == ArchOptimizer(order="second")  # the other fields: defaults
    stages = [st.model_dump() for st in quick.stages[:2]]
    s = with_overrides(quick, {"stages": stages, "stages.2.epochs": 9})
    assert [st.cells for st in s.stages] == [3, 4]
    assert [st.epochs for st in s.stages] == [6, 9]


def test_dotted_overrides_run_every_rule() -> None:
    with pytest.raises(ConfigError) as excinfo:
        with_overrides(PRESETS["quick"](), {"stages.2.cells": 3})
    assert str(excinfo.value) == (
        "invalid schedule (overrides): stage 2, cells: depth must increase strictly across "
        "stages, got 3 after 3"
    )


def test_an_invalid_value_names_its_field() -> None:
    with pytest.raises(ConfigError) as excinfo:
        with_overrides(PRESETS["quick"](), {"stages.1.epochs": 0}, source="--set")
    assert first_error(
        str(excinfo.value),
        "invalid schedule (--set): stage 1, epochs: Input should be greater than or equal to 1",
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "alphas.ordr",
            "unknown key 'alphas.ordr'; known keys in alphas: lr, betas, weight_decay, "
            "grad_clip_norm, init_scale, order",
        ),
        ("sead", "unknown key 'sead'; known keys: format, name, seed, steps,"),
        ("stages.0.epochs", "unknown key 'stages.0.epochs'; known keys in stages: 1, 2, 3"),
        ("stages.4.epochs", "unknown key 'stages.4.epochs'; known keys in stages: 1, 2, 3"),
        ("stages.1.epoch", "unknown key 'stages.1.epoch'; known keys in stages.1: cells,"),
        ("seed.value", "unknown key 'seed.value': seed is a value, not a table"),
    ],
)
def test_an_unknown_key_names_the_known_ones(key: str, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        with_overrides(PRESETS["quick"](), {key: 1})
    assert str(excinfo.value).startswith(f"invalid schedule (overrides): {message}")


def test_parse_overrides_reads_json_else_a_string() -> None:
    parsed = parse_overrides(
        [
            "alphas.order=second",
            "stages.1.epochs=5",
            "weights.lr=0.05",
            "alphas.betas=[0.5,0.999]",
            "max_skip=null",
            "data.horizontal_flip=false",
            "name=my run=2",
            'seed="7"',
            "channels_last=",
        ]
    )
    assert parsed == {
        "alphas.order": "second",
        "stages.1.epochs": 5,
        "weights.lr": 0.05,
        "alphas.betas": [0.5, 0.999],
        "max_skip": None,
        "data.horizontal_flip": False,
        "name": "my run=2",
        "seed": "7",
        "channels_last": "",
    }


def test_parse_overrides_keeps_the_last_value_of_a_key() -> None:
    parsed = parse_overrides(["seed=1", "alphas={}", "seed=3"])
    assert list(parsed.items()) == [("alphas", {}), ("seed", 3)]


@pytest.mark.parametrize("item", ["seed", "=5", " =5"])
def test_parse_overrides_needs_key_and_value(item: str) -> None:
    with pytest.raises(ConfigError, match="an override is KEY=VALUE"):
        parse_overrides([item])


class Toy(FrozenModel):
    sizes: tuple[int, ...] = (1, 2)
    inner: ArchOptimizer = ArchOptimizer()


def test_dotted_overrides_work_on_any_config_model() -> None:
    toy = with_overrides(Toy(), parse_overrides(["sizes.2=5", "inner.order=second"]))
    assert toy == Toy(sizes=(1, 5), inner=ArchOptimizer(order="second"))
    with pytest.raises(ConfigError, match=r"^invalid toy \(overrides\): sizes item 1: "):
        with_overrides(Toy(), {"sizes.1": "x"})


# --- JSON Schema snapshot -----------------------------------------------------------------


def schema_text() -> str:
    return json.dumps(Schedule.model_json_schema(), indent=2) + "\n"


def test_json_schema_matches_snapshot() -> None:
    """The schema of schedule files is an interface: change it on purpose only.

    After an intended change, regenerate the snapshot and commit it:
    PDARTS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_schedule.py -k snapshot
    """
    if os.environ.get(UPDATE_SNAPSHOTS_ENV) == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(schema_text(), encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot: run with {UPDATE_SNAPSHOTS_ENV}=1 to create it"
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert Schedule.model_json_schema() == expected, (
        f"Schedule's JSON Schema differs from {SNAPSHOT.name}; if the change is intended, "
        f"regenerate it with {UPDATE_SNAPSHOTS_ENV}=1 .venv/bin/python -m pytest "
        "tests/test_schedule.py -k snapshot, and commit the file"
    )


# --- CLI: pdarts schedule ----------------------------------------------------------------

runner = CliRunner()


def assert_one_line_error(result: Result, expected: str | None = None) -> str:
    """A user error: non-zero exit through typer.Exit (no exception), one ``error:`` line."""
    assert result.exit_code != 0
    # CliRunner swallows tracebacks into result.exception, so check what ended the command.
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in stderr_of(result).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    if expected is not None:
        assert lines[0] == f"error: {expected}"
    return lines[0]


def test_cli_show_renders_the_stages() -> None:
    result = runner.invoke(app, ["schedule", "show", "paper-cifar10"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "schedule paper-cifar10" in result.output
    assert "17" in result.output
    assert "0.7" in result.output
    assert "SGD lr 0.025" in result.output
    assert "betas 0.5/0.999" in result.output


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_cli_show_json_loads_back_equal(name: str) -> None:
    result = runner.invoke(app, ["schedule", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    assert validate_schedule(json.loads(result.output), SOURCE) == PRESETS[name]()


def test_cli_show_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TOML_SCHEDULE, encoding="utf-8")
    result = runner.invoke(app, ["schedule", "show", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert validate_schedule(json.loads(result.output), SOURCE) == load_schedule(str(path))


def test_cli_schema_is_the_json_schema() -> None:
    result = runner.invoke(app, ["schedule", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "stages" in schema["properties"]
    assert "stages" in schema["required"]
    assert schema == Schedule.model_json_schema()
    assert result.output == schema_text()  # the snapshot's format too


def test_cli_list_names_every_preset() -> None:
    result = runner.invoke(app, ["schedule", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert "5/11/17 cells, 25 epochs each" in lines[0]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.toml", "[[stages]\ncells = 3\n"),
        ("broken.json", "{"),
        ("typo.toml", TOML_SCHEDULE.replace("seed = 5", "sead = 5")),
        ("rule.json", json.dumps(with_value(("stages", 1, "cells"), 3))),
    ],
)
def test_cli_broken_schedule_file_is_one_error_line(
    tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["schedule", "show", str(path)])
    assert result.exit_code == ConfigError.exit_code
    line = assert_one_line_error(result)
    assert str(path) in line


def test_cli_unknown_schedule_is_one_error_line() -> None:
    result = runner.invoke(app, ["schedule", "show", "nope"])
    assert_one_line_error(
        result,
        "unknown schedule 'nope': not a preset (paper-cifar10, paper-cifar100, quick) and not "
        "a .toml/.json file",
    )


def test_cli_show_applies_set() -> None:
    args = ["--set", "alphas.order=second", "--set", "stages.1.epochs=5", "--json"]
    result = runner.invoke(app, ["schedule", "show", "quick", *args])
    assert result.exit_code == 0, result.output
    shown = validate_schedule(json.loads(result.output), SOURCE)
    expected = {"alphas.order": "second", "stages.1.epochs": 5}
    assert shown == with_overrides(PRESETS["quick"](), expected)
    assert shown.alphas.order == "second"
    assert [st.epochs for st in shown.stages] == [5, 6, 6]


def test_cli_show_table_reflects_set() -> None:
    result = runner.invoke(
        app, ["schedule", "show", "quick", "--set", "alphas.order=second"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "second order" in result.output


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            "stages.4.epochs=3",
            "invalid schedule (--set): unknown key 'stages.4.epochs'; known keys in stages: "
            "1, 2, 3",
        ),
        ("alphas.order=third", "invalid schedule (--set): alphas.order: Input should be "),
        ("seed", "an override is KEY=VALUE (alphas.order=second), got 'seed'"),
    ],
)
def test_cli_show_bad_set_is_one_error_line(item: str, expected: str) -> None:
    result = runner.invoke(app, ["schedule", "show", "quick", "--set", item])
    assert result.exit_code == ConfigError.exit_code
    assert assert_one_line_error(result).startswith(f"error: {expected}")


# --- CLI: pdarts search parsing (library call patched) ------------------------------------


class Calls:
    """What the patched library functions received."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.runs: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []

    def result(self) -> SimpleNamespace:
        return SimpleNamespace(genotype=ZOO["PDARTS"](), run_dir=self.run_dir, seconds=12.0)

    def run_search(
        self, schedule: Schedule, options: SearchOptions, out_dir: Path, **kw: Any
    ) -> Any:
        self.runs.append({"schedule": schedule, "options": options, "out_dir": out_dir, **kw})
        return self.result()

    def resume_search(self, run_dir: Path, **kw: Any) -> Any:
        self.resumes.append({"run_dir": run_dir, **kw})
        return self.result()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Calls:
    # The command imports run_search lazily from pdarts_cli.searching, so patch it there.
    recorder = Calls(tmp_path / "run")
    monkeypatch.setattr(pdarts_cli.searching, "run_search", recorder.run_search)
    monkeypatch.setattr(pdarts_cli.searching, "resume_search", recorder.resume_search)
    monkeypatch.delenv("PDARTS_DATA", raising=False)
    return recorder


def search(*args: str) -> Result:
    return runner.invoke(app, ["search", "--quiet", *args])


def test_search_picks_the_paper_schedule_of_the_dataset(calls: Calls, tmp_path: Path) -> None:
    result = search("--dataset", "cifar100", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    assert call["schedule"] == PRESETS["paper-cifar100"]()
    assert call["options"] == SearchOptions(dataset="cifar100")
    assert call["out_dir"] == tmp_path / "out"
    assert call["force"] is False
    assert calls.resumes == []


def test_search_prints_the_genotype(calls: Calls) -> None:
    result = search("--dataset", "digits")
    assert result.exit_code == 0, result.output
    assert result.output == ZOO["PDARTS"]().to_darts() + "\n"
    (call,) = calls.runs
    assert call["schedule"] == PRESETS["paper-cifar10"]()
    assert call["out_dir"].parent == Path("runs")
    assert call["out_dir"].name.startswith("search-")


def test_search_flags_reach_every_stage(calls: Calls) -> None:
    flags = ["--epochs", "12", "--warmup-epochs", "4", "--batch-size", "32", "--seed", "7"]
    result = search("--dataset", "cifar10", *flags, "--channels", "8")
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    schedule: Schedule = call["schedule"]
    base = PRESETS["paper-cifar10"]()
    assert schedule.seed == 7
    assert len(schedule.stages) == 3
    for st in schedule.stages:
        assert (st.epochs, st.warmup_epochs, st.batch_size, st.channels) == (12, 4, 32, 8)
    assert [st.cells for st in schedule.stages] == [5, 11, 17]
    assert schedule.model_dump(exclude={"seed", "stages"}) == base.model_dump(
        exclude={"seed", "stages"}
    )


def test_search_options(calls: Calls, tmp_path: Path) -> None:
    result = search(
        "--dataset",
        "imagefolder:/data/pets",
        "--schedule",
        "quick",
        "--data-dir",
        str(tmp_path / "data"),
        "--download",
        "--image-size",
        "32",
        "--device",
        "cpu",
        "--force",
    )
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    assert call["schedule"] == PRESETS["quick"]()
    assert call["options"] == SearchOptions(
        dataset="imagefolder:/data/pets",
        data_dir=tmp_path / "data",
        download=True,
        image_size=32,
        device="cpu",
    )
    assert call["force"] is True


def test_search_alpha_order(calls: Calls) -> None:
    result = search("--dataset", "digits", "--schedule", "quick", "--alpha-order", "second")
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    quick = PRESETS["quick"]()
    assert call["schedule"].alphas == quick.alphas.model_copy(update={"order": "second"})
    assert call["schedule"].model_dump(exclude={"alphas"}) == quick.model_dump(exclude={"alphas"})


def test_search_batch_size_per_stage(calls: Calls) -> None:
    result = search("--dataset", "digits", "--schedule", "quick", "--batch-size", "16,24,32")
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    assert [s.batch_size for s in call["schedule"].stages] == [16, 24, 32]
    assert call["options"].auto_batch_size is False


def test_search_one_batch_size_for_every_stage(calls: Calls) -> None:
    result = search("--dataset", "digits", "--schedule", "quick", "--batch-size", "24")
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    assert [s.batch_size for s in call["schedule"].stages] == [24, 24, 24]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("16,32", "batch_size: give one value for every stage or one per stage (3), got 2"),
        ("16,x", "--batch-size takes a number, one per stage (16,32,32), auto or auto-max"),
        ("0", "--batch-size: batch sizes are at least 1"),
    ],
)
def test_search_bad_batch_sizes_are_one_line(calls: Calls, value: str, message: str) -> None:
    result = search("--dataset", "digits", "--schedule", "quick", "--batch-size", value)
    line = assert_one_line_error(result)
    assert message in line
    assert calls.runs == []


@pytest.mark.parametrize(("value", "raise_batch"), [("auto", False), ("auto-max", True)])
def test_search_auto_batch_modes(calls: Calls, value: str, raise_batch: bool) -> None:
    result = search("--dataset", "digits", "--schedule", "quick", "--batch-size", value)
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    assert call["options"].auto_batch_size is True
    assert call["options"].raise_batch is raise_batch
    assert call["schedule"] == PRESETS["quick"]()


def test_search_resume(calls: Calls, tmp_path: Path) -> None:
    result = search("--resume", str(tmp_path / "old"), "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert calls.runs == []
    (call,) = calls.resumes
    assert (call["run_dir"], call["device"], call["data_dir"]) == (tmp_path / "old", "cpu", None)


def test_search_resume_refuses_schedule_flags(calls: Calls, tmp_path: Path) -> None:
    result = search("--resume", str(tmp_path / "old"), "--epochs", "3")
    assert_one_line_error(
        result, "--epochs cannot be combined with --resume: a resumed run keeps its settings"
    )
    assert calls.runs == calls.resumes == []


def test_search_set_applies_after_the_other_flags(calls: Calls) -> None:
    args = ["--epochs", "12", "--alpha-order", "second", "--set", "stages.2.epochs=20"]
    result = search("--dataset", "digits", "--schedule", "quick", *args, "--set", "seed=9")
    assert result.exit_code == 0, result.output
    (call,) = calls.runs
    schedule: Schedule = call["schedule"]
    assert [st.epochs for st in schedule.stages] == [12, 20, 12]
    assert (schedule.seed, schedule.alphas.order) == (9, "second")


def test_search_set_that_breaks_a_rule_is_one_line(calls: Calls) -> None:
    result = search("--dataset", "digits", "--set", "stages.1.warmup_epochs=25")
    assert_one_line_error(
        result,
        "invalid schedule (--set): stage 1, warmup_epochs: must be less than epochs (25), "
        f"got 25: {WARMUP_RULE}",
    )
    assert calls.runs == []


def test_search_resume_refuses_set(calls: Calls, tmp_path: Path) -> None:
    result = search("--resume", str(tmp_path / "old"), "--set", "seed=3")
    assert_one_line_error(
        result, "--set cannot be combined with --resume: a resumed run keeps its settings"
    )
    assert calls.runs == calls.resumes == []


def test_search_needs_a_dataset_or_resume(calls: Calls) -> None:
    result = search()
    assert_one_line_error(
        result, "give --dataset (for example --dataset digits), or --resume RUN_DIR"
    )
    assert calls.runs == []


def test_search_flag_that_breaks_a_rule_is_one_line(calls: Calls) -> None:
    result = search("--dataset", "digits", "--epochs", "3")
    line = assert_one_line_error(result)
    expected = (
        "error: invalid schedule (command-line flags): "
        f"stage 1, warmup_epochs: must be less than epochs (3), got 10: {WARMUP_RULE}"
    )
    assert first_error(line, expected)
    assert calls.runs == []


def test_search_bad_schedule_file_is_one_line(calls: Calls, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    result = search("--dataset", "digits", "--schedule", str(path))
    line = assert_one_line_error(result)
    assert line.startswith(f"error: cannot parse schedule {path}: ")
    assert calls.runs == []


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("stages", 0, "epochs"), "stage 1, epochs"),
        (("stages", 2), "stage 3,"),
        (("alphas", "betas", 1), "alphas.betas item 2"),
        (("weights", "lr"), "weights.lr"),
        ((), ""),
    ],
)
def test_error_locations_count_stages_from_one(loc: tuple[int | str, ...], text: str) -> None:
    assert error_location(loc) == text

"""Hostile text: the genotype JSON, arch JSON, DARTS-string and schedule readers turn any input
into a valid object or one of the tool's own errors, never another exception, never code run,
in bounded time and memory (hypothesis, with a fixed budget of examples)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdarts_cli.arch import ArchWeights, arch_from_dict, read_arch
from pdarts_cli.errors import PdartsError
from pdarts_cli.files import MAX_TEXT_BYTES
from pdarts_cli.genotype import Genotype, load_genotype, read_genotype_file
from pdarts_cli.genotype.darts_string import parse_darts
from pdarts_cli.genotype.model import genotype_from_dict
from pdarts_cli.schedule import DARTS_OPS, Schedule, read_schedule_file, validate_schedule

EXAMPLES = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from([*DARTS_OPS, "normal", "reduce", "pdarts-genotype/1", "pdarts-arch/1"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=40,
)


def _changed(valid: dict[str, Any], changes: dict[str, Any], drop: bool) -> dict[str, Any]:
    if drop:
        return {k: v for k, v in valid.items() if k not in changes}
    return {**valid, **changes}


def _near(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``valid`` with some of its fields replaced by anything, or removed."""
    changes = st.dictionaries(st.sampled_from(sorted(valid)), json_values, max_size=3)
    return st.builds(lambda c, drop: _changed(valid, c, drop), changes, st.booleans())


def valid_genotype_dict() -> dict[str, Any]:
    from pdarts_cli.genotype import genotype_json

    data: dict[str, Any] = json.loads(genotype_json(load_genotype("PDARTS")))
    return data


def valid_schedule_dict() -> dict[str, Any]:
    from pdarts_cli.schedule import load_schedule, schedule_json

    data: dict[str, Any] = json.loads(schedule_json(load_schedule("quick")))
    return data


def valid_arch_dict() -> dict[str, Any]:
    edges = [{"ops": list(DARTS_OPS), "alphas": [0.0] * len(DARTS_OPS)} for _ in range(14)]
    return {"format": "pdarts-arch/1", "steps": 4, "cells": {"normal": edges, "reduce": edges}}


def _accepts_or_own_error(parse: Any, value: Any, kind: type) -> None:
    try:
        result = parse(value)
    except PdartsError:
        return
    assert isinstance(result, kind)


@EXAMPLES
@given(json_values | _near(valid_genotype_dict()))
def test_genotype_dicts(value: Any) -> None:
    _accepts_or_own_error(lambda v: genotype_from_dict(v, source="fuzz"), value, Genotype)


@EXAMPLES
@given(json_values | _near(valid_arch_dict()))
def test_arch_dicts(value: Any) -> None:
    _accepts_or_own_error(lambda v: arch_from_dict(v, source="fuzz"), value, ArchWeights)


@EXAMPLES
@given(json_values | _near(valid_schedule_dict()))
def test_schedule_dicts(value: Any) -> None:
    _accepts_or_own_error(lambda v: validate_schedule(v, "fuzz"), value, Schedule)


darts_pieces = st.sampled_from(
    ["Genotype(", ")", "normal=", "reduce=", "normal_concat=", "reduce_concat=", "[", "]",
     "(", ",", "'sep_conv_3x3'", "0", "1", "range(2, 6)", "range(", "**x", "lambda: 0",
     "__import__('os')", "[0]*99", "'a'*9", "\x00", "#", "\n", " "]
)  # fmt: skip


@EXAMPLES
@given(st.text(max_size=200) | st.lists(darts_pieces, max_size=40).map("".join))
def test_darts_strings(text: str) -> None:
    _accepts_or_own_error(lambda t: parse_darts(t, source="fuzz"), text, Genotype)


@EXAMPLES
@given(st.binary(max_size=300), st.sampled_from([".json", ".toml", ".txt"]))
def test_files_of_random_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(data)
    for read in (read_genotype_file, read_arch, read_schedule_file):
        with contextlib.suppress(PdartsError):
            read(path)


def test_a_darts_string_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    attempts = [
        f"Genotype(normal=__import__('pathlib').Path({str(marker)!r}).touch())",
        f"Genotype(normal=[open({str(marker)!r}, 'w')], normal_concat=range(2, 6))",
        "Genotype(normal=(lambda: 0)(), reduce=[], normal_concat=[2], reduce_concat=[2])",
    ]
    for text in attempts:
        with pytest.raises(PdartsError):
            parse_darts(text)
    assert not marker.exists()


def test_a_darts_string_nested_ten_thousand_deep_is_one_error() -> None:
    with pytest.raises(PdartsError, match="DARTS syntax"):
        parse_darts("Genotype(normal=" + "[" * 10_000 + "]" * 10_000 + ")")
    with pytest.raises(PdartsError, match="characters"):
        parse_darts("Genotype(normal=[" + "0," * 1_000_000 + "])")


@pytest.mark.parametrize(
    ("name", "read"),
    [("g.json", read_genotype_file), ("a.json", read_arch), ("s.json", read_schedule_file)],
)
def test_json_nested_a_hundred_thousand_deep_is_one_error(
    tmp_path: Path, name: str, read: Any
) -> None:
    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PdartsError, match="nested too deep"):
        read(path)


def test_toml_nested_deep_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(PdartsError, match="nested too deep"):
        read_schedule_file(path)


@pytest.mark.parametrize("read", [read_genotype_file, read_arch, read_schedule_file])
def test_a_hundred_megabyte_file_is_refused_unread(tmp_path: Path, read: Any) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:  # sparse: 100 MB that cost nothing to write
        handle.truncate(100 * 2**20)
    assert os.path.getsize(path) > MAX_TEXT_BYTES
    with pytest.raises(PdartsError, match="more than"):
        read(path)

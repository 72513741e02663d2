"""Genotypes: the ``pdarts-genotype/1`` JSON file, validation, the DARTS syntax read without
``eval``, the built-in zoo, ``load_genotype`` (files, run directories, strings, names),
``genotype_diff``, and the refusal of op names no installed package registers, in every command
that reads a genotype.

Derivation itself (alphas -> genotype) is tested in test_derive.py. The zoo's expected lists
below are copied by hand from ../shared/ALGORITHM.md ("Published genotypes"), not from the code.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from clihelpers import assert_one_error_line
from torch import nn
from typer.testing import CliRunner

from pdarts_cli.checkpoint import save_tensors
from pdarts_cli.cli.app import app
from pdarts_cli.errors import ArtifactError
from pdarts_cli.genotype import (
    GENOTYPE_FORMAT,
    ZOO,
    Genotype,
    NodeDifference,
    genotype_diff,
    genotype_from_dict,
    known_op_names,
    load_genotype,
    parse_darts,
    read_genotype_file,
    write_genotype,
)
from pdarts_cli.registry import op_registry
from pdarts_cli.runlog import GENOTYPE_FILE, RUN_FILE, UNREFINED_GENOTYPE_FILE
from pdarts_cli.training.state import WEIGHTS_FORMAT

S3, S5, D3, D5 = "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"
SKIP, MAX, AVG = "skip_connect", "max_pool_3x3", "avg_pool_3x3"
KNOWN_OPS = ("none", MAX, AVG, SKIP, S3, S5, D3, D5)  # the eight DARTS candidates
WARP = "warp_drive"  # an op no installed package registers
WIDE = {"COLUMNS": "200"}  # Rich and Typer wrap at the terminal width; keep lines whole

runner = CliRunner()

# ALGORITHM.md, "Published genotypes": (normal, reduce); every concat is 2..5
PUBLISHED = {
    "PDARTS": (
        [(SKIP, 0), (D3, 1), (SKIP, 0), (S3, 1), (S3, 1), (S3, 3), (S3, 0), (D5, 4)],
        [(AVG, 0), (S5, 1), (S3, 0), (D5, 2), (MAX, 0), (D3, 1), (D3, 1), (D5, 3)],
    ),
    "DARTS_V2": (
        [(S3, 0), (S3, 1), (S3, 0), (S3, 1), (S3, 1), (SKIP, 0), (SKIP, 0), (D3, 2)],
        [(MAX, 0), (MAX, 1), (SKIP, 2), (MAX, 1), (MAX, 0), (SKIP, 2), (SKIP, 2), (MAX, 1)],
    ),
    "DARTS_V1": (
        [(S3, 1), (S3, 0), (SKIP, 0), (S3, 1), (SKIP, 0), (S3, 1), (S3, 0), (SKIP, 2)],
        [(MAX, 0), (MAX, 1), (SKIP, 2), (MAX, 0), (MAX, 0), (SKIP, 2), (SKIP, 2), (AVG, 0)],
    ),
}


def pdarts() -> Genotype:
    return ZOO["PDARTS"]()


def with_normal(genotype: Genotype, k: int, pair: tuple[str, int]) -> Genotype:
    normal = list(genotype.normal)
    normal[k] = pair
    return Genotype(tuple(normal), genotype.normal_concat, genotype.reduce, genotype.reduce_concat)


def one_line(exc: pytest.ExceptionInfo[ArtifactError]) -> str:
    message = str(exc.value)
    assert message
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# the zoo


def test_zoo_holds_the_three_published_genotypes() -> None:
    assert set(ZOO) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_matches_algorithm_md(name: str) -> None:
    genotype = ZOO[name]()
    normal, reduce = PUBLISHED[name]
    assert list(genotype.normal) == normal
    assert list(genotype.reduce) == reduce
    assert genotype.normal_concat == (2, 3, 4, 5)
    assert genotype.reduce_concat == (2, 3, 4, 5)
    assert genotype.steps == 4
    assert genotype.meta["source"]  # provenance travels with the genotype


@pytest.mark.parametrize(
    ("name", "op", "normal", "reduce"),
    [
        ("PDARTS", SKIP, 2, 0),
        ("DARTS_V2", SKIP, 2, 3),
        ("DARTS_V1", SKIP, 3, 3),
        ("PDARTS", S3, 4, 1),
        ("DARTS_V2", MAX, 0, 5),
        ("PDARTS", "conv_7x7", 0, 0),
    ],
)
def test_count(name: str, op: str, normal: int, reduce: int) -> None:
    genotype = ZOO[name]()
    assert genotype.count(op) == normal  # the normal cell by default
    assert genotype.count(op, "normal") == normal
    assert genotype.count(op, "reduce") == reduce


# ---------------------------------------------------------------------------------------------
# JSON round trip


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_dict_round_trip(name: str) -> None:
    genotype = ZOO[name]()
    data = genotype.to_dict()
    assert data["format"] == GENOTYPE_FORMAT == "pdarts-genotype/1"
    assert data["normal"][0] == list(genotype.normal[0])
    back = genotype_from_dict(json.loads(json.dumps(data)), known_ops=KNOWN_OPS)
    assert back == genotype
    assert back.meta == genotype.meta


def test_file_round_trip_keeps_meta(tmp_path: Path) -> None:
    meta = {"source": "runs/a/final.arch.json", "max_skip": 2, "nested": {"seed": [1, 2]}}
    genotype = Genotype(
        (("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 0)),
        (3, 2),  # not a range: written and read back as the list it is, in its order
        (("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("none", 2), ("dil_conv_3x3", 1)),
        (2, 3),
        meta=meta,
    )
    path = tmp_path / "genotype.json"
    write_genotype(genotype, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    data = json.loads(text)
    assert data["format"] == GENOTYPE_FORMAT
    assert data["meta"] == meta
    assert data["normal_concat"] == [3, 2]

    back = read_genotype_file(path, known_ops=KNOWN_OPS)
    assert back == genotype
    assert dict(back.meta) == meta
    assert back.steps == 2


def test_empty_meta_is_not_written() -> None:
    genotype = Genotype(pdarts().normal, (2, 3, 4, 5), pdarts().reduce, (2, 3, 4, 5))
    assert "meta" not in genotype.to_dict()


def test_meta_does_not_take_part_in_equality() -> None:
    a = pdarts()
    b = Genotype(a.normal, a.normal_concat, a.reduce, a.reduce_concat, meta={"other": 1})
    assert a == b


def test_format_key_is_optional() -> None:
    data = pdarts().to_dict()
    del data["format"]
    assert genotype_from_dict(data) == pdarts()


# ---------------------------------------------------------------------------------------------
# validation: every mistake is an ArtifactError of one line that names the field


def _changed(**changes: Any) -> dict[str, Any]:
    data = pdarts().to_dict()
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


def _normal(k: int, pair: Any) -> dict[str, Any]:
    data = pdarts().to_dict()
    data["normal"][k] = pair
    return data


EIGHT = [[S3, 0], [S3, 1], [S3, 0], [S3, 1], [S3, 0], [S3, 1], [S3, 0], [S3, 1]]

INVALID: list[tuple[str, Any, str]] = [
    ("wrong-format", _changed(format="pdarts-genotype/2"), "format must be 'pdarts-genotype/1'"),
    ("missing-normal", _changed(normal=None), "missing field 'normal'"),
    ("missing-reduce-concat", _changed(reduce_concat=None), "missing field 'reduce_concat'"),
    ("unknown-field", _changed(normal_concatt=[2, 3]), "unknown field 'normal_concatt'"),
    ("meta-not-an-object", _changed(meta=[1, 2]), "meta must be an object"),
    # node 0 takes inputs 0..1; entry 1 is node 0's second input
    ("node0-input-2", _normal(1, [S3, 2]), "normal.1: node 0 takes inputs 0..1, got input 2"),
    # node 3 (entries 6, 7) takes inputs 0..4: c_{k-2}, c_{k-1} and nodes 0, 1, 2
    ("node3-input-5", _normal(7, [S3, 5]), "normal.7: node 3 takes inputs 0..4, got input 5"),
    ("negative-input", _normal(0, [S3, -1]), "node 0 takes inputs 0..1, got input -1"),
    ("bool-index", _normal(0, [S3, True]), "normal.0: expected [op name, input index]"),
    ("string-index", _normal(2, [S3, "1"]), "normal.2: expected [op name, input index]"),
    ("float-index", _normal(2, [S3, 1.0]), "normal.2: expected [op name, input index]"),
    ("op-not-a-string", _normal(3, [3, 1]), "normal.3: expected [op name, input index]"),
    ("pair-of-three", _normal(4, [S3, 1, 0]), "normal.4: expected [op name, input index]"),
    ("pair-is-a-string", _normal(5, "sep_conv_3x3"), "normal.5: expected [op name, input index]"),
    (
        "odd-number-of-ops",
        _changed(normal=EIGHT[:7], reduce=EIGHT[:7]),
        "every node takes 2 inputs, got 7 ops",
    ),
    ("empty-cell", _changed(reduce=[]), "reduce: expected a list of [op, input] pairs"),
    ("cell-not-a-list", _changed(reduce="none"), "reduce: expected a list of [op, input] pairs"),
    (
        "normal-and-reduce-differ-in-length",
        _changed(normal=EIGHT, reduce=EIGHT[:6]),
        "normal and reduce cells must have the same number of nodes",
    ),
    ("concat-out-of-range", _changed(normal_concat=[2, 3, 4, 6]), "in [2, 3, 4, 5]"),
    ("concat-an-input", _changed(reduce_concat=[1, 2]), "in [2, 3, 4, 5]"),
    ("concat-duplicated", _changed(normal_concat=[2, 3, 3]), "nodes must be distinct"),
    ("concat-empty", _changed(normal_concat=[]), "non-empty list of node indices"),
    ("concat-bool", _changed(normal_concat=[True, 3]), "node indices must be integers"),
    ("concat-string", _changed(reduce_concat=["2"]), "node indices must be integers"),
    ("concat-not-a-list", _changed(reduce_concat=5), "non-empty list of node indices"),
    ("json-list", [1, 2], "expected a JSON object"),
    ("json-string", "Genotype(normal=[])", "expected a JSON object"),
    ("json-number", 3, "expected a JSON object"),
    ("json-null", None, "expected a JSON object"),
]


@pytest.mark.parametrize(("data", "message"), [pytest.param(d, m, id=n) for n, d, m in INVALID])
def test_invalid_genotype_is_one_line(data: Any, message: str) -> None:
    with pytest.raises(ArtifactError) as exc:
        genotype_from_dict(data, source="g.json", known_ops=KNOWN_OPS)
    text = one_line(exc)
    assert text.startswith("g.json: ")
    assert message in text


@pytest.mark.parametrize(("data", "message"), [pytest.param(d, m, id=n) for n, d, m in INVALID])
def test_invalid_genotype_file_is_refused(tmp_path: Path, data: Any, message: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ArtifactError) as exc:
        read_genotype_file(path, known_ops=KNOWN_OPS)
    text = one_line(exc)
    assert text.startswith(f"{path}: ")
    assert message in text


def test_the_last_input_of_node3_is_node2() -> None:
    data = _normal(7, [S3, 4])  # input 4 = intermediate node 2, node 3's last predecessor
    assert genotype_from_dict(data).normal[7] == (S3, 4)


def test_unknown_op_lists_the_known_ops() -> None:
    with pytest.raises(ArtifactError) as exc:
        genotype_from_dict(_normal(2, ["conv_7x7", 0]), known_ops=KNOWN_OPS)
    text = one_line(exc)
    assert "normal.2: unknown op 'conv_7x7'; known ops: " in text
    assert all(op in text for op in KNOWN_OPS)


def test_ops_are_checked_against_the_registry_by_default() -> None:
    with pytest.raises(ArtifactError) as exc:
        genotype_from_dict(_normal(2, [WARP, 0]), source="g.json")
    assert one_line(exc) == (
        f"g.json: normal.2: unknown op {WARP!r}, which no installed package registers; "
        f"known ops: {', '.join(known_op_names())}"
    )


def test_given_known_ops_replace_the_registry() -> None:
    genotype = genotype_from_dict(_normal(2, [WARP, 0]), known_ops=[*KNOWN_OPS, WARP])
    assert genotype.normal[2] == (WARP, 0)
    with pytest.raises(
        ArtifactError,
        match=re.escape("normal.0: unknown op 'skip_connect'; known ops: sep_conv_3x3"),
    ):
        genotype_from_dict(pdarts().to_dict(), known_ops=[S3])


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read") as exc:
        read_genotype_file(tmp_path / "absent.json")
    one_line(exc)


# ---------------------------------------------------------------------------------------------
# the DARTS syntax, as data


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_darts_syntax_round_trip(name: str) -> None:
    genotype = ZOO[name]()
    text = genotype.to_darts()
    assert text.startswith("Genotype(normal=[(")
    assert "normal_concat=range(2, 6)" in text
    assert parse_darts(text, known_ops=KNOWN_OPS) == genotype


def test_darts_syntax_of_a_non_range_concat() -> None:
    genotype = Genotype(pdarts().normal, (5, 2), pdarts().reduce, (2, 4, 5))
    text = genotype.to_darts()
    assert "normal_concat=[5, 2]" in text
    assert "reduce_concat=[2, 4, 5]" in text
    assert parse_darts(text) == genotype


# As the P-DARTS repository's genotypes.py writes it (its PDARTS entry), over several lines,
# with range(2, 6) for one concat and a list for the other
PDARTS_REPO_STYLE = """
Genotype(
    normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1),
            ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)],
    normal_concat=range(2, 6),
    reduce=[("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)],
    reduce_concat=[2, 3, 4, 5],
)
"""


def test_the_pdarts_repository_style_parses() -> None:
    assert parse_darts(PDARTS_REPO_STYLE, known_ops=KNOWN_OPS) == pdarts()


def test_tuples_and_lists_are_both_accepted() -> None:
    text = pdarts().to_darts().replace("normal_concat=range(2, 6)", "normal_concat=(2, 3, 4, 5)")
    assert parse_darts(text) == pdarts()


def _darts(**fields: str) -> str:
    """The PDARTS genotype in DARTS syntax with some fields' source text replaced."""
    g = pdarts()
    parts = {
        "normal": repr([tuple(p) for p in g.normal]),
        "normal_concat": "range(2, 6)",
        "reduce": repr([tuple(p) for p in g.reduce]),
        "reduce_concat": "[2, 3, 4, 5]",
    }
    parts.update(fields)
    return "Genotype(" + ", ".join(f"{k}={v}" for k, v in parts.items()) + ")"


SENTINEL = "PDARTS_TEST_SENTINEL"  # replaced by a path in tmp_path: must never be created

REFUSED: list[tuple[str, str, str]] = [
    ("import-system", f"__import__('os').system('touch {SENTINEL}')", "expected Genotype("),
    (
        "import-in-a-field",
        _darts(normal=f"__import__('os').system('touch {SENTINEL}')"),
        "only lists, tuples, strings, integers and range(a, b)",
    ),
    ("open-in-a-field", _darts(reduce=f"[(open('{SENTINEL}', 'w'), 0)]"), "only lists"),
    ("attribute-access", _darts(normal="genotypes.PDARTS.normal"), "only lists"),
    ("attribute-call-name", "os.Genotype(normal=[])", "expected Genotype("),
    ("attribute-of-result", _darts() + ".normal", "expected Genotype("),
    ("lambda", _darts(normal_concat="lambda: range(2, 6)"), "only lists"),
    ("lambda-called", _darts(normal=f"(lambda: open('{SENTINEL}', 'w'))()"), "only lists"),
    ("f-string", _darts(normal=f"[(f\"{{open('{SENTINEL}', 'w')}}\", 0)]"), "only lists"),
    ("range-star", _darts(normal_concat="range(*x)"), "only lists"),
    ("range-star-literal", _darts(normal_concat="range(*[2, 6])"), "only lists"),
    ("range-keyword", _darts(normal_concat="range(2, stop=6)"), "only lists"),
    ("range-three-args", _darts(normal_concat="range(2, 6, 1)"), "only lists"),
    ("range-arithmetic", _darts(normal_concat="range(2, 2 + 4)"), "only lists"),
    ("name", _darts(reduce_concat="concat"), "only lists"),
    ("subscript", _darts(reduce="cells[0]"), "only lists"),
    ("comprehension", _darts(normal="[(op, 0) for op in ops]"), "only lists"),
    ("dict", _darts(reduce_concat="{2: 3}"), "only lists"),
    ("unknown-keyword", _darts(payload="[1]"), "unknown field 'payload'"),
    ("positional-args", "Genotype([('skip_connect', 0)], range(2, 6))", "keyword arguments only"),
    ("double-star", "Genotype(**{'normal': []})", "** is not allowed"),
    ("double-star-name", "Genotype(normal=[], **kw)", "** is not allowed"),
    ("other-call-name", _darts().replace("Genotype(", "dict(", 1), "expected Genotype("),
    ("eval", f"eval(\"__import__('os').system('touch {SENTINEL}')\")", "expected Genotype("),
    ("statement", "import os", "not a genotype in DARTS syntax"),
    ("two-statements", _darts() + f"; open('{SENTINEL}', 'w')", "not a genotype in DARTS syntax"),
    ("syntax-error", "Genotype(normal=[", "not a genotype in DARTS syntax"),
    ("bare-list", "[('skip_connect', 0)]", "expected Genotype("),
]


@pytest.fixture
def no_code_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any call of eval or exec while a test runs (there must be none)."""
    calls: list[str] = []

    def forbidden(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            calls.append(name)

        return record

    monkeypatch.setattr(builtins, "eval", forbidden("eval"))
    monkeypatch.setattr(builtins, "exec", forbidden("exec"))
    return calls


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=n) for n, t, m in REFUSED])
def test_code_is_refused_and_never_run(
    tmp_path: Path, no_code_runs: list[str], text: str, message: str
) -> None:
    sentinel = tmp_path / "executed"
    text = text.replace(SENTINEL, str(sentinel))
    with pytest.raises(ArtifactError) as exc:
        parse_darts(text, source="genotype string", known_ops=KNOWN_OPS)
    assert message in one_line(exc)
    assert not sentinel.exists()
    assert no_code_runs == []


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=n) for n, t, m in REFUSED])
def test_code_is_refused_by_load_genotype(
    tmp_path: Path, no_code_runs: list[str], text: str, message: str
) -> None:
    sentinel = tmp_path / "executed"
    path = tmp_path / "genotype.txt"
    path.write_text(text.replace(SENTINEL, str(sentinel)), encoding="utf-8")
    with pytest.raises(ArtifactError) as exc:
        load_genotype(str(path))
    assert message in one_line(exc)
    assert not sentinel.exists()
    assert no_code_runs == []


# ---------------------------------------------------------------------------------------------
# load_genotype: a zoo name, a file, or a DARTS string


def test_load_a_zoo_name() -> None:
    for name in PUBLISHED:
        assert load_genotype(name) == ZOO[name]()


def test_load_a_json_file(tmp_path: Path) -> None:
    genotype = ZOO["DARTS_V1"]()
    path = tmp_path / "genotype.json"
    write_genotype(genotype, path)
    loaded = load_genotype(str(path))
    assert loaded == genotype
    assert loaded.meta == genotype.meta


def test_load_a_file_holding_a_darts_string(tmp_path: Path) -> None:
    path = tmp_path / "genotype.txt"
    path.write_text(PDARTS_REPO_STYLE, encoding="utf-8")
    assert load_genotype(str(path)) == pdarts()


def test_load_a_darts_string() -> None:
    assert load_genotype(ZOO["DARTS_V2"]().to_darts()) == ZOO["DARTS_V2"]()
    assert load_genotype("  \n" + pdarts().to_darts()) == pdarts()


def test_load_checks_op_names_against_the_registry(tmp_path: Path) -> None:
    assert set(KNOWN_OPS) <= set(known_op_names())
    bad = with_normal(pdarts(), 0, ("conv_7x7", 0))
    registered = "unknown op 'conv_7x7', which no installed package registers; known ops: "
    with pytest.raises(ArtifactError, match=registered) as exc:
        load_genotype(bad.to_darts())
    one_line(exc)
    path = tmp_path / "bad.json"
    write_genotype(bad, path)
    with pytest.raises(ArtifactError, match="unknown op 'conv_7x7'") as exc:
        load_genotype(str(path))
    one_line(exc)


@pytest.mark.parametrize(
    "spec",
    ["pdarts", "DARTS", "", "no/such/file.json", "{}", "normal=[('skip_connect', 0)]"],
)
def test_load_refuses_anything_else(spec: str) -> None:
    with pytest.raises(ArtifactError) as exc:
        load_genotype(spec)
    text = one_line(exc)
    assert "is not a genotype file, a run directory, a DARTS string or a zoo name" in text
    assert all(name in text for name in PUBLISHED)


def test_load_refuses_a_directory_without_a_genotype(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a run\n", encoding="utf-8")
    with pytest.raises(ArtifactError) as exc:
        load_genotype(str(tmp_path))
    assert one_line(exc) == f"{tmp_path} holds no genotype.json: is it a finished search?"


def test_load_refuses_a_file_that_is_neither_json_nor_darts(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(ArtifactError, match=re.escape(str(path))) as exc:
        load_genotype(str(path))
    one_line(exc)


def test_load_refuses_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "cell.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ArtifactError):
        load_genotype(str(path))


# ---------------------------------------------------------------------------------------------
# genotype_diff


def test_diff_of_a_genotype_with_itself_is_identical() -> None:
    diff = genotype_diff(pdarts(), ZOO["PDARTS"]())
    assert diff.identical
    assert diff.nodes == ()
    assert diff.concat == ()


def test_diff_shows_one_changed_op_in_its_cell_and_node() -> None:
    # normal entry 5 is node 2's second input: (sep_conv_3x3, 3) -> (sep_conv_5x5, 3)
    changed = with_normal(pdarts(), 5, (S5, 3))
    diff = genotype_diff(pdarts(), changed)
    assert not diff.identical
    assert diff.nodes == (NodeDifference("normal", 2, ((S3, 3),), ((S5, 3),)),)
    assert diff.concat == ()
    # and the other way round
    assert genotype_diff(changed, pdarts()).nodes == (
        NodeDifference("normal", 2, ((S5, 3),), ((S3, 3),)),
    )


def test_diff_shows_a_changed_input_in_the_reduction_cell() -> None:
    a = pdarts()
    reduce = list(a.reduce)
    reduce[7] = (D5, 4)  # node 3: (dil_conv_5x5, 3) -> (dil_conv_5x5, 4)
    b = Genotype(a.normal, a.normal_concat, tuple(reduce), a.reduce_concat)
    assert genotype_diff(a, b).nodes == (NodeDifference("reduce", 3, ((D5, 3),), ((D5, 4),)),)


def test_diff_ignores_the_order_of_a_nodes_two_inputs() -> None:
    a = pdarts()
    normal = list(a.normal)
    normal[0], normal[1] = normal[1], normal[0]
    normal[6], normal[7] = normal[7], normal[6]
    b = Genotype(tuple(normal), a.normal_concat, a.reduce, a.reduce_concat)
    assert genotype_diff(a, b).identical


def test_diff_counts_repeated_pairs() -> None:
    # node 0: two identical (skip_connect, 0) against one of them and a sep_conv_3x3
    a = with_normal(with_normal(pdarts(), 0, (SKIP, 0)), 1, (SKIP, 0))
    b = with_normal(with_normal(pdarts(), 0, (SKIP, 0)), 1, (S3, 1))
    assert genotype_diff(a, b).nodes == (NodeDifference("normal", 0, ((SKIP, 0),), ((S3, 1),)),)


def test_diff_reports_concat() -> None:
    a = pdarts()
    b = Genotype(a.normal, (2, 3, 5), a.reduce, a.reduce_concat)
    diff = genotype_diff(a, b)
    assert not diff.identical
    assert diff.nodes == ()
    assert diff.concat == (("normal", (2, 3, 4, 5), (2, 3, 5)),)
    c = Genotype(a.normal, a.normal_concat, a.reduce, (4, 5))
    assert genotype_diff(c, a).concat == (("reduce", (4, 5), (2, 3, 4, 5)),)


def test_diff_of_two_published_genotypes() -> None:
    diff = genotype_diff(pdarts(), ZOO["DARTS_V2"]())
    assert not diff.identical
    assert diff.concat == ()
    # PDARTS and DARTS_V2 share no node: every node of both cells differs
    assert [(d.cell_type, d.node) for d in diff.nodes] == [
        (cell, node) for cell in ("normal", "reduce") for node in range(4)
    ]
    assert diff.nodes[0] == NodeDifference("normal", 0, ((SKIP, 0), (D3, 1)), ((S3, 0), (S3, 1)))
    # normal node 2: PDARTS (sep3, 1), (sep3, 3); DARTS_V2 (sep3, 1), (skip, 0): one shared
    assert diff.nodes[2] == NodeDifference("normal", 2, ((S3, 3),), ((SKIP, 0),))


def test_a_huge_range_is_refused_before_it_is_expanded() -> None:
    text = (
        ZOO["PDARTS"]()
        .to_darts()
        .replace("normal_concat=range(2, 6)", "normal_concat=range(0, 10**12)")
    )
    with pytest.raises(ArtifactError, match="only lists, tuples"):
        parse_darts(text)


def test_a_broken_json_file_is_reported_as_json(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text('{"normal": [')
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        read_genotype_file(path)


# ---------------------------------------------------------------------------------------------
# a run directory stands for its genotype.json (the refined genotype of a search)


REFINED = Genotype(
    ZOO["DARTS_V1"]().normal,
    (2, 3, 4, 5),
    ZOO["DARTS_V1"]().reduce,
    (2, 3, 4, 5),
    meta={"source": "final.arch.json", "max_skip": 2},
)


@pytest.fixture
def search_run(tmp_path: Path) -> Path:
    """What a finished search leaves that matters here: run.json and both genotypes."""
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_FILE).write_text(json.dumps({"format": "pdarts-run/1"}), encoding="utf-8")
    write_genotype(REFINED, run / GENOTYPE_FILE)
    write_genotype(pdarts(), run / UNREFINED_GENOTYPE_FILE)
    return run


def test_load_a_search_run_directory(search_run: Path) -> None:
    loaded = load_genotype(str(search_run))
    assert loaded == REFINED != pdarts()  # genotype.json, not genotype-unrefined.json
    assert dict(loaded.meta) == dict(REFINED.meta)


def test_an_unfinished_search_is_one_line(search_run: Path) -> None:
    (search_run / GENOTYPE_FILE).unlink()
    with pytest.raises(ArtifactError) as exc:
        load_genotype(str(search_run))
    assert one_line(exc) == f"{search_run} holds no genotype.json: is it a finished search?"


def test_cli_show_a_run_directory(search_run: Path) -> None:
    result = runner.invoke(app, ["genotype", "show", str(search_run)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert REFINED.to_darts() in result.output
    assert pdarts().to_darts() not in result.output


def test_cli_diff_a_run_directory_with_its_file(search_run: Path) -> None:
    spec = str(search_run / GENOTYPE_FILE)
    result = runner.invoke(app, ["genotype", "diff", str(search_run), spec], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "identical"


def test_cli_help_names_run_directories() -> None:
    for command in ("show", "plot", "diff"):
        result = runner.invoke(app, ["genotype", command, "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        assert "RUN_DIR" in result.output
        assert "run directory (its genotype.json)" in result.output


# ---------------------------------------------------------------------------------------------
# an op no installed package registers is refused by every command that reads a genotype


def warp_genotype() -> Genotype:
    return with_normal(pdarts(), 3, (WARP, 1))  # normal node 1, its second input


def names_warp_drive(line: str) -> bool:
    """The line names the op, says why it is refused, and lists every registered op."""
    registered = f"unknown op {WARP!r}, which no installed package registers; known ops: "
    return registered + ", ".join(known_op_names()) in line


def warp_specs(tmp_path: Path) -> dict[str, str]:
    """The same genotype as a JSON file, a file in DARTS syntax and a DARTS string."""
    json_file, darts_file = tmp_path / "warp.json", tmp_path / "warp.txt"
    write_genotype(warp_genotype(), json_file)
    darts_file.write_text(warp_genotype().to_darts() + "\n", encoding="utf-8")
    return {
        "json": str(json_file),
        "darts-file": str(darts_file),
        "string": warp_genotype().to_darts(),
    }


SPEC_KINDS = ["json", "darts-file", "string"]


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_load_refuses_an_unregistered_op(tmp_path: Path, kind: str) -> None:
    spec = warp_specs(tmp_path)[kind]
    with pytest.raises(ArtifactError) as exc:
        load_genotype(spec)
    text = one_line(exc)
    assert text.startswith("genotype string: " if kind == "string" else f"{spec}: ")
    assert "normal.3: " in text
    assert names_warp_drive(text)


def test_readers_refuse_an_unregistered_op_by_default(tmp_path: Path) -> None:
    specs = warp_specs(tmp_path)
    for read in (
        lambda: genotype_from_dict(warp_genotype().to_dict()),
        lambda: parse_darts(warp_genotype().to_darts()),
        lambda: read_genotype_file(Path(specs["json"])),
        lambda: read_genotype_file(Path(specs["darts-file"])),
    ):
        with pytest.raises(ArtifactError) as exc:
            read()
        assert names_warp_drive(one_line(exc))


def test_a_run_directory_with_an_unregistered_op_is_refused(search_run: Path) -> None:
    write_genotype(warp_genotype(), search_run / GENOTYPE_FILE)
    with pytest.raises(ArtifactError) as exc:
        load_genotype(str(search_run))
    text = one_line(exc)
    assert text.startswith(f"{search_run / GENOTYPE_FILE}: normal.3: ")
    assert names_warp_drive(text)


def cli_commands(spec: str, out: Path) -> dict[str, list[str]]:
    return {
        "show": ["genotype", "show", spec],
        "plot": ["genotype", "plot", spec, "--out", str(out)],
        "diff-a": ["genotype", "diff", spec, "PDARTS"],
        "diff-b": ["genotype", "diff", "PDARTS", spec],
        "train": ["train", spec, "--dataset", "digits", "--dry-run"],
    }


@pytest.mark.parametrize("command", ["show", "plot", "diff-a", "diff-b", "train"])
@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_cli_refuses_an_unregistered_op(tmp_path: Path, kind: str, command: str) -> None:
    spec = warp_specs(tmp_path)[kind]
    before = sorted(p.name for p in tmp_path.iterdir())
    args = cli_commands(spec, tmp_path / "cell.svg")[command]
    result = runner.invoke(app, args, env=WIDE)
    assert names_warp_drive(assert_one_error_line(result))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing drawn or written


def test_cli_evaluate_refuses_a_checkpoint_with_an_unregistered_op(tmp_path: Path) -> None:
    checkpoint = tmp_path / "best.safetensors"
    metadata = {"format": WEIGHTS_FORMAT, "genotype": warp_genotype().to_dict()}
    save_tensors(checkpoint, {"w": torch.zeros(1)}, metadata)
    result = runner.invoke(app, ["evaluate", str(checkpoint), "--dataset", "digits"], env=WIDE)
    line = assert_one_error_line(result)
    assert f"{checkpoint}: normal.3: " in line
    assert names_warp_drive(line)


def warp_drive(channels: int, stride: int, affine: bool) -> nn.Module:
    """Identity (a test's own op; used in normal cells only, where every stride is 1)."""
    assert stride == 1
    return nn.Identity()


@pytest.fixture
def registered_warp() -> Iterator[str]:
    op_registry().register(WARP, warp_drive)
    yield WARP
    op_registry().unregister(WARP)


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_a_registered_op_is_accepted(tmp_path: Path, registered_warp: str, kind: str) -> None:
    assert load_genotype(warp_specs(tmp_path)[kind]) == warp_genotype()


def test_cli_accepts_a_registered_op(tmp_path: Path, registered_warp: str) -> None:
    spec = warp_specs(tmp_path)["json"]
    result = runner.invoke(app, ["genotype", "show", spec], env=WIDE)
    assert result.exit_code == 0, result.output
    assert warp_genotype().to_darts() in result.output
    dry_run = ["train", spec, "-d", "digits", "-r", "quick", "--dry-run", "--json"]
    result = runner.invoke(app, dry_run, env=WIDE)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["parameters"] > 0


def test_cli_diff_and_show_number_nodes_as_darts_strings_do() -> None:
    """Nodes 2-5 and inputs 0-5 in both tables, the numbering of DARTS strings and concat."""
    diff = runner.invoke(app, ["genotype", "diff", "PDARTS", "DARTS_V2"], env=WIDE)
    assert diff.exit_code == 0, diff.output
    rows = [line for line in diff.output.splitlines() if "normal" in line]
    nodes = [line.split("│")[2].strip() for line in rows]
    assert nodes == ["2", "3", "4", "5"]
    assert "sep_conv_3x3(3)" in diff.output  # PDARTS node 4's input from node 3
    assert "0 = c_{k-2}, 1 = c_{k-1}" in diff.output
    show = runner.invoke(app, ["genotype", "show", "PDARTS"], env=WIDE)
    assert show.exit_code == 0, show.output
    assert "0 = c_{k-2}, 1 = c_{k-1}" in show.output
    node_four = [line for line in show.output.splitlines() if "│    4 │" in line]
    assert len(node_four) == 2  # normal and reduce

"""``refine`` and ``pdarts refine``: from a ``pdarts-arch/1`` file to genotype files with at
most M skip-connects in the normal cell.

The refinement rule itself is worked out by hand in test_derive.py; here the architecture is
built so that its answers are easy to see, and the tests check the files, their metadata, where
they go, and what the command prints. Edges are built from the probabilities we want
(alpha = log p), as in test_derive.py.

Edge numbering for steps = 4: node0 {inputs 0,1} -> edges 0,1; node1 {0,1,2} -> 2,3,4;
node2 {0..3} -> 5..8; node3 {0..4} -> 9..13.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from clihelpers import assert_one_error_line, lines
from typer.testing import CliRunner, Result

from pdarts_cli.arch import ArchWeights, EdgeWeights, arch_json, read_arch
from pdarts_cli.cli.app import app
from pdarts_cli.errors import ArtifactError, PdartsError
from pdarts_cli.genotype import Genotype, parse_darts, read_genotype_file
from pdarts_cli.refinement import parse_max_skip, refine
from pdarts_cli.registry import op_registry
from pdarts_cli.schedule import DARTS_OPS
from pdarts_cli.searching.derive import derive_genotype

STEPS = 4
EDGES = 14  # 2 + 3 + 4 + 5 edges for a 4-step cell
SKIP = "skip_connect"
WARP = "warp_drive"  # an op no installed package registers
REFINE_VECTORS = Path(__file__).resolve().parents[2] / "shared/vectors/refine-examples.json"
WIDE = {"COLUMNS": "200"}  # Rich and Typer wrap at the terminal width; keep lines whole

runner = CliRunner()


def edge(**probs: float) -> EdgeWeights:
    """An edge whose softmax is ``probs`` (op -> probability), its ops in canonical order."""
    ops = tuple(op for op in DARTS_OPS if op in probs)
    return EdgeWeights(ops, tuple(math.log(probs[op]) for op in ops))


# Filler: chooses sep_conv_3x3 with strength 0.6; identical everywhere, so fillers tie.
FILL = edge(none=0.1, sep_conv_3x3=0.6, dil_conv_3x3=0.3)
# Skip edges stronger than the filler, so their node keeps them; each has a non-skip fallback.
SKIP_EDGES = {
    0: edge(none=0.1, skip_connect=0.7, sep_conv_3x3=0.2),  # node0
    1: edge(none=0.1, skip_connect=0.8, dil_conv_3x3=0.1),  # node0
    3: edge(none=0.1, skip_connect=0.75, sep_conv_5x5=0.15),  # node1, beats fillers 2 and 4
    13: edge(none=0.05, skip_connect=0.9, sep_conv_5x5=0.05),  # node3
}
NORMAL_SKIPS = len(SKIP_EDGES)  # the plain derivation keeps all four
REDUCE_SKIPS = 2  # edges 0 and 1 of the reduction cell


def cell(changes: Mapping[int, EdgeWeights]) -> tuple[EdgeWeights, ...]:
    return tuple(changes.get(e, FILL) for e in range(EDGES))


ARCH = ArchWeights(
    STEPS,
    cell(SKIP_EDGES),
    cell({e: SKIP_EDGES[e] for e in (0, 1)}),
    extra={"stage": 3, "dataset": "cifar10"},
)


def write_arch(path: Path, arch: ArchWeights = ARCH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(arch_json(arch), encoding="utf-8")
    return path


@pytest.fixture
def arch_file(tmp_path: Path) -> Path:
    return write_arch(tmp_path / "stage-3.arch.json")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    write_arch(tmp_path / "run" / "final.arch.json")
    return tmp_path / "run"


def cells(genotype: Genotype) -> tuple[Any, ...]:
    return genotype.normal, genotype.normal_concat, genotype.reduce, genotype.reduce_concat


def test_the_architecture_has_four_skip_connects() -> None:
    plain = derive_genotype(ARCH)
    assert plain.count(SKIP) == NORMAL_SKIPS
    assert plain.count(SKIP, "reduce") == REDUCE_SKIPS


# ---------------------------------------------------------------------------------------------
# --max-skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", [2]),
        ("0", [0]),
        ("0-4", [0, 1, 2, 3, 4]),
        (" 1 - 3 ", [1, 2, 3]),
        ("3-3", [3]),
        ("10", [10]),
    ],
)
def test_parse_max_skip(text: str, expected: list[int]) -> None:
    assert parse_max_skip(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4-2", "empty: 2 < 4"),
        ("-1", "a count >= 0 or a range such as 0-4, got '-1'"),
        ("x", "got 'x'"),
        ("", "got ''"),
        ("2.5", "got '2.5'"),
        ("1-", "got '1-'"),
        ("1-2-3", "got '1-2-3'"),
        ("1,2", "got '1,2'"),
    ],
)
def test_parse_max_skip_refuses(text: str, message: str) -> None:
    with pytest.raises(PdartsError) as exc:
        parse_max_skip(text)
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith("--max-skip")
    assert message in str(exc.value)


# ---------------------------------------------------------------------------------------------
# refine(): where the files go and what they hold


def test_refine_writes_beside_an_arch_file(arch_file: Path) -> None:
    (result,) = refine(arch_file, [2])
    target = arch_file.parent / "genotype-m2.json"
    assert result.max_skip == 2
    assert result.path == target
    assert {p.name for p in arch_file.parent.iterdir()} == {arch_file.name, target.name}

    written = read_genotype_file(target)
    assert written == result.genotype
    assert cells(written) == cells(derive_genotype(read_arch(arch_file), max_skip=2))
    assert written.count(SKIP) == 2
    assert dict(written.meta) == {"source": str(arch_file), "max_skip": 2}


def test_refine_a_run_directory_writes_inside_it(run_dir: Path) -> None:
    results = refine(run_dir, list(range(9)))
    names = {f"genotype-m{m}.json" for m in range(9)}
    assert {p.name for p in run_dir.iterdir()} == {"final.arch.json", *names}
    assert [r.max_skip for r in results] == list(range(9))

    reduce = derive_genotype(ARCH).reduce
    for m, result in enumerate(results):
        assert result.path == run_dir / f"genotype-m{m}.json"
        written = read_genotype_file(result.path)
        assert written == result.genotype
        # every fallback op is not a skip-connect: each removal takes exactly one away
        assert written.count(SKIP) == min(m, NORMAL_SKIPS) <= m
        assert written.reduce == reduce  # the reduction cell is never refined
        assert written.count(SKIP, "reduce") == REDUCE_SKIPS
        assert dict(written.meta) == {"source": str(run_dir / "final.arch.json"), "max_skip": m}


def test_without_max_skip_nothing_is_written(arch_file: Path) -> None:
    (result,) = refine(arch_file, None)
    assert result.max_skip is None
    assert result.path is None
    assert cells(result.genotype) == cells(derive_genotype(ARCH))
    assert result.genotype.count(SKIP) == NORMAL_SKIPS
    assert dict(result.genotype.meta) == {"source": str(arch_file), "max_skip": None}
    assert [p.name for p in arch_file.parent.iterdir()] == [arch_file.name]


def test_output_writes_the_plain_derivation(arch_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "plain.json"
    out.parent.mkdir()
    (result,) = refine(arch_file, None, out)
    assert result.path == out
    assert read_genotype_file(out) == derive_genotype(ARCH)


def test_output_names_the_file_for_one_m(arch_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "m1.json"
    (result,) = refine(arch_file, [1], out)
    assert result.path == out
    assert read_genotype_file(out).count(SKIP) == 1
    assert not (arch_file.parent / "genotype-m1.json").exists()


def test_output_with_a_range_is_refused(arch_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PdartsError, match="--output names one file") as exc:
        refine(arch_file, [0, 1, 2], tmp_path / "out.json")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [arch_file.name]


def test_output_in_a_missing_folder_is_one_line(arch_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PdartsError, match="cannot write") as exc:
        refine(arch_file, [2], tmp_path / "no" / "such" / "g.json")
    assert "\n" not in str(exc.value)


def test_a_folder_without_final_arch_is_refused(tmp_path: Path) -> None:
    write_arch(tmp_path / "stage-1.arch.json")
    with pytest.raises(ArtifactError, match=r"holds no final\.arch\.json") as exc:
        refine(tmp_path, [2])
    assert "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage-1.arch.json"]


def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist") as exc:
        refine(tmp_path / "absent.arch.json", [2])
    assert "\n" not in str(exc.value)


def _arch_dict(**changes: Any) -> dict[str, Any]:
    data = ARCH.to_dict()
    data.update(changes)
    return data


def _edge_changed(cell_type: str, index: int, value: Any) -> dict[str, Any]:
    data = ARCH.to_dict()
    data["cells"][cell_type][index] = value
    return data


def _edges_dropped() -> dict[str, Any]:
    data = ARCH.to_dict()
    data["cells"]["normal"] = data["cells"]["normal"][:13]
    return data


MALFORMED: list[tuple[str, str, str]] = [
    ("bad-json", '{"format": "pdarts-arch/1", "steps": 4,', "is not valid JSON"),
    ("empty-file", "", "is not valid JSON"),
    ("json-list", "[]", "expected a JSON object"),
    (
        "wrong-format",
        json.dumps(_arch_dict(format="pdarts-arch/2")),
        "format must be 'pdarts-arch/1', got 'pdarts-arch/2'",
    ),
    ("genotype-file", json.dumps({"format": "pdarts-genotype/1"}), "format must be"),
    ("steps-zero", json.dumps(_arch_dict(steps=0)), "steps must be a positive integer"),
    ("edge-count", json.dumps(_edges_dropped()), "cells.normal must list 14 edges for 4 steps"),
    (
        "alpha-length",
        json.dumps(_edge_changed("reduce", 5, {"ops": ["none", "skip_connect"], "alpha": [0.1]})),
        "cells.reduce.5.alpha: expected 2 numbers, one per op",
    ),
    (
        "alpha-not-numbers",
        json.dumps(_edge_changed("normal", 2, {"ops": ["none"], "alpha": ["0.1"]})),
        "cells.normal.2.alpha",
    ),
    (
        "edge-extra-key",
        json.dumps(_edge_changed("normal", 0, {"ops": ["none"], "alpha": [0.0], "beta": 1})),
        "cells.normal.0: expected an object with 'ops' and 'alpha'",
    ),
    (
        "op-listed-twice",
        json.dumps(_edge_changed("normal", 4, {"ops": ["none", "none"], "alpha": [0.0, 1.0]})),
        "cells.normal.4.ops: an op is listed twice",
    ),
]


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=n) for n, t, m in MALFORMED])
def test_a_malformed_arch_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "final.arch.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArtifactError) as exc:
        refine(tmp_path, [0, 1, 2])
    assert "\n" not in str(exc.value)
    assert str(path) in str(exc.value)
    assert message in str(exc.value)
    assert [p.name for p in tmp_path.iterdir()] == ["final.arch.json"]  # nothing written


def test_a_binary_arch_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "final.arch.json"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ArtifactError):
        refine(path, [2])


# ---------------------------------------------------------------------------------------------
# pdarts refine


def darts_lines(result: Result) -> list[Genotype]:
    return [parse_darts(line) for line in lines(result) if line.startswith("Genotype(")]


def test_cli_refine_prints_and_writes(run_dir: Path) -> None:
    result = runner.invoke(app, ["refine", str(run_dir), "--max-skip", "2"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    written = read_genotype_file(run_dir / "genotype-m2.json")
    assert "M = 2: skip-connects normal 2, reduce 2" in result.output
    assert written.to_darts() in result.output
    assert darts_lines(result) == [written]


def test_cli_refine_a_range_writes_one_file_per_m(arch_file: Path) -> None:
    result = runner.invoke(app, ["refine", str(arch_file), "-m", "0-3"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in arch_file.parent.glob("genotype-m*.json")) == [
        f"genotype-m{m}.json" for m in range(4)
    ]
    for m in range(4):
        assert f"M = {m}: skip-connects normal {m}, reduce 2" in result.output
    assert len(darts_lines(result)) == 4


def test_cli_refine_alone_prints_the_plain_derivation(run_dir: Path) -> None:
    result = runner.invoke(app, ["refine", str(run_dir)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert f"plain derivation: skip-connects normal {NORMAL_SKIPS}, reduce 2" in result.output
    assert darts_lines(result) == [derive_genotype(ARCH)]
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


def test_cli_refine_output(arch_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "chosen.json"
    result = runner.invoke(app, ["refine", str(arch_file), "-m", "1", "-o", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert read_genotype_file(out).count(SKIP) == 1


def test_cli_refine_help_says_at_most() -> None:
    result = runner.invoke(app, ["refine", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    # Typer's Rich help draws boxes and wraps: keep the words only
    text = " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split()).lower()
    assert "at most m skip-connects in the normal cell" in text
    assert "exactly m" in text  # and it names the paper's wording it departs from
    assert "reduction cell is never refined" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-skip=-1"], "--max-skip takes a count >= 0"),
        (["--max-skip", "4-2"], "is empty"),
        (["--max-skip", "two"], "got 'two'"),
        (["--max-skip", "0-2", "--output", "one.json"], "--output names one file"),
    ],
)
def test_cli_refine_bad_options_are_one_line(run_dir: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["refine", str(run_dir), *args], env=WIDE)
    assert message in assert_one_error_line(result)
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=n) for n, t, m in MALFORMED])
def test_cli_refine_malformed_arch_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "final.arch.json"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["refine", str(path), "--max-skip", "2"], env=WIDE)
    assert message in assert_one_error_line(result)


def test_cli_refine_missing_source_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["refine", str(tmp_path / "nope"), "-m", "2"], env=WIDE)
    assert "does not exist" in assert_one_error_line(result)


def test_cli_refine_folder_without_final_arch_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["refine", str(tmp_path)], env=WIDE)
    assert "holds no final.arch.json" in assert_one_error_line(result)


# ---------------------------------------------------------------------------------------------
# reference vectors from the authors' functions (../shared/vectors/refine-examples.json)


@pytest.mark.skipif(not REFINE_VECTORS.exists(), reason=f"{REFINE_VECTORS} is absent")
def test_cli_refine_end_to_end_matches_the_reference(tmp_path: Path) -> None:
    case = json.loads(REFINE_VECTORS.read_text(encoding="utf-8"))[0]
    source = tmp_path / "stage-3.arch.json"
    source.write_text(json.dumps(case["arch"]), encoding="utf-8")
    result = runner.invoke(app, ["refine", str(source), "--max-skip", "0-8"], env=WIDE)
    assert result.exit_code == 0, result.output
    for m in range(9):
        written = json.loads((tmp_path / f"genotype-m{m}.json").read_text(encoding="utf-8"))
        expected = case["expected"][str(m)]
        for key in ("normal", "normal_concat", "reduce", "reduce_concat"):
            assert written[key] == expected[key], f"M={m} {key}"
        assert written["meta"] == {"source": str(source), "max_skip": m}


def test_max_skip_is_bounded() -> None:
    with pytest.raises(PdartsError, match="above 64"):
        parse_max_skip("0-20000000")


def test_non_finite_alphas_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.arch.json"
    edge = {"ops": ["none", "skip_connect"], "alpha": [0.0, float("nan")]}
    data = {
        "format": "pdarts-arch/1",
        "steps": 1,
        "cells": {"normal": [edge] * 2, "reduce": [edge] * 2},
    }
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="finite"):
        refine(path, [0])


# ---------------------------------------------------------------------------------------------
# an op no installed package registers: refused before anything is written

# normal edge 4 (node 1, input 2) with the unregistered op as its strongest candidate
WARP_EDGE = {
    "ops": ["none", "sep_conv_3x3", WARP],
    "alpha": [math.log(p) for p in (0.05, 0.05, 0.9)],
}


def write_warp_arch(path: Path) -> Path:
    path.write_text(json.dumps(_edge_changed("normal", 4, WARP_EDGE)), encoding="utf-8")
    return path


def warp_message(path: Path) -> str:
    known = ", ".join(op_registry().names())
    return (
        f"{path}: cells.normal.4.ops: unknown op {WARP!r}, which no installed package "
        f"registers; known ops: {known}"
    )


def test_an_unregistered_op_is_refused(tmp_path: Path) -> None:
    path = write_warp_arch(tmp_path / "stage-3.arch.json")
    with pytest.raises(ArtifactError) as exc:
        refine(path, [0, 1, 2])
    assert str(exc.value) == warp_message(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("args", [[], ["--max-skip", "2"], ["-m", "0-3"]])
def test_cli_refine_an_unregistered_op_is_one_line(tmp_path: Path, args: list[str]) -> None:
    path = write_warp_arch(tmp_path / "stage-3.arch.json")
    result = runner.invoke(app, ["refine", str(path), *args], env=WIDE)
    assert assert_one_error_line(result) == f"error: {warp_message(path)}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cli_refine_a_run_with_an_unregistered_op_is_one_line(run_dir: Path) -> None:
    write_warp_arch(run_dir / "final.arch.json")
    result = runner.invoke(app, ["refine", str(run_dir), "-m", "2"], env=WIDE)
    assert WARP in assert_one_error_line(result)
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


def warp_drive(channels: int, stride: int, affine: bool) -> Any:
    """A test's own op: refine only needs its name registered, never builds it."""
    raise AssertionError("refine must not build ops")


@pytest.fixture
def registered_warp() -> Iterator[str]:
    op_registry().register(WARP, warp_drive)
    yield WARP
    op_registry().unregister(WARP)


def test_a_registered_op_is_refined_like_any_other(tmp_path: Path, registered_warp: str) -> None:
    path = write_warp_arch(tmp_path / "stage-3.arch.json")
    (result,) = refine(path, [2])
    assert (WARP, 2) in result.genotype.normal  # edge 4 is node 1's input 2, and the strongest
    assert result.path is not None
    assert read_genotype_file(result.path) == result.genotype
    cli = runner.invoke(app, ["refine", str(path), "-m", "1"], env=WIDE)
    assert cli.exit_code == 0, cli.output
    assert read_genotype_file(tmp_path / "genotype-m1.json").count(WARP) == 1

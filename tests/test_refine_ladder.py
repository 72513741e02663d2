"""``pdarts refine --ladder`` and ``--max-params`` / ``--max-madds``: every M with its evaluation
network's size, counted as ``pdarts train --dry-run`` counts it, and the largest network within
a budget.

The architecture is test_refine.py's kind: four strong normal skip-connects, each with a
non-skip fallback, so M = 0..3 give four different genotypes and M = 4..8 one and the same.
Networks are sized with a tiny recipe file (a CIFAR network of 4 channels and 3 cells, no
auxiliary head) on cifar10's 32x32 images unless a test says otherwise; the budget rule is
checked with sizes a test makes up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clihelpers import assert_one_error_line, lines
from typer.testing import CliRunner, Result

from pdarts_cli.api import refine_ladder
from pdarts_cli.arch import ArchWeights, EdgeWeights, arch_json
from pdarts_cli.cli.app import app
from pdarts_cli.errors import PdartsError
from pdarts_cli.genotype import Genotype, genotype_from_dict, read_genotype_file
from pdarts_cli.refinement import LADDER_FORMAT, Budget, Ladder, build_ladder, parse_count
from pdarts_cli.schedule import DARTS_OPS
from pdarts_cli.searching.derive import derive_genotype

SKIP = "skip_connect"
WIDE = {"COLUMNS": "200"}  # Rich wraps at the terminal width; keep table rows whole
TINY_RECIPE = {"name": "tiny", "channels": 4, "layers": 3, "auxiliary_weight": 0}
runner = CliRunner()


def edge(**probs: float) -> EdgeWeights:
    """An edge whose softmax is ``probs`` (op -> probability)."""
    ops = tuple(op for op in DARTS_OPS if op in probs)
    return EdgeWeights(ops, tuple(math.log(probs[op]) for op in ops))


FILL = edge(none=0.1, sep_conv_3x3=0.6, dil_conv_3x3=0.3)
SKIP_EDGES = {
    0: edge(none=0.1, skip_connect=0.7, sep_conv_3x3=0.2),
    1: edge(none=0.1, skip_connect=0.8, dil_conv_3x3=0.1),
    3: edge(none=0.1, skip_connect=0.75, sep_conv_5x5=0.15),
    13: edge(none=0.05, skip_connect=0.9, sep_conv_5x5=0.05),
}


def arch_with(skip_edges: dict[int, EdgeWeights]) -> ArchWeights:
    normal = tuple(skip_edges.get(e, FILL) for e in range(14))
    return ArchWeights(4, normal, (FILL,) * 14, extra={"dataset": "cifar10"})


ARCH = arch_with(SKIP_EDGES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The path of the tiny recipe file."""
    path = tmp_path_factory.mktemp("recipe") / "tiny.recipe.json"
    path.write_text(json.dumps(TINY_RECIPE), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tiny_ladder(tmp_path_factory: pytest.TempPathFactory, tiny: str) -> Ladder:
    """ARCH's ladder with the tiny recipe, from the API, written nowhere (sized once)."""
    source = tmp_path_factory.mktemp("source") / "final.arch.json"
    source.write_text(arch_json(ARCH), encoding="utf-8")
    return refine_ladder(source, recipe=tiny)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "final.arch.json").write_text(arch_json(ARCH), encoding="utf-8")
    return tmp_path / "run"


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env=WIDE)


def read_ladder(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def dry_run_json(genotype_file: Path, *args: str) -> dict[str, Any]:
    result = invoke("train", str(genotype_file), "--dry-run", "--json", *args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def write_genotype(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# counts as people write them


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("3.5M", 3_500_000),
        ("600M", 600_000_000),
        ("1.2G", 1_200_000_000),
        ("3500000", 3_500_000),
        ("2500k", 2_500_000),
        (" 4.9 m ", 4_900_000),
        ("0.557G", 557_000_000),
        (".5K", 500),
    ],
)
def test_parse_count(text: str, count: int) -> None:
    assert parse_count(text, "--max-params") == count


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3.5X", "takes a count such as 3.5M, 600M, 1.2G or 3500000, got '3.5X'"),
        ("", "got ''"),
        ("-1M", "got '-1M'"),
        ("1e6", "got '1e6'"),
        ("3,500,000", "got '3,500,000'"),
        ("M", "got 'M'"),
        ("3.5", "'3.5' is not a whole number"),
        ("1.0000005M", "is not a whole number"),
        ("0", "must be positive, got '0'"),
        ("0.0G", "must be positive"),
    ],
)
def test_parse_count_refuses(text: str, message: str) -> None:
    with pytest.raises(PdartsError) as exc:
        parse_count(text, "--max-madds")
    assert str(exc.value).startswith("--max-madds")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_budget_needs_a_positive_limit() -> None:
    with pytest.raises(PdartsError, match="needs a parameter count"):
        Budget()
    with pytest.raises(PdartsError, match="must be positive"):
        Budget(parameters=100, multiply_adds=0)


# ---------------------------------------------------------------------------------------------
# the counts are pdarts train --dry-run's


def test_ladder_counts_equal_train_dry_run(run_dir: Path, tmp_path: Path, tiny: str) -> None:
    result = invoke("refine", str(run_dir), "--ladder", "--recipe", tiny)
    assert result.exit_code == 0, result.output
    ladder = read_ladder(run_dir / "ladder.json")
    rungs = ladder["ladder"]
    assert [r["max_skip"] for r in rungs] == list(range(9))
    assert [r["skip_connects"] for r in rungs] == [0, 1, 2, 3, 4, 4, 4, 4, 4]
    assert [r["same_as"] for r in rungs] == [None] * 5 + [4] * 4
    assert len({r["parameters"] for r in rungs}) == 5  # M = 0, 1, 2, 3 and 4..8: five networks
    for rung in rungs[:5]:
        file = write_genotype(rung["genotype"], tmp_path / f"m{rung['max_skip']}.json")
        report = dry_run_json(file, "--dataset", "cifar10", "--recipe", tiny)
        assert (rung["parameters"], rung["multiply_adds"]) == (
            report["parameters"],
            report["multiply_adds"],
        ), f"M = {rung['max_skip']}"
    # the table shows every count the file holds
    for rung in rungs:
        assert f"{rung['parameters']:,}" in result.output
        assert f"{rung['multiply_adds']:,}" in result.output


PAPER_SETTINGS = {
    "cifar": {
        "dataset": "cifar10",
        "recipe": "paper-cifar",
        "network": "cifar",
        "channels": 36,
        "layers": 20,
        "num_classes": 10,
        "image_size": 32,
        "auxiliary_head_counted": False,
    },
    "imagenet": {
        "dataset": "imagenet",
        "recipe": "paper-imagenet",
        "network": "imagenet",
        "channels": 48,
        "layers": 14,
        "num_classes": 1000,
        "image_size": 224,
        "auxiliary_head_counted": False,
    },
}


@pytest.mark.parametrize(
    ("flags", "setting"), [([], "cifar"), (["--dataset", "imagenet"], "imagenet")]
)
def test_the_paper_settings(tmp_path: Path, flags: list[str], setting: str) -> None:
    """The default (CIFAR) and the ImageNet setting, at the paper's size, compared with the
    text ``train --dry-run`` prints. No skip-connects: one network for every M."""
    source = tmp_path / "stage-3.arch.json"
    source.write_text(arch_json(arch_with({})), encoding="utf-8")
    result = invoke("refine", str(source), "--ladder", *flags)
    assert result.exit_code == 0, result.output
    ladder = read_ladder(tmp_path / "ladder.json")
    assert ladder["setting"] == PAPER_SETTINGS[setting]
    assert [r["same_as"] for r in ladder["ladder"]] == [None] + [0] * 8
    m0 = ladder["ladder"][0]
    file = write_genotype(m0["genotype"], tmp_path / "m0.json")
    dry = invoke("train", str(file), "--dry-run", *(flags or ["--dataset", "cifar10"]))
    assert dry.exit_code == 0, dry.output
    size = PAPER_SETTINGS[setting]["image_size"]
    (params_row,) = [line for line in lines(dry) if "auxiliary head excluded" in line]
    (madds_row,) = [line for line in lines(dry) if f"multiply-adds, one {size}x{size}" in line]
    assert f"{m0['parameters']:,}" in params_row
    assert f"{m0['multiply_adds']:,}" in madds_row
    assert 3_000_000 < m0["parameters"] < 7_000_000  # the paper's size of network


# ---------------------------------------------------------------------------------------------
# the largest network within a budget: the rule, with sizes made up per skip-connect count

# skip-connects -> (parameters, multiply-adds); one skip-connect has MORE multiply-adds than
# none, so a multiply-add budget ranks differently from a parameter budget
SIZES = {0: (1000, 9000), 1: (900, 9500), 2: (800, 7000), 3: (700, 6000), 4: (600, 5000)}


@dataclass(frozen=True)
class Size:
    parameters: int
    multiply_adds: int


def made_up_sizes(calls: list[Genotype]) -> Callable[[Genotype], Size]:
    def size_of(genotype: Genotype) -> Size:
        calls.append(genotype)
        return Size(*SIZES[genotype.count(SKIP)])

    return size_of


@pytest.mark.parametrize(
    ("budget", "chosen"),
    [
        (Budget(parameters=10**9), 0),  # everything fits: the largest network
        (Budget(parameters=850), 2),
        (Budget(parameters=800), 2),  # exactly at the limit fits
        (Budget(parameters=650), 4),  # M = 4..8 tie: the smallest M
        (Budget(parameters=600), 4),
        (Budget(multiply_adds=9500), 1),  # ranked by multiply-adds
        (Budget(multiply_adds=9200), 0),
        (Budget(parameters=950, multiply_adds=9200), 2),  # both must hold
    ],
)
def test_the_largest_network_within_the_budget(tmp_path: Path, budget: Budget, chosen: int) -> None:
    calls: list[Genotype] = []
    source = tmp_path / "a.arch.json"
    source.write_text(arch_json(ARCH), encoding="utf-8")
    ladder = build_ladder(source, made_up_sizes(calls), {}, budget)
    assert ladder.chosen is not None
    assert ladder.chosen.max_skip == chosen
    assert ladder.chosen.genotype == derive_genotype(ARCH, chosen)
    assert len(calls) == 5  # each distinct genotype sized once
    assert [p.name for p in tmp_path.iterdir()] == ["a.arch.json"]  # no output: nothing written


@pytest.mark.parametrize(
    ("budget", "limit"),
    [
        (Budget(parameters=599), "at most 599 parameters"),
        (Budget(multiply_adds=4999), "at most 4,999 multiply-adds"),
        (Budget(parameters=10**6, multiply_adds=1), "at most 1,000,000 parameters and 1 "),
    ],
)
def test_no_m_fits_names_the_smallest_network(run_dir: Path, budget: Budget, limit: str) -> None:
    with pytest.raises(PdartsError) as exc:
        build_ladder(run_dir, made_up_sizes([]), {}, budget, run_dir / "ladder.json")
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("no M from 0 to 8 fits the budget (")
    assert limit in message
    assert message.endswith(
        "the smallest network, M = 4, has 600 parameters and 5,000 multiply-adds"
    )
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


def test_the_ladder_file_is_not_the_chosen_genotype_file(run_dir: Path) -> None:
    out = run_dir / "genotype-m0.json"
    with pytest.raises(PdartsError, match="would both be") as exc:
        build_ladder(run_dir, made_up_sizes([]), {}, Budget(parameters=10**6), out)
    assert "\n" not in str(exc.value)
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


# ---------------------------------------------------------------------------------------------
# the file, the chosen genotype, the command


def test_the_ladder_file(run_dir: Path, tmp_path: Path, tiny: str) -> None:
    out = tmp_path / "sizes.json"
    ladder = refine_ladder(run_dir, recipe=tiny, max_madds=10**9, output=out)
    assert ladder.path == out
    assert ladder.genotype_path == tmp_path / "genotype-m0.json"  # beside the ladder
    data = read_ladder(out)
    assert set(data) == {"format", "source", "setting", "budget", "chosen", "ladder"}
    assert data["format"] == LADDER_FORMAT == "pdarts-ladder/1"
    assert data["source"] == str(run_dir / "final.arch.json")
    assert data["setting"]["recipe"] == "tiny"
    assert (data["setting"]["channels"], data["setting"]["layers"]) == (4, 3)
    assert data["budget"] == {"parameters": None, "multiply_adds": 10**9}
    assert data["chosen"] == 0
    for m, rung in enumerate(data["ladder"]):
        assert set(rung) == {
            "max_skip",
            "skip_connects",
            "parameters",
            "multiply_adds",
            "same_as",
            "genotype",
        }
        assert genotype_from_dict(rung["genotype"], "ladder") == derive_genotype(ARCH, m)
    chosen = read_genotype_file(tmp_path / "genotype-m0.json")
    assert chosen == derive_genotype(ARCH, 0)
    assert dict(chosen.meta) == {"source": str(run_dir / "final.arch.json"), "max_skip": 0}
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


def test_the_api_writes_nothing_without_output(tiny_ladder: Ladder) -> None:
    assert (tiny_ladder.path, tiny_ladder.budget, tiny_ladder.chosen) == (None, None, None)
    assert tiny_ladder.rungs[2].genotype == derive_genotype(ARCH, 2)
    assert [p.name for p in tiny_ladder.source.parent.iterdir()] == ["final.arch.json"]


def test_cli_budget_picks_marks_and_writes_the_chosen_genotype(
    run_dir: Path, tiny: str, tiny_ladder: Ladder
) -> None:
    sizes = tiny_ladder.rungs
    limit = str(sizes[2].parameters)  # exactly M = 2's network: M = 0 and 1 are larger
    assert sizes[1].parameters > sizes[2].parameters > sizes[3].parameters
    result = invoke("refine", str(run_dir), "--max-params", limit, "--recipe", tiny)
    assert result.exit_code == 0, result.output
    data = read_ladder(run_dir / "ladder.json")
    assert data["chosen"] == 2
    assert data["budget"] == {"parameters": int(limit), "multiply_adds": None}
    written = read_genotype_file(run_dir / "genotype-m2.json")
    assert written == derive_genotype(ARCH, 2)
    (marked,) = [line for line in lines(result) if "<- chosen" in line]
    assert marked.split()[1:3] == ["2", "│"]  # the M = 2 row
    assert f"at most {int(limit):,} parameters" in marked
    assert f"M = 2 -> {run_dir / 'genotype-m2.json'}" in result.output
    assert written.to_darts() in result.output


def test_cli_no_m_fits_is_one_line(tmp_path: Path, tiny: str) -> None:
    source = tmp_path / "final.arch.json"  # no skip-connects: one network for every M
    source.write_text(arch_json(arch_with({})), encoding="utf-8")
    result = invoke("refine", str(source), "--max-madds", "1k", "--recipe", tiny)
    line = assert_one_error_line(result)
    assert "no M from 0 to 8 fits the budget (at most 1,000 multiply-adds)" in line
    assert "the smallest network, M = 0, has " in line
    assert [p.name for p in tmp_path.iterdir()] == ["final.arch.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-params", "3.5X"], "--max-params takes a count such as 3.5M"),
        (["--max-madds", "0"], "--max-madds must be positive"),
        (["--ladder", "--max-skip", "2"], "the ladder covers every M from 0 to 8; drop --max-skip"),
        (["--dataset", "cifar10"], "--dataset and --recipe size the networks of the ladder"),
        (["-m", "2", "--recipe", "quick"], "add --ladder"),
        (["--ladder", "--recipe", "no-such-recipe"], "no-such-recipe"),
        (["--ladder", "--dataset", "digits"], "auxiliary head"),  # paper-cifar on 8x8 images
    ],
)
def test_cli_ladder_mistakes_are_one_line(run_dir: Path, args: list[str], message: str) -> None:
    result = invoke("refine", str(run_dir), *args)
    assert message in assert_one_error_line(result)
    assert [p.name for p in run_dir.iterdir()] == ["final.arch.json"]


def test_cli_ladder_of_a_missing_source_is_one_line(tmp_path: Path) -> None:
    result = invoke("refine", str(tmp_path / "absent.arch.json"), "--ladder")
    assert "does not exist" in assert_one_error_line(result)
    assert list(tmp_path.iterdir()) == []

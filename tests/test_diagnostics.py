"""Collapse diagnostics: per epoch, the genotype the alphas give, its skip-connects, the entropy
of each edge's op weights and the edges whose chosen op changed; a warning when the normal
cell holds more skip-connects than max_skip.

The pure parts run on hand-made alphas; one tiny search (one stage of 2 epochs, skip_connect
and avg_pool_3x3 only, max_skip 0) checks the lines, the console and the plot reader, and a
stage resumed mid-way reports what the unbroken stage did.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_schedule_dict
from rich.console import Console

from pdarts_cli.arch import ArchWeights, EdgeWeights, read_arch
from pdarts_cli.cli.progress import ConsoleObserver, diagnostics_line
from pdarts_cli.genotype import read_genotype_file
from pdarts_cli.plotting.metrics import METRICS_FILE, read_metrics
from pdarts_cli.plotting.search import DIAGNOSTIC_TITLES, search_figure
from pdarts_cli.schedule import Schedule, validate_schedule
from pdarts_cli.searching import SearchObserver, SearchOptions, resume_search, run_search
from pdarts_cli.searching.derive import derive_genotype
from pdarts_cli.searching.diagnostics import (
    changed_edges,
    chosen_ops,
    diagnose,
    edge_choice,
    edge_entropy,
    entropy_nats,
    skip_warning,
)
from pdarts_cli.searching.events import EpochMetrics

SKIP, SEP, POOL, NONE = "skip_connect", "sep_conv_3x3", "avg_pool_3x3", "none"
OPS = (NONE, SKIP, SEP)


def edge(*alpha: float, ops: tuple[str, ...] = OPS) -> EdgeWeights:
    return EdgeWeights(ops, tuple(alpha))


def two_node_arch(
    normal: list[EdgeWeights], reduce: list[EdgeWeights] | None = None
) -> ArchWeights:
    """A cell of 2 intermediate nodes: node 0 keeps edges 0 and 1, node 1 two of 2, 3, 4."""
    return ArchWeights(2, tuple(normal), tuple(reduce or normal))


# Normal cell: edges 0 and 1 choose skip; edge 2 chooses skip but is the weakest of node 1's
# edges, so the genotype has 2 skip-connects. Reduce cell: no skip anywhere.
NORMAL = [edge(0, 2, 0), edge(0, 3, 1), edge(0, 0.5, 0), edge(0, 0, 2), edge(0, 1, 3)]
REDUCE = [edge(0, 0, 1)] * 5


# ---------------------------------------------------------------------------------------------
# the pure parts


@pytest.mark.parametrize("k", [2, 3, 8])
def test_equal_weights_have_entropy_ln_k(k: int) -> None:
    ops = ("max_pool_3x3", POOL, SKIP, SEP, "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", NONE)
    assert edge_entropy(EdgeWeights(ops[:k], (0.3,) * k)) == pytest.approx(math.log(k), rel=1e-6)


def test_entropy_is_in_nats_and_a_sure_op_has_none() -> None:
    assert entropy_nats([0.5, 0.5, 0.0]) == pytest.approx(math.log(2))
    assert entropy_nats([0.25, 0.75]) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    )
    assert edge_entropy(edge(0, 60, 0)) == pytest.approx(0.0, abs=1e-12)
    assert 0 < edge_entropy(edge(0, 1, 0)) < math.log(3)


def test_the_chosen_op_is_the_derivations() -> None:
    assert edge_choice(edge(5, 1, 0)) == SKIP  # none never chosen, however heavy
    assert edge_choice(edge(0, 1, 1)) == SEP  # ties go to the later op
    assert edge_choice(edge(3, ops=(NONE,))) == NONE  # nothing else to choose


def test_skip_connects_are_those_of_the_plain_derivation() -> None:
    arch = two_node_arch(NORMAL, REDUCE)
    found = diagnose(arch, None)
    assert found.genotype == derive_genotype(arch)  # unrefined, whatever max_skip is
    assert found.skip_connects == {"normal": 2, "reduce": 0}
    assert found.chosen == {"normal": (SKIP, SKIP, SKIP, SEP, SEP), "reduce": (SEP,) * 5}
    assert [len(found.edge_entropy[c]) for c in ("normal", "reduce")] == [5, 5]
    assert found.edge_entropy["normal"][0] == pytest.approx(edge_entropy(NORMAL[0]))


def test_a_stages_first_epoch_has_no_changed_edges() -> None:
    assert diagnose(two_node_arch(NORMAL), None).changed_edges is None


def test_changed_edges_count_the_edges_whose_chosen_op_moved() -> None:
    before = diagnose(two_node_arch(NORMAL, REDUCE), None)
    normal = [*NORMAL]
    normal[0] = edge(0, 2, 2.5)  # skip -> sep
    normal[4] = edge(9, 1, 3)  # sep still chosen: none's weight does not count
    reduce = [edge(0, 1, 0.5), *REDUCE[1:]]  # sep -> skip
    after = diagnose(two_node_arch(normal, reduce), before.chosen)
    assert after.changed_edges == {"normal": 1, "reduce": 1}
    assert diagnose(two_node_arch(NORMAL, REDUCE), before.chosen).changed_edges == {
        "normal": 0,
        "reduce": 0,
    }
    with pytest.raises(ValueError, match="cannot compare 5 edges with 3"):
        changed_edges(before.chosen["normal"], (SKIP,) * 3)


def test_diagnostics_use_no_random_numbers_and_change_nothing() -> None:
    arch = two_node_arch(NORMAL, REDUCE)
    state = torch.random.get_rng_state()
    diagnose(arch, chosen_ops(arch))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert arch == two_node_arch(NORMAL, REDUCE)


@pytest.mark.parametrize(
    ("skips", "max_skip", "joint", "warns"),
    [
        (3, 2, True, True),
        (2, 2, True, False),  # M itself is what refinement keeps
        (1, 0, True, True),
        (8, None, True, False),  # no refinement, no limit
        (3, 2, False, False),  # warm-up: the alphas are still their random start
    ],
)
def test_the_warning_threshold(skips: int, max_skip: int | None, joint: bool, warns: bool) -> None:
    text = skip_warning(3, 14, skips, max_skip, joint)
    assert (text is not None) == warns
    if text is not None:
        assert text.startswith(f"stage 3 epoch 14: the alphas give {skips} skip-connect")
        assert f"more than max_skip = {max_skip}" in text


def test_old_metrics_without_diagnostics_still_make_metrics() -> None:
    old = EpochMetrics(1, 1, 0.1, 0.0, 2.3, 0.1, None, None, None, None, 1.0)
    assert old.to_dict()["skip_connects"] == {}
    assert old.changed_edge_count is None
    assert old.mean_entropy == {}
    assert diagnostics_line(old) is None


# ---------------------------------------------------------------------------------------------
# the console


def crafted(epoch: int, normal_skips: int, genotype: str, changed: int | None) -> EpochMetrics:
    return EpochMetrics(
        stage=3,
        epoch=epoch,
        lr=0.01,
        skip_dropout_p=0.1,
        train_loss=1.0,
        train_accuracy=0.5,
        alpha_loss=1.1,
        alpha_accuracy=0.4,
        valid_loss=None,
        valid_accuracy=None,
        seconds=2.0,
        genotype=genotype,
        skip_connects={"normal": normal_skips, "reduce": 0},
        edge_entropy={"normal": [1.0, 0.5], "reduce": [1.1, 1.1]},
        changed_edges=None if changed is None else {"normal": changed, "reduce": 1},
        max_skip=2,
    )


def console_output(terminal: bool, *events: EpochMetrics | str) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=200,
        force_terminal=terminal,
        color_system="standard" if terminal else None,  # a log: no colours at all
    )
    observer = ConsoleObserver(console, live=False)
    for event in events:
        if isinstance(event, str):
            observer.warning(event)
        else:
            observer.epoch_finished(event)
    return out.getvalue()


def test_each_epoch_shows_its_diagnostics_and_a_genotype_when_it_changes() -> None:
    output = console_output(
        False,
        crafted(1, 2, "Genotype(A)", None),
        crafted(2, 2, "Genotype(A)", 0),
        crafted(3, 3, "Genotype([B])", 2),
    )
    diagnostics = [line for line in output.splitlines() if "skip-connects" in line]
    entropy = "entropy normal 0.75 reduce 1.10 nats"
    assert diagnostics == [
        f"  skip-connects normal 2 reduce 0 · {entropy}",
        f"  skip-connects normal 2 reduce 0 · {entropy} · 1 edge changed",
        f"  skip-connects normal 3 reduce 0 · {entropy} · 3 edges changed",
    ]
    genotypes = [line for line in output.splitlines() if "genotype now" in line]
    assert genotypes == ["  genotype now: Genotype(A)", "  genotype now: Genotype([B])"]


def test_a_warning_is_a_yellow_line_on_a_terminal_and_marked_in_logs() -> None:
    text = skip_warning(3, 3, 3, 2, joint=True)
    assert text is not None
    plain = console_output(False, text)
    assert plain.splitlines() == [f"warning: {text}"]
    coloured = console_output(True, text)
    assert "\x1b[33mwarning:" in coloured  # yellow
    assert text in coloured


# ---------------------------------------------------------------------------------------------
# one tiny search


def skip_or_pool(epochs: int) -> Schedule:
    """One stage choosing between skip_connect and avg_pool_3x3 on every edge, M = 0."""
    data = tiny_schedule_dict(candidate_ops=[SKIP, POOL], max_skip=0, seed=3)
    stage = {**data["stages"][0], "ops_per_edge": 2, "epochs": epochs, "batch_size": 360}
    return validate_schedule({**data, "stages": [stage]}, "skip or pool")


def metrics_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run of 2 epochs (warm-up, then joint) rendered as `pdarts search` renders it."""
    run_dir = tmp_path_factory.mktemp("diagnostics") / "run"
    out = io.StringIO()
    observer = ConsoleObserver(Console(file=out, width=200), live=False)
    run_search(skip_or_pool(2), SearchOptions(dataset="digits"), run_dir, observer=observer)
    return run_dir, out.getvalue()


def test_metrics_lines_carry_the_diagnostics(searched: tuple[Path, str]) -> None:
    run_dir, _ = searched
    first, last = metrics_lines(run_dir)
    for line in (first, last):
        assert line["max_skip"] == 0
        assert set(line["skip_connects"]) == {"normal", "reduce"}
        for entropies in line["edge_entropy"].values():
            assert len(entropies) == 14
            assert all(0 < h <= math.log(2) + 1e-6 for h in entropies)
    assert first["changed_edges"] is None
    assert set(last["changed_edges"]) == {"normal", "reduce"}
    unrefined = read_genotype_file(run_dir / "genotype-unrefined.json")
    assert last["genotype"] == derive_genotype(read_arch(run_dir / "final.arch.json")).to_darts()
    assert last["genotype"] == unrefined.to_darts()
    assert last["skip_connects"]["normal"] == unrefined.count(SKIP)


def test_the_console_warns_in_joint_epochs_above_max_skip(searched: tuple[Path, str]) -> None:
    run_dir, output = searched
    _, last = metrics_lines(run_dir)
    assert last["skip_connects"]["normal"] > 0  # above M = 0 with this seed
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {skip_warning(1, 2, last['skip_connects']['normal'], 0, joint=True)}"
    ]
    assert output.count("  skip-connects normal") == 2  # one line per epoch


def test_the_plot_reads_the_diagnostics_of_a_run(searched: tuple[Path, str]) -> None:
    run_dir, _ = searched
    source = run_dir / METRICS_FILE
    figure = search_figure(read_metrics(source), source, "run")
    axes = {ax.get_title(): ax for ax in figure.subfigs[0].axes}
    skips = axes[DIAGNOSTIC_TITLES["skip"]]
    normal = next(line for line in skips.get_lines() if line.get_label() == "normal")
    assert list(normal.get_ydata()) == [
        float(r["skip_connects"]["normal"]) for r in metrics_lines(run_dir)
    ]


class StopAfterFirstEpoch(SearchObserver):
    def epoch_finished(self, metrics: EpochMetrics) -> None:
        raise KeyboardInterrupt  # after the epoch's checkpoint, as Ctrl-C would


def test_a_stage_resumed_mid_way_reports_what_the_unbroken_stage_did(
    searched: tuple[Path, str], tmp_path: Path
) -> None:
    whole, _ = searched
    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        run_search(
            skip_or_pool(2), SearchOptions(dataset="digits"), broken, observer=StopAfterFirstEpoch()
        )
    resume_search(broken)
    resumed, unbroken = metrics_lines(broken), metrics_lines(whole)
    assert resumed[1]["changed_edges"] is not None  # compared with the restored epoch
    for line in resumed + unbroken:
        del line["seconds"]
    assert resumed == unbroken

"""Cell drawings with Graphviz, and ``pdarts genotype list|show|plot|diff``.

Rendering calls Graphviz's ``dot`` program; the tests that need it are skipped where it is not
installed. Its absence is simulated by emptying PATH.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from clihelpers import assert_one_error_line, lines
from typer.testing import CliRunner

from pdarts_cli.cli.app import app
from pdarts_cli.draw import draw_genotype
from pdarts_cli.errors import PdartsError
from pdarts_cli.genotype import ZOO, Genotype, write_genotype

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDE = {"COLUMNS": "200"}  # Rich wraps tables at the terminal width; keep rows whole

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is absent")
runner = CliRunner()


@pytest.fixture
def genotype() -> Genotype:
    return ZOO["PDARTS"]()


def op_names(genotype: Genotype) -> set[str]:
    return {op for op, _ in genotype.normal + genotype.reduce}


# ---------------------------------------------------------------------------------------------
# draw_genotype


@needs_dot
def test_png(genotype: Genotype, tmp_path: Path) -> None:
    out = tmp_path / "cell.png"
    assert draw_genotype(genotype, out) == out
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1024


@needs_dot
def test_svg_holds_every_op_and_node(genotype: Genotype, tmp_path: Path) -> None:
    out = tmp_path / "cell.svg"
    assert draw_genotype(genotype, out) == out
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    # the drawn words; Graphviz writes '-' as '&#45;', which the XML parser decodes
    texts = [el.text for el in root.iter() if el.tag.endswith("}text")]
    assert len(op_names(genotype)) == 7  # PDARTS uses every op but none
    for name in op_names(genotype):
        assert name in texts
    # one label per edge of both cells
    assert sum(t in op_names(genotype) for t in texts) == 2 * len(genotype.normal)
    for label in ("c_{k-2}", "c_{k-1}", "c_{k}", "normal cell", "reduce cell"):
        assert label in texts


@needs_dot
def test_pdf_and_an_upper_case_suffix(genotype: Genotype, tmp_path: Path) -> None:
    assert (draw_genotype(genotype, tmp_path / "cell.pdf")).read_bytes()[:5] == b"%PDF-"
    out = draw_genotype(genotype, tmp_path / "CELL.SVG")
    assert ET.parse(out).getroot().tag.endswith("svg")


def test_dot_source(genotype: Genotype, tmp_path: Path) -> None:
    out = tmp_path / "cell.dot"
    assert draw_genotype(genotype, out) == out
    text = out.read_text(encoding="utf-8")
    assert text.startswith("digraph")
    # one edge per (op, input) pair into its node (node k is graph node k + 2), labelled with
    # the op, and one edge from every concatenated node to the output, in both cells
    for cell_type in ("normal", "reduce"):
        for k, (op, source) in enumerate(genotype.cell(cell_type)):
            assert f"{cell_type}_{source} -> {cell_type}_{k // 2 + 2} [label={op} " in text
        for node in genotype.concat(cell_type):
            assert f'{cell_type}_{node} -> "{cell_type}_-1"' in text
    assert text.count("->") == 2 * (len(genotype.normal) + len(genotype.normal_concat))


@pytest.mark.parametrize("name", ["cell.jpg", "cell", "cell.svg.txt"])
def test_unknown_suffix_is_refused(genotype: Genotype, tmp_path: Path, name: str) -> None:
    with pytest.raises(PdartsError, match=r"--out must end in one of \.svg, \.png, \.pdf, \.dot"):
        draw_genotype(genotype, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_without_dot_the_source_is_written_beside(
    genotype: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "cell.svg"
    with pytest.raises(PdartsError) as exc:
        draw_genotype(genotype, out)
    message = str(exc.value)
    assert "\n" not in message
    assert "dot program was not found" in message
    assert "install Graphviz" in message
    assert f"dot -Tsvg {tmp_path / 'cell.dot'} -o {out}" in message
    assert not out.exists()
    assert (tmp_path / "cell.dot").read_text(encoding="utf-8").startswith("digraph")
    # a .dot file needs no dot program
    assert draw_genotype(genotype, tmp_path / "only.dot").read_text().startswith("digraph")


def test_without_dot_an_unwritable_output_is_one_line(
    genotype: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PdartsError):
        draw_genotype(genotype, tmp_path / "no" / "such" / "cell.svg")


def test_unwritable_output_is_one_line(genotype: Genotype, tmp_path: Path) -> None:
    with pytest.raises(PdartsError, match="cannot write") as exc:
        draw_genotype(genotype, tmp_path / "no" / "such" / "cell.dot")
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------------------------------------
# pdarts genotype ...


@needs_dot
def test_cli_plot(tmp_path: Path) -> None:
    out = tmp_path / "x.svg"
    result = runner.invoke(app, ["genotype", "plot", "PDARTS", "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert ET.parse(out).getroot().tag.endswith("svg")


def test_cli_plot_without_dot_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(
        app, ["genotype", "plot", "PDARTS", "-o", str(tmp_path / "x.png")], env=WIDE
    )
    assert "install Graphviz" in assert_one_error_line(result)
    assert (tmp_path / "x.dot").is_file()


def test_cli_show(tmp_path: Path) -> None:
    result = runner.invoke(app, ["genotype", "show", "PDARTS"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "normal cell (concat [2, 3, 4, 5])" in result.output
    assert "reduce cell (concat [2, 3, 4, 5])" in result.output
    assert "c_{k-2}" in result.output
    assert ZOO["PDARTS"]().to_darts() in result.output

    # a file shows the same
    path = tmp_path / "g.json"
    write_genotype(ZOO["PDARTS"](), path)
    from_file = runner.invoke(app, ["genotype", "show", str(path)], env=WIDE)
    assert from_file.exit_code == 0, from_file.output
    assert from_file.output == result.output


def test_cli_list() -> None:
    result = runner.invoke(app, ["genotype", "list"], env=WIDE)
    assert result.exit_code == 0, result.output
    for name in ("PDARTS", "DARTS_V1", "DARTS_V2"):
        assert name in result.output


def test_cli_diff_shows_differences() -> None:
    result = runner.invoke(app, ["genotype", "diff", "PDARTS", "DARTS_V2"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "identical" not in result.output
    assert "differences" in result.output
    assert "only in A" in result.output
    # normal node 2: PDARTS has sep_conv_3x3 from input 3, DARTS_V2 skip_connect from input 0
    row = next(line for line in lines(result) if "sep_conv_3x3(3)" in line)
    assert "normal" in row
    assert "skip_connect(0)" in row


def test_cli_diff_of_the_same_genotype() -> None:
    result = runner.invoke(app, ["genotype", "diff", "PDARTS", "PDARTS"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert lines(result) == ["identical"]


@pytest.mark.parametrize(
    "args",
    [
        ["show", "NOPE"],
        ["show", "Genotype(normal=__import__('os').system('true'))"],
        ["diff", "PDARTS", "pdarts"],
        ["plot", "NOPE", "--out", "never.svg"],
        ["plot", "PDARTS", "--out", "never.jpg"],
    ],
)
def test_cli_bad_genotype_is_one_line(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["genotype", *args], env=WIDE)
    assert_one_error_line(result)
    assert list(tmp_path.iterdir()) == []

"""Cell drawings as in the DARTS papers, with Graphviz.

Inputs c_{k-2} and c_{k-1} on the left, intermediate nodes 0..3, their concatenation c_{k} on
the right; each edge is labelled with its op. Both cells go into one picture, side by side.
"""

from __future__ import annotations

from pathlib import Path

import graphviz

from pdarts_cli.errors import PdartsError
from pdarts_cli.genotype import Genotype
from pdarts_cli.topology import CELL_INPUTS, CELL_TYPES, gene_target

FORMATS = ("svg", "png", "pdf", "dot")
_INPUT_STYLE = {"style": "filled", "fillcolor": "darkseagreen2", "shape": "rect"}
_NODE_STYLE = {"style": "filled", "fillcolor": "lightblue", "shape": "rect"}
_OUTPUT_STYLE = {"style": "filled", "fillcolor": "palegoldenrod", "shape": "rect"}


def _cell(graph: graphviz.Digraph, genotype: Genotype, cell_type: str) -> None:
    def name(node: int) -> str:
        return f"{cell_type}_{node}"

    with graph.subgraph(name=f"cluster_{cell_type}") as cluster:
        cluster.attr(label=f"{cell_type} cell", fontsize="20", style="rounded", color="gray")
        cluster.node(name(0), "c_{k-2}", **_INPUT_STYLE)
        cluster.node(name(1), "c_{k-1}", **_INPUT_STYLE)
        for node in range(genotype.steps):
            cluster.node(name(CELL_INPUTS + node), str(node), **_NODE_STYLE)
        for k, (op, source) in enumerate(genotype.cell(cell_type)):
            cluster.edge(name(source), name(gene_target(k)), label=op, fillcolor="gray")
        cluster.node(name(-1), "c_{k}", **_OUTPUT_STYLE)
        for node in genotype.concat(cell_type):
            cluster.edge(name(node), name(-1), fillcolor="gray")


def cell_graph(genotype: Genotype) -> graphviz.Digraph:
    graph = graphviz.Digraph(
        name="genotype",
        graph_attr={"rankdir": "LR", "fontname": "times", "compound": "true"},
        node_attr={
            "fontname": "times",
            "fontsize": "20",
            "height": "0.5",
            "width": "0.5",
            "align": "center",
            "penwidth": "2",
        },
        edge_attr={"fontname": "times", "fontsize": "16", "penwidth": "1.5"},
    )
    for cell_type in reversed(CELL_TYPES):  # Graphviz stacks the later cluster on top
        _cell(graph, genotype, cell_type)
    return graph


def _write_source(graph: graphviz.Digraph, path: Path) -> None:
    try:
        path.write_text(graph.source, encoding="utf-8")
    except OSError as exc:
        raise PdartsError(f"cannot write {path}: {exc.strerror or exc}") from exc


def draw_genotype(genotype: Genotype, out: Path) -> Path:
    """Render both cells to ``out`` (.svg, .png, .pdf or .dot). Without Graphviz's ``dot``
    program the .dot source is written beside ``out`` and a PdartsError says how to finish."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise PdartsError(f"--out must end in one of {', '.join('.' + f for f in FORMATS)}: {out}")
    if not out.parent.is_dir():
        raise PdartsError(f"cannot write {out}: folder {out.parent} does not exist")
    graph = cell_graph(genotype)
    dot_path = out.with_suffix(".dot")
    try:
        if fmt == "dot":
            out.write_text(graph.source, encoding="utf-8")
            return out
        out.write_bytes(graph.pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        _write_source(graph, dot_path)
        raise PdartsError(
            f"Graphviz's dot program was not found, so {dot_path} was written instead; install "
            f"Graphviz (apt-get install graphviz, brew install graphviz) and run "
            f"dot -T{fmt} {dot_path} -o {out}"
        ) from None
    except OSError as exc:
        raise PdartsError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out

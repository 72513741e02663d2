"""Genotypes: the discrete cell a search hands back.

A genotype lists, node by node, the ``(op, input)`` pairs of each cell type, as DARTS does.
It is stored as ``pdarts-genotype/1`` JSON, and imported from / exported to the DARTS
``Genotype(normal=[...], ...)`` syntax without ``eval``. Every reader checks op names against
the op registry unless told otherwise, so no command accepts a genotype nobody can build.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdarts_cli.errors import ArtifactError
from pdarts_cli.files import read_text
from pdarts_cli.registry import KnownOps, op_registry

GENOTYPE_FORMAT = "pdarts-genotype/1"
INPUTS_PER_NODE = 2  # every intermediate node sums two ops (DARTS)
MAX_RANGE_LENGTH = 64  # a concat range in a DARTS string; bounded before it is expanded

Gene = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Genotype:
    normal: Gene
    normal_concat: tuple[int, ...]
    reduce: Gene
    reduce_concat: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def steps(self) -> int:
        return len(self.normal) // INPUTS_PER_NODE

    def cell(self, cell_type: str) -> Gene:
        return self.normal if cell_type == "normal" else self.reduce

    def concat(self, cell_type: str) -> tuple[int, ...]:
        return self.normal_concat if cell_type == "normal" else self.reduce_concat

    def count(self, op: str, cell_type: str = "normal") -> int:
        return sum(1 for name, _ in self.cell(cell_type) if name == op)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": GENOTYPE_FORMAT,
            "normal": [[op, i] for op, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, i] for op, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }
        if self.meta:
            data["meta"] = dict(self.meta)
        return data

    def to_darts(self) -> str:
        """DARTS syntax, as the DARTS and P-DARTS code print and store genotypes."""

        def gene(cell: Gene) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in cell) + "]"

        def concat(nodes: tuple[int, ...]) -> str:
            if nodes and list(nodes) == list(range(nodes[0], nodes[-1] + 1)):
                return f"range({nodes[0]}, {nodes[-1] + 1})"
            return "[" + ", ".join(str(n) for n in nodes) + "]"

        return (
            f"Genotype(normal={gene(self.normal)}, normal_concat={concat(self.normal_concat)}, "
            f"reduce={gene(self.reduce)}, reduce_concat={concat(self.reduce_concat)})"
        )


def _check_gene(gene: object, name: str, known: KnownOps) -> Gene:
    if not isinstance(gene, (list, tuple)) or not gene:
        raise ArtifactError(f"{name}: expected a list of [op, input] pairs")
    if len(gene) % INPUTS_PER_NODE:
        raise ArtifactError(
            f"{name}: every node takes {INPUTS_PER_NODE} inputs, got {len(gene)} ops"
        )
    pairs = []
    for k, pair in enumerate(gene):
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], int)
            or isinstance(pair[1], bool)
        ):
            raise ArtifactError(f"{name}.{k}: expected [op name, input index]")
        op, index = pair
        node = k // INPUTS_PER_NODE
        known.require(op, f"{name}.{k}")
        if not 0 <= index <= node + 1:
            raise ArtifactError(
                f"{name}.{k}: node {node} takes inputs 0..{node + 1}, got input {index}"
            )
        pairs.append((op, index))
    return tuple(pairs)


def _check_concat(concat: object, name: str, steps: int) -> tuple[int, ...]:
    if not isinstance(concat, (list, tuple, range)) or not concat:
        raise ArtifactError(f"{name}: expected a non-empty list of node indices")
    nodes = tuple(concat)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in nodes):
        raise ArtifactError(f"{name}: node indices must be integers")
    if any(not 2 <= n < steps + 2 for n in nodes) or len(set(nodes)) != len(nodes):
        raise ArtifactError(f"{name}: nodes must be distinct and in {list(range(2, steps + 2))}")
    return nodes


def genotype_from_dict(
    data: object, source: str = "genotype", known_ops: Collection[str] | None = None
) -> Genotype:
    """Validate a genotype object (the JSON format, ``format`` key optional).

    Op names are checked against ``known_ops``, by default the op registry's at this moment.
    """
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{source}: expected a JSON object")
    fmt = data.get("format", GENOTYPE_FORMAT)
    if fmt != GENOTYPE_FORMAT:
        raise ArtifactError(f"{source}: format must be {GENOTYPE_FORMAT!r}, got {fmt!r}")
    allowed = {"format", "normal", "normal_concat", "reduce", "reduce_concat", "meta"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ArtifactError(f"{source}: unknown field {unknown[0]!r}")
    missing = [k for k in ("normal", "normal_concat", "reduce", "reduce_concat") if k not in data]
    if missing:
        raise ArtifactError(f"{source}: missing field {missing[0]!r}")
    known = KnownOps.of(known_ops)
    normal = _check_gene(data["normal"], f"{source}: normal", known)
    reduce = _check_gene(data["reduce"], f"{source}: reduce", known)
    if len(normal) != len(reduce):
        raise ArtifactError(f"{source}: normal and reduce cells must have the same number of nodes")
    steps = len(normal) // INPUTS_PER_NODE
    meta = data.get("meta", {})
    if not isinstance(meta, Mapping):
        raise ArtifactError(f"{source}: meta must be an object")
    return Genotype(
        normal=normal,
        normal_concat=_check_concat(data["normal_concat"], f"{source}: normal_concat", steps),
        reduce=reduce,
        reduce_concat=_check_concat(data["reduce_concat"], f"{source}: reduce_concat", steps),
        meta=dict(meta),
    )


def genotype_json(genotype: Genotype) -> str:
    return json.dumps(genotype.to_dict(), indent=2) + "\n"


def write_genotype(genotype: Genotype, path: Path) -> None:
    path.write_text(genotype_json(genotype), encoding="utf-8")


def read_genotype_file(path: Path, known_ops: Collection[str] | None = None) -> Genotype:
    """A ``pdarts-genotype/1`` JSON file, or a file holding a DARTS-syntax string."""
    text = read_text(path, ArtifactError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if path.suffix.lower() == ".json":
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
        return parse_darts(text, source=str(path), known_ops=known_ops)
    return genotype_from_dict(data, source=str(path), known_ops=known_ops)


# --- DARTS syntax, parsed as data (never eval) -----------------------------------------------


def _literal(node: ast.expr, where: str) -> Any:
    """Lists, tuples, strings, integers and ``range(a, b)``; anything else is refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, where) for item in node.elts]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
    ):
        bounds = [_literal(arg, where) for arg in node.args]
        nodes = range(*bounds) if all(isinstance(b, int) for b in bounds) else None
        if nodes is not None and len(nodes) <= MAX_RANGE_LENGTH:
            return list(nodes)
    raise ArtifactError(
        f"{where}: only lists, tuples, strings, integers and range(a, b) are allowed"
    )


def parse_darts(
    text: str, source: str = "genotype", known_ops: Collection[str] | None = None
) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ArtifactError(f"{source}: not a genotype in DARTS syntax ({exc.msg})") from exc
    call = tree.body
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "Genotype"
    ):
        raise ArtifactError(f"{source}: expected Genotype(normal=..., reduce=..., ...)")
    if call.args:
        raise ArtifactError(f"{source}: Genotype(...) takes keyword arguments only")
    fields = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ArtifactError(f"{source}: ** is not allowed in a genotype")
        fields[keyword.arg] = _literal(keyword.value, f"{source}: {keyword.arg}")
    return genotype_from_dict(fields, source=source, known_ops=known_ops)


# --- published genotypes -----------------------------------------------------------------------


def _published(
    normal: list[tuple[str, int]], reduce: list[tuple[str, int]], source: str
) -> Genotype:
    concat = (2, 3, 4, 5)
    return Genotype(tuple(normal), concat, tuple(reduce), concat, meta={"source": source})


ZOO: dict[str, Callable[[], Genotype]] = {
    "PDARTS": lambda: _published(
        [
            ("skip_connect", 0),
            ("dil_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 4),
        ],
        [
            ("avg_pool_3x3", 0),
            ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0),
            ("dil_conv_3x3", 1),
            ("dil_conv_3x3", 1),
            ("dil_conv_5x5", 3),
        ],
        "Chen et al., P-DARTS, ICCV 2019 (CIFAR-10 search)",
    ),
    "DARTS_V2": lambda: _published(
        [
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
        "Liu et al., DARTS, ICLR 2019 (second order)",
    ),
    "DARTS_V1": lambda: _published(
        [
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("avg_pool_3x3", 0),
        ],
        "Liu et al., DARTS, ICLR 2019 (first order)",
    ),
}


def known_op_names() -> list[str]:
    return op_registry().names()


def run_genotype_path(run_dir: Path) -> Path:
    """A run directory's genotype.json: a search's refined genotype, or a training's own."""
    from pdarts_cli.runlog import GENOTYPE_FILE  # runlog imports torch: only for directories

    path = run_dir / GENOTYPE_FILE
    if not path.is_file():
        raise ArtifactError(f"{run_dir} holds no {GENOTYPE_FILE}: is it a finished search?")
    return path


def load_genotype(spec: str) -> Genotype:
    """A genotype from a zoo name, a file (JSON or DARTS syntax), a run directory (its
    genotype.json) or a DARTS-syntax string; op names are checked against the op registry."""
    if spec in ZOO:
        return ZOO[spec]()
    if spec.lstrip().startswith("Genotype("):
        return parse_darts(spec, source="genotype string")
    path = Path(spec)
    if spec.strip() and path.is_dir():  # Path("") is the current directory
        return read_genotype_file(run_genotype_path(path))
    if path.is_file():
        return read_genotype_file(path)
    raise ArtifactError(
        f"{spec!r} is not a genotype file, a run directory, a DARTS string or a zoo name "
        f"({', '.join(ZOO)})"
    )


@dataclass(frozen=True)
class NodeDifference:
    cell_type: str
    node: int  # intermediate node index, 0-based (node k is graph node k + 2)
    only_a: tuple[tuple[str, int], ...]
    only_b: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GenotypeDiff:
    nodes: tuple[NodeDifference, ...]
    concat: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # (cell type, a, b)

    @property
    def identical(self) -> bool:
        return not self.nodes and not self.concat


def genotype_diff(a: Genotype, b: Genotype) -> GenotypeDiff:
    """Per cell and node, the (op, input) pairs one genotype has and the other has not."""
    nodes, concat = [], []
    for cell_type in ("normal", "reduce"):
        gene_a, gene_b = a.cell(cell_type), b.cell(cell_type)
        for node in range(max(len(gene_a), len(gene_b)) // INPUTS_PER_NODE):
            pairs = slice(INPUTS_PER_NODE * node, INPUTS_PER_NODE * (node + 1))
            count_a, count_b = Counter(gene_a[pairs]), Counter(gene_b[pairs])
            only_a, only_b = (
                tuple((count_a - count_b).elements()),
                tuple((count_b - count_a).elements()),
            )
            if only_a or only_b:
                nodes.append(NodeDifference(cell_type, node, only_a, only_b))
        if a.concat(cell_type) != b.concat(cell_type):
            concat.append((cell_type, a.concat(cell_type), b.concat(cell_type)))
    return GenotypeDiff(tuple(nodes), tuple(concat))

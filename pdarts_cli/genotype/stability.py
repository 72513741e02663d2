"""How much a search's result depends on its seed: the genotypes of several seeds compared.

Agreement is counted per edge ``input -> node`` of a cell (``topology.Edge``, the nodes
numbered as in DARTS strings). A genotype keeps two inputs per intermediate node and puts one
op on each, so on every edge a seed has chosen an op or has not kept the edge (``None``); the
order of a node's two ``(op, input)`` pairs in a genotype does not count. The rows are the
edges at least one seed kept. On each, the seeds that share the most common choice *agree*
(not keeping the edge is a choice too; a tie goes to the earliest seed's choice), and the edge
is *unanimous* when every seed made the same choice. A genotype that puts two ops on one edge
(none that a search derives) has them joined by ``+``.

``stability.json`` (``pdarts-stability/1``) lists per seed its run, genotype and final search
accuracy (the last epoch's ``valid_accuracy`` in its metrics.jsonl), then what follows from
them (edges, agreement, skip-connects, the accuracies' spread) for readers of the file; reading
it back recomputes those from the seeds.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pdarts_ops import IDENTITY_OP

from pdarts_cli.errors import ArtifactError
from pdarts_cli.files import parse_json, read_text
from pdarts_cli.genotype.model import Genotype, genotype_from_dict
from pdarts_cli.topology import CELL_TYPES, Edge, gene_target

STABILITY_FORMAT = "pdarts-stability/1"
STABILITY_FILE = "stability.json"


@dataclass(frozen=True)
class EdgeAgreement:
    """One edge of one cell type, and what each seed put on it."""

    cell_type: str
    edge: Edge
    choices: tuple[str | None, ...]  # per seed, in the order of Stability.seeds; None: not kept

    @property
    def majority(self) -> str | None:
        """The most common choice; a tie goes to the earliest seed's."""
        counts = Counter(self.choices)
        return max(counts, key=counts.__getitem__)  # max keeps the first of equal counts

    @property
    def agreeing(self) -> int:
        """Seeds that made the most common choice."""
        return self.choices.count(self.majority)

    @property
    def unanimous(self) -> bool:
        return self.agreeing == len(self.choices)


@dataclass(frozen=True)
class AccuracySpread:
    """Final search accuracies over the seeds that have one, in [0, 1]."""

    mean: float
    std: float  # sample standard deviation (n - 1); 0 for a single seed
    min: float
    max: float
    count: int


@dataclass(frozen=True)
class SeedOutcome:
    seed: int
    genotype: Genotype
    final_valid_accuracy: float | None  # None: the last epoch did not evaluate
    run: str | None = None  # the seed's run directory, relative to the seeds run's

    @property
    def skip_connects(self) -> dict[str, int]:
        return {cell: self.genotype.count(IDENTITY_OP, cell) for cell in CELL_TYPES}


@dataclass(frozen=True)
class Stability:
    seeds: tuple[SeedOutcome, ...]

    @property
    def edges(self) -> tuple[EdgeAgreement, ...]:
        return edge_agreement([s.genotype for s in self.seeds])

    def unanimous_edges(self, cell_type: str) -> tuple[int, int]:
        """(unanimous edges, edges some seed kept) of ``cell_type``."""
        rows = [row for row in self.edges if row.cell_type == cell_type]
        return sum(row.unanimous for row in rows), len(rows)

    @property
    def identical(self) -> bool:
        """Every seed found the same cells (edges, ops and concat)."""
        first = self.seeds[0].genotype
        same_concat = all(
            s.genotype.concat(cell) == first.concat(cell) for s in self.seeds for cell in CELL_TYPES
        )
        return same_concat and all(row.unanimous for row in self.edges)

    @property
    def spread(self) -> AccuracySpread | None:
        values = [s.final_valid_accuracy for s in self.seeds if s.final_valid_accuracy is not None]
        return accuracy_spread(values)


def edge_choices(genotype: Genotype, cell_type: str) -> dict[Edge, str]:
    """The op on each edge ``genotype`` keeps in ``cell_type``."""
    ops: dict[Edge, list[str]] = {}
    for gene, (op, source) in enumerate(genotype.cell(cell_type)):
        ops.setdefault(Edge(source, gene_target(gene)), []).append(op)
    return {edge: "+".join(sorted(names)) for edge, names in ops.items()}


def edge_agreement(genotypes: Sequence[Genotype]) -> tuple[EdgeAgreement, ...]:
    """Per cell type, every edge some genotype keeps (in the order of a cell's alphas), with
    each genotype's choice on it."""
    rows: list[EdgeAgreement] = []
    for cell_type in CELL_TYPES:
        choices = [edge_choices(genotype, cell_type) for genotype in genotypes]
        kept = sorted(set().union(*choices), key=lambda edge: (edge.target, edge.source))
        rows.extend(
            EdgeAgreement(cell_type, edge, tuple(choice.get(edge) for choice in choices))
            for edge in kept
        )
    return tuple(rows)


def accuracy_spread(values: Sequence[float]) -> AccuracySpread | None:
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return AccuracySpread(statistics.fmean(values), std, min(values), max(values), len(values))


def stability_to_dict(stability: Stability) -> dict[str, Any]:
    spread = stability.spread
    agreement = {}
    for cell in CELL_TYPES:
        unanimous, kept = stability.unanimous_edges(cell)
        agreement[cell] = {"unanimous": unanimous, "edges": kept}
    return {
        "format": STABILITY_FORMAT,
        "seeds": [s.seed for s in stability.seeds],
        "runs": [
            {
                "seed": s.seed,
                "run": s.run,
                "genotype": s.genotype.to_dict(),
                "final_valid_accuracy": s.final_valid_accuracy,
                "skip_connects": s.skip_connects,
            }
            for s in stability.seeds
        ],
        "final_valid_accuracy": None if spread is None else asdict(spread),
        "identical": stability.identical,
        "agreement": agreement,
        "edges": [
            {
                "cell": row.cell_type,
                "edge": row.edge.label,
                "choices": list(row.choices),
                "majority": row.majority,
                "agreeing": row.agreeing,
                "unanimous": row.unanimous,
            }
            for row in stability.edges
        ],
    }


def stability_json(stability: Stability) -> str:
    return json.dumps(stability_to_dict(stability), indent=2) + "\n"


def _seed_from_dict(data: object, where: str) -> SeedOutcome:
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{where}: expected an object")
    seed, accuracy, run = data.get("seed"), data.get("final_valid_accuracy"), data.get("run")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ArtifactError(f"{where}.seed: expected a seed (a whole number >= 0)")
    if accuracy is not None and (
        not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool)
    ):
        raise ArtifactError(f"{where}.final_valid_accuracy: expected a number or null")
    if run is not None and not isinstance(run, str):
        raise ArtifactError(f"{where}.run: expected a folder name or null")
    genotype = genotype_from_dict(data.get("genotype"), source=f"{where}.genotype")
    return SeedOutcome(seed, genotype, None if accuracy is None else float(accuracy), run)


def stability_from_dict(data: object, source: str) -> Stability:
    """The seeds of a ``pdarts-stability/1`` object; what follows from them is recomputed."""
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{source}: expected a JSON object")
    if data.get("format") != STABILITY_FORMAT:
        raise ArtifactError(
            f"{source}: format must be {STABILITY_FORMAT!r} (a pdarts search --seeds run's "
            f"{STABILITY_FILE}), got {data.get('format')!r}"
        )
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ArtifactError(f"{source}: runs must be a non-empty list")
    seeds = tuple(_seed_from_dict(run, f"{source}: runs.{k + 1}") for k, run in enumerate(runs))
    if len({s.seed for s in seeds}) != len(seeds):
        raise ArtifactError(f"{source}: a seed is listed twice")
    return Stability(seeds)


def read_stability(spec: str | Path) -> Stability:
    """A ``stability.json`` file, or the one in a seeds run directory."""
    path = Path(spec)
    if not path.exists():
        raise ArtifactError(
            f"{spec!r} is neither a seeds run directory nor its {STABILITY_FILE}; to compare "
            "two genotypes, give both"
        )
    if path.is_dir():
        path = path / STABILITY_FILE
        if not path.is_file():
            raise ArtifactError(
                f"{spec} holds no {STABILITY_FILE}: is it a finished pdarts search --seeds run?"
            )
    data = parse_json(read_text(path, ArtifactError), ArtifactError, f"{path} is not valid JSON")
    return stability_from_dict(data, str(path))

"""Genotypes: the discrete cell a search hands back.

A genotype lists, node by node, the ``(op, input)`` pairs of each cell type, as DARTS does
(:mod:`.model`). It is stored as ``pdarts-genotype/1`` JSON, imported from / exported to the
DARTS ``Genotype(normal=[...], ...)`` syntax without ``eval`` (:mod:`.darts_string`), named
from the published ones (:mod:`.zoo`), loaded from whatever a command is given (:mod:`.load`)
and compared (:mod:`.diff`).
"""

from pdarts_cli.genotype.darts_string import parse_darts
from pdarts_cli.genotype.diff import GenotypeDiff, NodeDifference, genotype_diff
from pdarts_cli.genotype.load import load_genotype, read_genotype_file, run_genotype_path
from pdarts_cli.genotype.model import (
    GENOTYPE_FORMAT,
    Gene,
    Genotype,
    genotype_from_dict,
    genotype_json,
    known_op_names,
    write_genotype,
)
from pdarts_cli.genotype.zoo import ZOO

__all__ = [
    "GENOTYPE_FORMAT",
    "ZOO",
    "Gene",
    "Genotype",
    "GenotypeDiff",
    "NodeDifference",
    "genotype_diff",
    "genotype_from_dict",
    "genotype_json",
    "known_op_names",
    "load_genotype",
    "parse_darts",
    "read_genotype_file",
    "run_genotype_path",
    "write_genotype",
]

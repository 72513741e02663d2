"""DARTS syntax, ``Genotype(normal=[...], normal_concat=..., ...)``, parsed as data (never eval).

The DARTS and P-DARTS code print and store genotypes this way; :meth:`Genotype.to_darts`
writes it back.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from typing import Any

from pdarts_cli.errors import ArtifactError
from pdarts_cli.genotype.model import Genotype, genotype_from_dict

MAX_RANGE_LENGTH = 64  # a concat range in a DARTS string; bounded before it is expanded
MAX_DARTS_CHARS = 100_000  # the DARTS genotypes are a few hundred characters


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
    if len(text) > MAX_DARTS_CHARS:
        raise ArtifactError(
            f"{source}: {len(text):,} characters, more than a genotype in DARTS syntax has "
            f"(at most {MAX_DARTS_CHARS:,})"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ArtifactError(f"{source}: not a genotype in DARTS syntax ({exc.msg})") from exc
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, deep nesting
        raise ArtifactError(f"{source}: not a genotype in DARTS syntax ({exc})") from exc
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

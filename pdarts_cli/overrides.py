"""Dotted overrides: replace any field of a frozen config model by its path.

``with_overrides(schedule, {"alphas.order": "second", "stages.1.epochs": 5})`` is a copy of
``schedule`` with those two fields replaced, validated once by the model: every validator runs,
as for a file, and a value that breaks a rule is the usual one-line ``ConfigError``.

A key is a dotted path of field names and list positions. Positions count from 1, as the tool
numbers stages and list items everywhere a user reads them (an error reads
``stage 1, epochs``), so ``stages.1.epochs`` is the first stage's epochs and
``alphas.betas.2`` the second beta. A key replaces whatever is at its path, a whole table or
list included (``alphas={"order": "second"}`` leaves the other alpha fields at their defaults).
Keys apply in order, each to what the keys before it left: after ``stages=[{...}, {...}]``,
``stages.2.epochs`` is the new second stage's.

``pdarts search --set KEY=VALUE`` (and ``schedule show --set``) reads its strings with
``parse_overrides``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pdarts_cli.config import M, validate_config
from pdarts_cli.errors import ConfigError

# The source that errors name for values given by the CLI's flags.
FLAGS_SOURCE = "command-line flags"


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["alphas.order=second", "stages.1.epochs=5"]`` as ``{"alphas.order": "second",
    "stages.1.epochs": 5}``.

    VALUE is read as JSON when it parses (``5``, ``0.5``, ``true``, ``null``,
    ``[0.5,0.999]``, ``{"kind":"linear"}``) and as a string otherwise, so ``second`` needs no
    quotes; quote a string that would parse as something else (``name='"2"'``). A key given
    twice keeps its last value, in the place of its last occurrence.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigError(f"an override is KEY=VALUE (alphas.order=second), got {item!r}")
        overrides.pop(key, None)
        overrides[key] = _json_or_text(text)
    return overrides


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def with_overrides(
    model: M,
    overrides: Mapping[str, Any],
    source: str = "overrides",
    what: str | None = None,
) -> M:
    """A copy of ``model`` with the value at each dotted key (list positions from 1) replaced.

    The result is validated once, as a file of the same model would be. Errors are one-line
    ``ConfigError``s, ``invalid WHAT (SOURCE): ...``: a value that breaks a rule names its
    field as every error does (``stage 1, epochs: ...``); an unknown key names itself and the
    keys known where it fails. ``what`` defaults to the model's class name in lower case
    (``schedule``, ``recipe``).
    """
    what = what or type(model).__name__.lower()
    data = model.model_dump()
    for key, value in overrides.items():
        _set_path(data, key, value, f"invalid {what} ({source}): ")
    return validate_config(type(model), data, what, source)


def _set_path(data: dict[str, Any], key: str, value: Any, prefix: str) -> None:
    """Set the item at dotted ``key`` of ``data`` (a model's dump) to ``value``, in place."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if isinstance(node, dict):
            known = list(node)
            slot: str | int = part
        elif isinstance(node, list):
            known = [str(position) for position in range(1, len(node) + 1)]
            slot = int(part) - 1 if part in known else part
        else:
            raise ConfigError(f"{prefix}unknown key {key!r}: {where} is a value, not a table")
        if part not in known:
            place = f" in {where}" if where else ""
            raise ConfigError(f"{prefix}unknown key {key!r}; known keys{place}: {', '.join(known)}")
        if depth == len(parts) - 1:
            node[slot] = value
            return
        child = node[slot]
        if isinstance(child, tuple):  # a dump keeps tuple fields as tuples: make them settable
            child = node[slot] = list(child)
        node = child

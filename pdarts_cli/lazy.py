"""Package namespaces whose names load on first use.

``pdarts_cli`` and ``pdarts_cli.searching`` export names from heavy modules (torch, the run
loop); importing one light module of the package (the derivation, the CLI's help) must not pay
for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_exports(
    namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first use of
    ``name`` and keeps the value in ``namespace`` (the package's ``globals()``)."""

    def getattr_(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    return getattr_

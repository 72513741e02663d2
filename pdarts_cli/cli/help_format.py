"""How every command's help reads: flags without a value type, help texts from the models.

Typer shows each option's value type (``<int>``); for a flag that reads as if it took a value
(``--force <bool>``). ``Command`` and ``Group`` give flags an empty metavar, so ``--force``
stands alone. ``field_help`` takes an option's help from the pydantic field it sets, so the
flag and the schedule or recipe file describe a setting in the same words.
"""

from __future__ import annotations

from typing import Any

import typer.core
from pydantic import BaseModel


def _bare_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, typer.core.TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    """A command whose flags show no value type in ``--help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    """A command group whose flags (``--help``, ``--version``) show no value type."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


def field_help(model: type[BaseModel], name: str) -> str:
    """The description of ``model``'s field ``name``, as an option's help text."""
    description = model.model_fields[name].description
    if not description:
        raise ValueError(f"{model.__name__}.{name} has no description")
    return description

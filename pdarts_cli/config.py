"""Configuration files: frozen pydantic models loaded from TOML or JSON, validated once.

Schedules (search) and recipes (training) share this: the file formats, the one-line
``field.path: message`` errors and presets by name. Their dotted overrides
(``alphas.order=second``) are ``pdarts_cli.overrides``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pdarts_cli.errors import ConfigError
from pdarts_cli.files import parse_json, parse_toml, read_text

M = TypeVar("M", bound=BaseModel)
CONFIG_SUFFIXES = (".toml", ".json")


class FrozenModel(BaseModel):
    """Immutable, and unknown keys are errors: a typo never falls back to a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def error_location(loc: tuple[int | str, ...]) -> str:
    """A field path as users count: ``("stages", 0, "epochs")`` -> ``stage 1, epochs``.

    Stages are numbered from 1, as in every progress line and table; other list items read
    ``item N`` (also from 1); names join with dots.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            if text == "stages" or text.endswith(".stages"):
                text = text.removesuffix("stages") + f"stage {part + 1},"
            else:
                text += f" item {part + 1}"
        elif not text:
            text = str(part)
        else:
            text += f" {part}" if text.endswith(",") else f".{part}"
    return text


def format_validation_error(error: ValidationError) -> str:
    """The first pydantic error as ``field.path: message``, with a count of the others."""
    items = error.errors()
    # A list whose items failed is also reported as too short; that echo adds nothing.
    failed = {item["loc"][:-1] for item in items if len(item["loc"]) > 1}
    items = [i for i in items if not (i["type"] == "too_short" and i["loc"] in failed)] or items
    first = items[0]
    location = error_location(first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    text = f"{location}: {message}" if location else message
    if len(items) > 1:
        text += f" (and {len(items) - 1} more)"
    return text


def validate_config(model: type[M], data: Mapping[str, Any], what: str, source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid {what} ({source}): {format_validation_error(exc)}") from exc


def read_config_file(model: type[M], path: Path, what: str) -> M:
    """A model from a .toml or .json file."""
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"{what} files are .toml or .json, got {path}")
    text = read_text(path, ConfigError, what)
    name = f"cannot parse {what} {path}"
    data = (
        parse_toml(text, ConfigError, name)
        if suffix == ".toml"
        else parse_json(text, ConfigError, name)
    )
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {what} ({path}): expected a table/object at the top level")
    return validate_config(model, data, what, str(path))


def load_config(
    model: type[M], name_or_path: str, presets: Mapping[str, Callable[[], M]], what: str
) -> M:
    """A preset by name, or a config file."""
    if name_or_path in presets:
        return presets[name_or_path]()
    path = Path(name_or_path)
    if path.suffix.lower() in CONFIG_SUFFIXES or path.exists():
        return read_config_file(model, path, what)
    raise ConfigError(
        f"unknown {what} {name_or_path!r}: not a preset ({', '.join(presets)}) "
        "and not a .toml/.json file"
    )


def config_json(config: BaseModel) -> str:
    """The model as a file that loads back unchanged."""
    return config.model_dump_json(indent=2) + "\n"

"""Every command's help: each option explained, flags shown as flags, one-line summaries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.core
from typer.main import get_command
from typer.testing import CliRunner

from pdarts_cli.cli.app import app

runner = CliRunner()


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(get_command(app), ()))
LEAVES = [(path, command) for path, command in COMMANDS if not hasattr(command, "commands")]
IDS = [" ".join(path) or "pdarts" for path, _ in COMMANDS]


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"search", "train", "evaluate", "refine", "plot", "profile-memory"} <= names
    assert {"genotype diff", "schedule show", "ops list", "datasets list"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_option_and_argument_has_help(path: tuple[str, ...], command: Any) -> None:
    missing = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert missing == [], f"pdarts {' '.join(path)}: no help text for {missing}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_command_has_a_one_line_summary(path: tuple[str, ...], command: Any) -> None:
    summary = (command.help or "").strip().split("\n\n")[0]
    assert summary, f"pdarts {' '.join(path)} has no help"
    assert "\n" not in summary, f"pdarts {' '.join(path)}: summary breaks mid-phrase"
    assert len(summary) <= 70, f"pdarts {' '.join(path)}: summary too long for the list"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_flags_show_no_value_type(path: tuple[str, ...], command: Any) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    flags = [p for p in command.params if isinstance(p, typer.core.TyperOption) and p.is_flag]
    for flag in flags:
        row = next(line for line in result.output.splitlines() if flag.opts[0] + " " in line)
        assert not re.search(re.escape(flag.opts[0]) + r"\s+<", row), row


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_arguments_are_named_in_capitals(path: tuple[str, ...], command: Any) -> None:
    for param in command.params:
        if isinstance(param, typer.core.TyperArgument):
            assert param.metavar is not None, f"pdarts {' '.join(path)}: {param.name}"
            assert param.metavar == param.metavar.upper(), param.metavar


def test_top_level_help_gives_each_command_one_line_at_80_columns() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    panel = result.output[result.output.index("Commands") :]
    rows = [line for line in panel.splitlines() if line.startswith("│")]
    top_level = [path for path, _ in COMMANDS if len(path) == 1]
    assert len(rows) == len(top_level)  # no command's summary wraps onto a second line

"""Helpers for CLI tests (not a test module)."""

from __future__ import annotations

from typer.testing import Result


def lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def assert_one_error_line(result: Result) -> str:
    """The command failed with exactly one ``error:`` line and no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    (line,) = lines(result)
    assert line.startswith("error:")
    return line


def stderr_of(result: Result) -> str:
    """stderr where the runner separates it, else the mixed output."""
    try:
        return result.stderr
    except ValueError:  # an older Click that mixes stderr into output
        return result.output

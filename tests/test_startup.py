"""Commands that only read JSON or print help never import torch (benchmarks/startup.py times
them)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "startup.py"


def startup_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("startup_benchmark", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_light_commands_never_import_torch() -> None:
    """Every command in one process, as the benchmark runs each: all succeed, torch stays out."""
    commands = startup_benchmark().LIGHT_COMMANDS
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pdarts_cli.cli.app import app\n"
        "runner = CliRunner()\n"
        f"for command in {list(commands)!r}:\n"
        "    result = runner.invoke(app, list(command))\n"
        "    assert result.exit_code == 0, (command, result.output)\n"
        "    if 'torch' in sys.modules:\n"
        "        print('torch after', command)\n"
        "        break\n"
        "else:\n"
        "    print('torch-free')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch-free"


def test_the_benchmark_reports_torch_when_a_command_loads_it() -> None:
    seconds, torch_loaded, status = startup_benchmark().run(("genotype", "show", "PDARTS"))
    assert (torch_loaded, status) == (False, 0)
    assert seconds > 0

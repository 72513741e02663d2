"""The package's shape, kept by a test (docs/architecture.md).

The data flow reads top to bottom: the CLI, then the library's entry points, then search and
training, then the shared leaves. These tests read every module's imports (those inside
functions and under TYPE_CHECKING included) and fail on an edge that breaks the shape.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pdarts_cli

PACKAGE_DIR = Path(pdarts_cli.__file__).parent
TESTS_DIR = Path(__file__).parent
MAX_MODULE_LINES = 350

SEARCH = ("pdarts_cli.searching", "pdarts_cli.memory", "pdarts_cli.refinement")
TRAIN = ("pdarts_cli.training",)
CLI = ("pdarts_cli.cli", "pdarts_cli.__main__")
ENTRY = ("pdarts_cli.api",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports(path: Path, name: str) -> Iterator[tuple[int, str, str | None]]:
    """(line, imported module, imported name or None) for every import in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                yield node.lineno, module, alias.name


def edges() -> list[tuple[str, int, str, str | None]]:
    return [
        (name, line, target, imported)
        for name, path in package_modules().items()
        for line, target, imported in imports(path, name)
    ]


def test_search_and_train_never_import_each_other() -> None:
    bad = [
        f"{name}:{line} imports {target}"
        for name, line, target, _ in edges()
        if (within(name, SEARCH) and within(target, TRAIN))
        or (within(name, TRAIN) and within(target, SEARCH))
    ]
    assert bad == []


def test_the_library_imports_neither_typer_nor_rich() -> None:
    bad = [
        f"{name}:{line} imports {target}"
        for name, line, target, _ in edges()
        if not within(name, CLI) and target.split(".")[0] in {"typer", "rich"}
    ]
    assert bad == []


def test_layers_only_import_downwards() -> None:
    """Leaves import no layer above them; the library never imports the CLI or the API."""
    above_leaves = SEARCH + TRAIN + CLI + ENTRY
    bad = []
    for name, line, target, _ in edges():
        if not target.startswith("pdarts_cli"):
            continue
        is_leaf = name != "pdarts_cli" and not within(name, above_leaves)
        if is_leaf and within(target, above_leaves):
            bad.append(f"{name}:{line} (a shared leaf) imports {target}")
        if not within(name, CLI) and within(target, CLI):
            bad.append(f"{name}:{line} imports the command line ({target})")
        if within(name, SEARCH + TRAIN) and within(target, ENTRY):
            bad.append(f"{name}:{line} imports the API ({target})")
    assert bad == []


def private(name: str) -> bool:
    """``_name``, not ``__future__`` or ``__version__``."""
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_is_imported_across_modules() -> None:
    """Neither ``from module import _name`` nor an import of a ``_module``."""
    sources = {**package_modules()}
    sources |= {f"tests.{p.stem}": p for p in TESTS_DIR.rglob("*.py")}
    bad = [
        f"{name}:{line} imports {imported} from {target}"
        for name, path in sources.items()
        for line, target, imported in imports(path, name)
        if any(private(part) for part in [*target.split("."), imported or ""])
    ]
    assert bad == []


@pytest.mark.parametrize("name", sorted(package_modules()))
def test_no_module_is_over_350_lines(name: str) -> None:
    lines = len(package_modules()[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"


def test_importing_the_library_loads_neither_typer_nor_rich() -> None:
    code = (
        "import sys, pdarts_cli, pdarts_cli.api; "
        "from pdarts_cli import search, train, refine, evaluate; "
        "print(sorted(m for m in ('typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_derivation_imports_without_the_run_loop() -> None:
    code = (
        "import sys, pdarts_cli.searching.derive; "
        "print(sorted(m for m in ('pydantic', 'pdarts_cli.searching.loop') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

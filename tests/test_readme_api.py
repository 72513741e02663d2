"""README.md's "Python API" section, run as a user would paste it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def api_examples() -> list[str]:
    """The ```python blocks of the "Python API" section, in order."""
    text = README.read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_has_python_api_examples() -> None:
    examples = api_examples()
    assert len(examples) == 2
    assert "import pdarts_cli as pdarts" in examples[0]


@pytest.mark.slow
def test_the_readme_python_api_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = api_examples()
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(first, str(README), "exec"), namespace)
    assert list(tmp_path.iterdir()) == []  # a search given no out_dir writes nothing
    exec(compile(second, str(README), "exec"), namespace)  # it goes on from the first
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Genotype(normal=")
    assert printed[1].startswith("Genotype(normal=")
    assert "skip_connect" not in printed[1].split("normal_concat")[0]  # max_skip=0
    assert printed[2].startswith("alpha-half accuracy ")
    assert printed[3].startswith("test top-1 ")
    assert (tmp_path / "runs" / "api-search" / "genotype.json").is_file()
    assert (tmp_path / "runs" / "api-train" / "final.safetensors").is_file()

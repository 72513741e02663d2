"""Where a genotype comes from: a zoo name, a file (JSON or DARTS syntax), a run directory or a
DARTS-syntax string."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from pdarts_cli.errors import ArtifactError
from pdarts_cli.files import parse_json, read_text
from pdarts_cli.genotype.darts_string import parse_darts
from pdarts_cli.genotype.model import Genotype, genotype_from_dict
from pdarts_cli.genotype.zoo import ZOO


def read_genotype_file(path: Path, known_ops: Collection[str] | None = None) -> Genotype:
    """A ``pdarts-genotype/1`` JSON file, or a file holding a DARTS-syntax string."""
    text = read_text(path, ArtifactError)
    if path.suffix.lower() != ".json" and not text.lstrip().startswith("{"):
        return parse_darts(text, source=str(path), known_ops=known_ops)
    data = parse_json(text, ArtifactError, f"{path} is not valid JSON")
    return genotype_from_dict(data, source=str(path), known_ops=known_ops)


def run_genotype_path(run_dir: Path) -> Path:
    """A run directory's genotype.json: a search's refined genotype, or a training's own."""
    from pdarts_cli.runlog import GENOTYPE_FILE  # runlog imports torch: only for directories

    path = run_dir / GENOTYPE_FILE
    if not path.is_file():
        raise ArtifactError(f"{run_dir} holds no {GENOTYPE_FILE}: is it a finished search?")
    return path


def load_genotype(spec: str) -> Genotype:
    """A genotype from a zoo name, a file (JSON or DARTS syntax), a run directory (its
    genotype.json) or a DARTS-syntax string; op names are checked against the op registry."""
    if spec in ZOO:
        return ZOO[spec]()
    if spec.lstrip().startswith("Genotype("):
        return parse_darts(spec, source="genotype string")
    path = Path(spec)
    if spec.strip() and path.is_dir():  # Path("") is the current directory
        return read_genotype_file(run_genotype_path(path))
    if path.is_file():
        return read_genotype_file(path)
    raise ArtifactError(
        f"{spec!r} is not a genotype file, a run directory, a DARTS string or a zoo name "
        f"({', '.join(ZOO)})"
    )

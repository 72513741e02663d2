"""Resolve a dataset spec, ``name[:argument]``, to a provider's ``ImageDataset``.

Providers come from the ``pdarts.datasets`` entry-point group (built-ins and plugins alike),
so ``resolve_dataset("npz:/data/x.npz")`` and a plugin's ``resolve_dataset("mnist")`` take
the same road.
"""

from __future__ import annotations

import os
from pathlib import Path

from pdarts_cli.data.base import DatasetRequest, ImageDataset
from pdarts_cli.errors import DatasetError
from pdarts_cli.registry import dataset_registry

DATA_DIR_ENV = "PDARTS_DATA"  # where datasets live, if set; CIFAR messages name it


def default_data_dir() -> Path:
    """Where downloaded datasets live: ``$PDARTS_DATA``, else the user's cache folder.

    The cache follows the XDG convention (``$XDG_CACHE_HOME/pdarts/data``, by default
    ``~/.cache/pdarts/data``) so data is shared between runs and projects, and is not backed up.
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    cache_root = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return cache_root / "pdarts" / "data"


def parse_dataset_spec(spec: str) -> tuple[str, str | None]:
    """``"npz:/x/y.npz"`` -> ``("npz", "/x/y.npz")``; split at the first ':' only.

    Splitting at the first ':' keeps Windows paths (``npz:C:\\data\\x.npz``) whole. An empty
    argument (``"npz:"``) counts as none, so the provider can say what it needs.
    """
    name, _, argument = spec.partition(":")
    return name, argument or None


def resolve_dataset(
    spec: str,
    data_dir: Path | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> ImageDataset:
    """Load the dataset that ``spec`` names, through its registered provider.

    An unknown name raises the registry's ``RegistryError`` (which lists the known names);
    a provider's own problems are ``DatasetError``s.
    """
    name, argument = parse_dataset_spec(spec)
    provider = dataset_registry().get(name)
    request = DatasetRequest(
        name=name,
        argument=argument,
        data_dir=data_dir if data_dir is not None else default_data_dir(),
        download=download,
        image_size=image_size,
    )
    dataset = provider(request)
    if not isinstance(dataset, ImageDataset):
        raise DatasetError(
            f"dataset provider {name!r} returned {type(dataset).__name__}, not an ImageDataset"
        )
    return dataset

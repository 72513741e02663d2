"""safetensors checkpoints: tensors plus JSON metadata, written atomically, loaded without pickle.

Nested state (an optimiser's ``state_dict``) is split into its tensors, stored under flat keys,
and a JSON skeleton that records where each tensor goes and keeps ints, tuples and dict key
types exact, so ``load_state_dict`` gets back what ``state_dict`` gave.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pdarts_cli.errors import ArtifactError
from pdarts_cli.files import atomic_replace

METADATA_KEY = "pdarts"


def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON skeleton of ``obj``; its tensors go into ``tensors`` under ``prefix`` keys."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, Mapping):
        return {
            "__dict__": [[k, flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]
        }
    if isinstance(obj, tuple):
        return {
            "__tuple__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        }
    if isinstance(obj, list):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a checkpoint")


def unflatten_state(skeleton: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__tuple__" in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """An atomic safetensors file whose metadata holds ``metadata`` as one JSON string."""
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = json.dumps(dict(metadata))
    size_bytes = sum(t.nbytes for t in cpu.values()) + len(header)
    with atomic_replace(path, size_bytes) as temp:
        try:
            save_file(cpu, str(temp), metadata={METADATA_KEY: header})
        except SafetensorError as exc:  # the OS error, as safetensors reports it
            raise OSError(_errno_of(str(exc)), str(exc)) from exc


def _errno_of(message: str) -> int:
    """The errno a safetensors write error names (its Rust message), else EIO."""
    if "No space left" in message or "os error 28" in message:
        return errno.ENOSPC
    if "Read-only" in message or "os error 30" in message:
        return errno.EROFS
    return errno.EIO


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a file written by :func:`save_tensors`."""
    if not path.is_file():
        raise ArtifactError(f"no checkpoint at {path}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a readable safetensors checkpoint ({exc})") from exc
    if raw is None:
        raise ArtifactError(f"{path} was not written by pdarts (no '{METADATA_KEY}' metadata)")
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{path} has unreadable metadata ({exc})") from exc
    return tensors, metadata

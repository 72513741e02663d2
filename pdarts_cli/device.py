"""Device, mixed precision and memory format choices, made once at the start of a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from pdarts_cli.errors import PdartsError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an unavailable device is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PdartsError("--device cuda: no CUDA device is available (try --device auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise PdartsError("--device mps: MPS is not available on this machine (try --device auto)")
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise PdartsError(f"unknown device {name!r}; choose from {', '.join(DEVICE_CHOICES)}")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """Autocast settings; ``dtype`` None means full float32."""

    device_type: str
    dtype: torch.dtype | None

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    @property
    def label(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """Autocast on CUDA only. ``auto`` is float32: the search supernet is bound by kernel
    launches, and bf16 autocast measured 15-30% slower per step on an H200 at batch 96
    (benchmarks/results/search-step-h200.jsonl) while halving peak memory. ``bf16`` (or
    ``fp16`` with loss scaling, for GPUs without bf16) trades that time for memory."""
    if device.type != "cuda" or mode in {"off", "auto"}:
        return Precision(device.type, None)
    if mode == "fp16" or not torch.cuda.is_bf16_supported():
        return Precision("cuda", torch.float16)
    return Precision("cuda", torch.bfloat16)


def resolve_channels_last(mode: str, device: torch.device) -> bool:
    """``auto``: channels_last on the CPU, where the supernet's depthwise convolutions and
    poolings run 1.5-1.9x faster in it (benchmarks/README.md, "Search step"); the default
    layout on CUDA, where channels_last measured 2-30% slower for the search supernet on an
    H200 (benchmarks/results/search-step-h200.jsonl)."""
    if mode == "auto":
        return device.type == "cpu"
    return mode == "on" and device.type != "mps"


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch in the layout its network was put in."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x

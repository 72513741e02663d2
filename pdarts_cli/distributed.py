"""torch.distributed, as torchrun sets it up: ranks from the environment, nothing clever."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Distributed:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), if any.

    NCCL on CUDA, gloo on the CPU. A single process needs no process group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Distributed(rank, world_size, local_rank)


def all_reduce_sum(tensor: torch.Tensor, setup: Distributed) -> torch.Tensor:
    if setup.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: torch.nn.Module, setup: Distributed) -> None:
    """Rank 0's BatchNorm statistics everywhere, so that every rank evaluates and saves the
    same network (DDP broadcasts buffers before each forward, not after the last one)."""
    if setup.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

"""torch.distributed, as torchrun sets it up: ranks from the environment, nothing clever."""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from pdarts_cli.errors import PdartsError

T = TypeVar("T")


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


SINGLE_PROCESS = Distributed()


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
        # A rank that exits while another still holds its connections can abort that one
        # ("terminate called without an active exception", exit -6): leave together.
        atexit.register(_leave_process_group)
    return Distributed(rank, world_size, local_rank)


def _leave_process_group() -> None:
    if not dist.is_initialized():
        return
    with contextlib.suppress(RuntimeError):  # a rank already gone (it failed): no wait
        dist.barrier()
    dist.destroy_process_group()


def join_processes(device: torch.device) -> tuple[torch.device, Distributed]:
    """This process's device and place among torchrun's processes: a CUDA rank computes on
    ``cuda:LOCAL_RANK``."""
    setup = init_distributed(device.type)
    if setup.enabled and device.type == "cuda":
        device = torch.device("cuda", setup.local_rank)
    return device, setup


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


def average_gradients(grads: Sequence[torch.Tensor], setup: Distributed) -> list[torch.Tensor]:
    """Every rank's gradients, averaged across ranks in one all-reduce (unchanged alone)."""
    if not setup.enabled or not grads:
        return list(grads)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(setup.world_size)
    start = 0
    for g in grads:  # back in place, each in its own layout
        g.copy_(flat[start : start + g.numel()].view(g.shape))
        start += g.numel()
    return list(grads)


def share_of_batch(samples: int, device: torch.device, setup: Distributed) -> float:
    """This rank's ``samples`` over the mean share of the global batch: a rank's mean loss
    times this, averaged over ranks, is the mean loss of the global batch (1 when all ranks
    hold as many samples, as they do but in an epoch's last batch)."""
    if not setup.enabled:
        return 1.0
    total = torch.tensor([float(samples)], device=device)
    dist.all_reduce(total)
    return samples * setup.world_size / float(total)


def from_main(value: T, setup: Distributed) -> T:
    """Rank 0's ``value`` on every rank: decisions are taken once and shared."""
    if not setup.enabled:
        return value
    box = [value if setup.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def on_main(action: Callable[[], T], elsewhere: T, setup: Distributed) -> T:
    """``action()`` on rank 0 alone (``elsewhere`` on the others). A PdartsError it raises is
    raised on every rank: a rank left waiting in a collective for one that stopped would wait
    for the backend's timeout."""
    failure: PdartsError | None = None
    result = elsewhere
    if setup.is_main:
        try:
            result = action()
        except PdartsError as exc:
            failure = exc
    failure = from_main(failure, setup)
    if failure is not None:
        raise failure
    return result


def broadcast_tensors(tensors: Sequence[torch.Tensor], setup: Distributed) -> None:
    """Rank 0's values of ``tensors`` (parameters, buffers) everywhere, in place."""
    if setup.enabled:
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=0)

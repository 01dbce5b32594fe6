"""``torch.distributed`` helpers for data-parallel training (a no-op in one process)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = ["rank_and_world", "all_reduce_", "broadcast_", "init_distributed", "rank_weight_spread"]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks in place (nothing in one process); returns ``t``."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite ``tensors`` on every rank with rank 0's values."""
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


def init_distributed(device_arg: str | None) -> tuple[int, int, torch.device]:
    """Initialise the process group under ``torchrun``; return ``(rank, world, device)``.

    ``device_arg`` None: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU;
    NCCL on GPUs, gloo on CPUs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg is None:
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(device_arg)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, device


def rank_weight_spread(model: torch.nn.Module) -> float:
    """Largest |w_rank − w_rank0| over all parameters and ranks (0 when the ranks agree)."""
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        diff = (flat - ref).abs().max().reshape(1)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)

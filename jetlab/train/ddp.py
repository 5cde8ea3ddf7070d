"""Distributed data parallel helpers for runs launched with ``torchrun``.

``torchrun --nproc_per_node=N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous
variables); :func:`setup` turns them into an initialised process group (NCCL on CUDA, gloo on CPU).
Only rank 0 writes checkpoints and logs; reported losses are all-reduced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from jetlab.options import is_auto

__all__ = [
    "DistContext",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "env_world_size",
    "is_main_process",
    "resolve_device",
    "setup",
    "unused_parameters",
    "wrap_model",
]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True if setup() initialised the process group (so cleanup() destroys it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(
            f"environment variable WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}"
        ) from None


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """The one device resolver (notebooks, tasks, the Trainer): ``"auto"``/None -> this process's
    CUDA device when available, else CPU; a bare ``"cuda"`` -> ``cuda:<local_rank>``.

    Asking for CUDA on a machine without it is an error naming the parameter, not a silent CPU
    fallback (a run that was meant for a GPU should not quietly take hours on the CPU)."""
    if device is None or is_auto(device):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def setup(device: str | torch.device = "auto") -> DistContext:
    """Initialise the process group from torchrun's environment; a no-op context when single-process."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        dev = resolve_device(device, local)
        return DistContext(rank, world, local, dist.get_backend(), dev, owns_group=False)
    world = env_world_size()
    if world <= 1:
        return DistContext(device=resolve_device(device, 0))
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world} but torchrun variables {missing} are not set; launch with torchrun")
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    dev = resolve_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local, backend, dev, owns_group=True)


def wrap_model(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``module`` when distributed, else ``module`` itself.

    Pass ``find_unused_parameters=True`` only when the loss leaves trainable parameters without a
    gradient (fine-tuning PET's classifier leaves its generator head unused; pretraining uses every
    head): the flag costs an extra autograd traversal per step and DDP warns when it finds nothing.
    :func:`unused_parameters` tells which case a loss is.
    """
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unused_parameters(
    module: nn.Module, compute_loss: Callable[[], torch.Tensor], device: torch.device = torch.device("cpu")
) -> list[str]:
    """Names of ``module``'s trainable parameters that the graph of ``compute_loss()`` does not reach.

    One forward and backward pass (``torch.autograd.grad``, so no ``.grad`` is touched) under a
    forked RNG: the training that follows draws the same random numbers as it would without it.
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        return []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        loss = compute_loss()
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return [n for (n, _), g in zip(named, grads) if g is None]


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum floats over ranks (float64 on the communication device)."""
    if not ctx.distributed:
        return list(values)
    dev = ctx.device if ctx.backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.cpu().tolist()


def barrier(ctx: DistContext | None) -> None:
    """Wait for every rank; a no-op outside a process group (``ctx`` None: nothing was set up)."""
    if ctx is not None and ctx.distributed:
        dist.barrier()


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def cleanup(ctx: DistContext | None) -> None:
    if ctx is not None and ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()

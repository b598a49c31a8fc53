"""Process-group set-up for ``torchrun`` (single- and multi-node) and the few collectives we need.

``torchrun --nproc_per_node=N -m ffn_core train ...`` (or ``--nnodes``/``--rdzv-endpoint`` for
several machines) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for every process;
:func:`init_distributed` reads them and joins the group (``nccl`` on CUDA, ``gloo`` on CPU). A plain
``python -m ffn_core train`` sees no such variables and runs as one process (rank 0 of 1), so every
helper here also works undistributed (the collectives are then no-ops).

Rules the engine follows: only rank 0 writes files and prints; metrics are summed across ranks
before they are reported; each rank owns the CUDA device ``LOCAL_RANK``.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "all_reduce_sum", "all_gather_objects",
           "barrier", "resolve_device", "cpu_threads"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` if CUDA is available, else ``cpu``; ``cuda`` -> ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={name!r}: CUDA is not available on this machine (use device=cpu or auto)")
        return torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device='mps': MPS is not available on this machine (use device=cpu or auto)")
    return torch.device(name)


def _env_int(key: str, default: int) -> int:
    value = os.environ.get(key, "")
    try:
        return int(value) if value != "" else default
    except ValueError:
        raise RuntimeError(f"environment variable {key}={value!r}: expected an integer (set by torchrun)") from None


def init_distributed(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if ``WORLD_SIZE > 1``; return ``(DistInfo, device)``.

    Backend: ``nccl`` when this rank trains on CUDA, else ``gloo``. Idempotent: if a group already
    exists (a notebook or test initialised it), it is reused.
    """
    world = _env_int("WORLD_SIZE", 1)
    _env_int("RANK", 0)  # checked here (a clear error if malformed); init_process_group reads it
    local_rank = _env_int("LOCAL_RANK", 0)
    device = resolve_device(device_name, local_rank)
    if world <= 1:
        return DistInfo(), device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank), device


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def all_reduce_sum(values: Sequence[float] | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Sum a vector of numbers over all ranks (float64; identity when not distributed).

    The tensor travels on ``device`` (nccl needs CUDA tensors; gloo takes CPU ones); the result is on
    the CPU.
    """
    if torch.is_tensor(values):
        t = values.detach().to(torch.float64)
    else:
        t = torch.tensor(list(values), dtype=torch.float64)
    if not _active():
        return t.cpu()
    if dist.get_backend() == "nccl":
        t = t.to(device if device is not None else torch.device("cuda", torch.cuda.current_device()))
    else:
        t = t.cpu()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def all_gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (a one-element list when not distributed)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def cpu_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)`` (``n = 0``: leave torch's setting) and restore it.

    ``cfg.threads``: on a shared or over-subscribed CPU, intra-op threads of small convolutions mostly
    wait on each other; one thread per process can then be many times faster.
    """
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(previous)

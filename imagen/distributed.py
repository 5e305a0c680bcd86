"""torch.distributed from torchrun's environment, shared by training (DDP) and sweeps.

Without torchrun (WORLD_SIZE unset or 1) this is a 1-process world and nothing is initialised.
Under torchrun each process is one rank; on CUDA rank r uses cuda:LOCAL_RANK (imagen.device).
Backend: gloo for CPU tensors, NCCL for CUDA tensors ("cpu:gloo,cuda:nccl" when a rank has a GPU,
so CPU-side collectives such as metric states and object exchange keep working beside NCCL).
Several nodes: the same commands under `torchrun --nnodes N --node_rank K --rdzv_backend c10d
--rdzv_endpoint HOST:PORT`; nothing here depends on the node count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj):
        """Every rank's picklable `obj`, in rank order, on every rank (a collective: all ranks call it)."""
        if self.size == 1:
            return [obj]

        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


def joined() -> Dist:
    """This process's rank in the process group it has joined (init_from_env), else a 1-process world:
    for code that runs inside a torchrun job without being handed its world (metrics, whose
    torchmetrics states sync through the same group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(dist.get_rank(), dist.get_world_size())


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str = "cpu") -> Dist:
    """Join torchrun's process group (once per process) for a rank running on `device` (resolved)."""
    if world_size_from_env() == 1:
        return Dist()

    if not dist.is_initialized():
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size())

"""torch.distributed for sweeps launched by torchrun (imagen.distributed: gloo on CPU; with GPUs each
rank on cuda:LOCAL_RANK and NCCL beside gloo). Without torchrun it is a 1-process world and every
collective is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from imagen.device import resolve_device
from imagen.distributed import Dist, init_from_env, world_size_from_env


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @staticmethod
    def from_env() -> World:
        """Joins torchrun's process group when WORLD_SIZE > 1."""
        if world_size_from_env() == 1:
            return World()

        d = init_from_env(resolve_device("auto"))  # this rank's GPU when there are GPUs, else the CPU
        return World(d.rank, d.size)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        return Dist(self.rank, self.size).gather(obj)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (used to share rank 0's errors so all ranks stop together)."""
        if self.size == 1:
            return obj

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, items: list) -> list:
        """Deterministic: item i goes to rank i mod size (the same split whatever was done before)."""
        return items[self.rank :: self.size]

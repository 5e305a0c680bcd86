"""torch.distributed for sweeps launched by torchrun (gloo: CPU). Without torchrun it is a
1-process world and every collective is a no-op."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @staticmethod
    def from_env() -> "World":
        """Initialises a gloo process group when torchrun set WORLD_SIZE > 1."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size == 1:
            return World()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return World(dist.get_rank(), dist.get_world_size())

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (used to share rank 0's errors so all ranks stop together)."""
        if self.size == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, items: list) -> list:
        """Deterministic: item i goes to rank i mod size (the same split whatever was done before)."""
        return items[self.rank :: self.size]

"""Per-cell metric state as torchmetrics states that sync across torch.distributed ranks: a sum and
count of per-image values, and one state per key (cell, or cell and category)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import torch
import torchmetrics


class SumCount(torchmetrics.Metric):
    """Sum and count of per-image values (float64 sums, reduced by summation across ranks)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, values: Sequence[float] | torch.Tensor
    ) -> None:  # (B,) values; python floats stay exact in float64
        v = torch.as_tensor(values, dtype=torch.float64)
        self.total += v.sum()
        self.count += v.numel()

    def compute(self) -> tuple[float, int]:
        return float(self.total), int(self.count)


S = TypeVar("S", bound=torchmetrics.Metric)


class KeyedStates(Generic[S]):
    """One torchmetrics state per key (a cell id, or (cell id, category)). Under torch.distributed
    the key sets of all ranks are united first, so every rank syncs the same states in the same
    order (a rank that saw no image of a cell contributes an empty state)."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self.factory = factory
        self.states: dict[Any, S] = {}

    def __getitem__(self, key: Any) -> S:
        if key not in self.states:
            self.states[key] = self.factory()
        return self.states[key]

    def synced_items(self) -> list[tuple[Any, S]]:
        keys = set(self.states)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, sorted(keys, key=repr))
            keys = {k for ks in gathered for k in ks}
        return [(k, self[k]) for k in sorted(keys, key=repr)]

    def reset(self) -> None:
        self.states.clear()

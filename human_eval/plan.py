"""The task plan: every rater rates every prompt once, in their own random order, with sides
randomised per task, split into batches with control trials interleaved at random positions.

Reproducible from the seed: the same sources, prompts and settings give the same plan (order,
sides, controls). Ids (tasks, images) are random and opaque, never derived from the plan.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bench.imagestore import ImageRecord

from .controls import Item, make_control
from .protocols import Protocol


@dataclass(frozen=True)
class PlanSettings:
    raters: int = 25
    batch_size: int = 50
    control_share: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.raters <= 1000:
            raise ValueError(f"raters must be 1..1000, got {self.raters}")
        if not 0.0 <= self.control_share < 0.5:
            raise ValueError(f"control share must be in [0, 0.5), got {self.control_share}")
        if self.batch_size < 2 or (self.control_share > 0 and self.controls_per_batch >= self.batch_size):
            raise ValueError(f"batch size {self.batch_size} leaves no room for ordinary tasks next to "
                             f"{self.controls_per_batch} controls; use a larger --batch-size")

    @property
    def controls_per_batch(self) -> int:
        return math.ceil(self.batch_size * self.control_share) if self.control_share > 0 else 0


@dataclass(frozen=True)
class PlannedTask:
    rater: str
    batch: int  # 1-based
    position: int  # 1-based within the batch
    item: Item
    a_on_left: bool


def rater_names(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"r{i:0{width}d}" for i in range(1, n + 1)]


def items_for(protocol: Protocol, a: dict[str, list[ImageRecord]], b: dict[str, list[ImageRecord]] | None) -> dict[str, Item]:
    """prompt id -> ordinary item, for prompts that have images in every source the protocol needs."""
    ids = sorted(set(a) & set(b), key=_id_key) if b is not None else sorted(a, key=_id_key)
    if not ids:
        raise ValueError("the two sources share no prompt ids; nothing to compare")
    out = {}
    for pid in ids:
        ra, rb = a[pid], (b[pid] if b is not None else [])
        out[pid] = Item(prompt_id=pid, category=ra[0].category, caption=ra[0].prompt, model_a=ra[0].model,
                        model_b=rb[0].model if rb else "", paths_a=tuple(r.path for r in ra), paths_b=tuple(r.path for r in rb))
    return out


def _id_key(pid: str):
    return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)


def plan(protocol: Protocol, items: dict[str, Item], settings: PlanSettings) -> list[PlannedTask]:
    rng = random.Random(settings.seed)
    keys = tuple(q.key for q in protocol.questions)
    n_ctrl = settings.controls_per_batch
    per_batch = settings.batch_size - n_ctrl
    out: list[PlannedTask] = []
    for rater in rater_names(settings.raters):
        order = list(items.values())
        rng.shuffle(order)
        for b, start in enumerate(range(0, len(order), per_batch), start=1):
            chunk = order[start:start + per_batch]
            k = n_ctrl if len(chunk) == per_batch else (
                max(1, math.ceil(len(chunk) * settings.control_share / (1 - settings.control_share))) if n_ctrl else 0)
            controls = [make_control(rng, rng.choice(protocol.control_kinds), protocol.name, keys, rng.choice(order), items)
                        for _ in range(k)]
            batch = chunk + controls
            rng.shuffle(batch)
            out += [PlannedTask(rater, b, p, it, rng.random() < 0.5) for p, it in enumerate(batch, start=1)]
    return out

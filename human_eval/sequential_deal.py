"""The ordinary prompts of a sequential study's batches (one batch per rater, human_eval.sequential).

Prompts are dealt in passes: a pass is every prompt once, in an order stratified by category
(round-robin: category c's i-th prompt, after a shuffle, sits at (i + u_c) / n_c with u_c ~ U(0, 1),
and the pass is sorted by that key, so every stretch of a pass holds the categories in about their
shares). The passes are laid end to end and cut into batches of `per_batch`, so the first
ceil(P / per_batch) batches rate every prompt at least once, and every batch has the same size (a
batch that straddles two passes never holds a prompt twice: a repeat is swapped with a later prompt
of the new pass).
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence


def one_pass(rng: random.Random, keys: Sequence[str], categories: Sequence[str]) -> list[str]:
    by_cat: dict[str, list[str]] = defaultdict(list)
    for key, cat in zip(keys, categories):
        by_cat[cat].append(key)
    placed = []
    for cat in sorted(by_cat):
        members = by_cat[cat]
        rng.shuffle(members)
        u = rng.random()
        placed += [((i + u) / len(members), rng.random(), key) for i, key in enumerate(members)]
    return [key for _, _, key in sorted(placed)]


def deal(rng: random.Random, keys: Sequence[str], categories: Sequence[str], per_batch: int, n_batches: int) -> list[list[str]]:
    """n_batches batches of per_batch distinct keys, dealt in stratified passes."""
    if not 1 <= per_batch <= len(keys):
        raise ValueError(f"a sequential batch holds 1..{len(keys)} ordinary tasks (the study's prompts), got {per_batch}; "
                         "use a smaller --batch-size or more prompts")
    batches: list[list[str]] = []
    chunk: list[str] = []
    while len(batches) < n_batches:
        order = one_pass(rng, keys, categories)
        held = set(chunk)
        need = per_batch - len(chunk)
        for i in range(min(need, len(order))):  # the batch straddling the passes: no prompt twice
            if order[i] in held:
                j = next(j for j in range(need, len(order)) if order[j] not in held)
                order[i], order[j] = order[j], order[i]
        for key in order:
            chunk.append(key)
            if len(chunk) == per_batch:
                batches.append(chunk)
                chunk = []
    return batches[:n_batches]


def batches_per_pass(n_prompts: int, per_batch: int) -> int:
    return math.ceil(n_prompts / per_batch)

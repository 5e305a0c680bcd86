"""The ordinary prompts of a sequential study's batches (one batch per rater, human_eval.sequential).

Prompts are dealt in passes: a pass is every prompt once, in an order stratified by category
(round-robin: category c's i-th prompt, after a shuffle, sits at (i + u_c) / n_c with u_c ~ U(0, 1),
and the pass is sorted by that key, so every stretch of a pass holds the categories in about their
shares). The passes are laid end to end and cut into batches of `per_batch`, so the first
ceil(P / per_batch) batches rate every prompt at least once, and every batch has the same size (a
batch that straddles two passes never holds a prompt twice: a repeat is swapped with a later prompt
of the new pass). Each batch also holds controls_per_batch control tasks drawn from the study's
control pool (human_eval.plan.pool_controls) without repeats inside the batch: with a pool of
share x P prompts and share x batch controls, a control task is as likely to be in a given batch as
an ordinary prompt is (batch / P each), so raters comparing their batches see controls recur exactly
as often as ordinary tasks.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence

from .controls import Item
from .plan import PlannedTask, PlanSettings, rater_names
from .protocols import Protocol
from .sequential import record


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


def deal(
    rng: random.Random, keys: Sequence[str], categories: Sequence[str], per_batch: int, n_batches: int
) -> list[list[str]]:
    """n_batches batches of per_batch distinct keys, dealt in stratified passes."""
    if not 1 <= per_batch <= len(keys):
        raise ValueError(
            f"a sequential batch holds 1..{len(keys)} ordinary tasks (the study's prompts), got {per_batch}; "
            "use a smaller --batch-size or more prompts"
        )
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


def planned(
    rng: random.Random, ordinary: list[Item], controls: list[Item], settings: PlanSettings
) -> list[PlannedTask]:
    """Every rater of the pool one batch (batch 1): ordinary tasks from the passes, controls from the pool, shuffled."""
    k = min(settings.controls_per_batch, len(controls))
    per_batch = settings.batch_size - k
    need = batches_per_pass(len(ordinary), per_batch) if per_batch >= 1 else 0
    if settings.raters < need:
        raise ValueError(
            f"--raters {settings.raters} is the sequential design's cap (one batch each), but one full pass over the "
            f"{len(ordinary)} prompts takes {need} batches of {per_batch}; use --raters {need} or more"
        )
    index = {str(i): it for i, it in enumerate(ordinary)}
    batches = deal(rng, list(index), [it.category for it in ordinary], per_batch, settings.raters)
    out: list[PlannedTask] = []
    for rater, keys in zip(rater_names(settings.raters), batches):
        batch = mixed(rng, [index[key] for key in keys], controls, k)
        out += [PlannedTask(rater, 1, p, it, left) for p, (it, left) in enumerate(batch, start=1)]
    return out


def mixed(rng: random.Random, ordinary: list, controls: list, k: int) -> list[tuple]:
    """One batch as raters meet it, (task, A on the left) in order: the ordinary tasks and k controls
    drawn from the pool, shuffled together, sides at random: how every sequential batch is made (a
    ranking study's too, human_eval.ranking_deal), so nothing in a batch's order marks a control."""
    batch = list(ordinary) + rng.sample(controls, k)
    rng.shuffle(batch)
    return [(it, rng.random() < 0.5) for it in batch]


def sequential_record(protocol: Protocol, settings: PlanSettings, tasks: list[PlannedTask]) -> dict:
    """The sequential plan with what the deal fixed (question, cap, tasks per batch, prompts), for
    the study's recorded settings (human_eval.sequential.recorded reads it back)."""
    sizes = {n for n in (sum(t.rater == r for t in tasks) for r in {t.rater for t in tasks})}
    if len(sizes) != 1:
        raise RuntimeError(f"a sequential deal gave batches of sizes {sorted(sizes)}; every batch must be equal")
    question = settings.sequential.question or protocol.questions[0].key
    n_prompts = len({t.item.prompt_id for t in tasks if not t.item.is_control})
    return record(settings.sequential, question, settings.raters, sizes.pop(), n_prompts)

"""The task plan: which rater rates which prompt, in which order, with sides randomised per task,
split into batches with control trials interleaved at random positions.

Controls (human_eval.controls) come from a control pool: each evaluation sets aside
round(prompts x control_share) of its prompts (at least one; two for alignment-only protocols),
which no one rates as ordinary tasks; every rater of the evaluation gets the same control tasks
made from them (one per prompt, or one per two for an alignment control with a donor), spread
over their batches of that evaluation. So no caption or image repeats in a
rater's queue, and two raters comparing notes see the same controls just as they see the same
ordinary tasks (issue 30). The pool's prompts are listed in study.json (prompts.control).

Designs (protocols.DESIGNS; each protocol has its default, the paper's):
    per_category  each category is its own evaluation (the Imagen paper's DrawBench design): it gets
                  `raters_per_category` raters of the pool (all of them by default), each rates every
                  prompt of the category once; batches never mix categories. Raters are dealt to
                  categories in rotation, so each serves about as many categories as any other.
    all_prompts   every rater rates every prompt once, in their own random order (COCO).
    sequential    A-vs-B protocols: every rater rates ONE batch, dealt from stratified passes over the
                  prompts (human_eval.sequential_deal); the study stops by the pre-registered rule of
                  `sequential` (human_eval.sequential), the pool (--raters) being the cap.

Reproducible from the seed: the same sources, prompts and settings give the same plan (assignment,
order, sides, controls). Ids (tasks, images) are random and opaque, never derived from the plan.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from common.imagestore import ImageRecord

from .controls import Item, alignment, caption_swap, fidelity
from .protocols import DESIGNS, Protocol
from .sequential import SequentialPlan


@dataclass(frozen=True)
class PlanSettings:
    raters: int = 25  # the pool
    batch_size: int = 50
    control_share: float = 0.1
    seed: int = 0
    design: str | None = None  # None: the protocol's (per_category for DrawBench, all_prompts for COCO)
    raters_per_category: int | None = (
        None  # per_category only; None: every rater of the pool (25 by default, the paper's)
    )
    sequential: SequentialPlan | None = (
        None  # the sequential design's stopping plan (that design only, and required there)
    )

    def __post_init__(self):
        if not 1 <= self.raters <= 1000:
            raise ValueError(f"raters must be 1..1000, got {self.raters}")
        if not 0.0 <= self.control_share < 0.5:
            raise ValueError(f"control share must be in [0, 0.5), got {self.control_share}")
        if self.batch_size < 2 or (self.control_share > 0 and self.controls_per_batch >= self.batch_size):
            raise ValueError(
                f"batch size {self.batch_size} leaves no room for ordinary tasks next to "
                f"{self.controls_per_batch} controls; use a larger --batch-size"
            )
        if self.design is not None and self.design not in DESIGNS:
            raise ValueError(f"design must be one of {', '.join(DESIGNS)}, got {self.design!r}")
        if self.raters_per_category is not None:
            if self.design == "all_prompts":
                raise ValueError("raters per category applies to the per_category design only")
            if not 1 <= self.raters_per_category <= self.raters:
                raise ValueError(
                    f"raters per category must be in [1, {self.raters}] (the pool, --raters), got {self.raters_per_category}"
                )
        if (self.design == "sequential") != (self.sequential is not None):
            raise ValueError(
                "a sequential plan (alpha, half width, looks) goes with --design sequential, and that design needs one"
            )

    @property
    def controls_per_batch(self) -> int:
        return math.ceil(self.batch_size * self.control_share) if self.control_share > 0 else 0

    def design_for(self, protocol: Protocol) -> str:
        design = self.design or protocol.design
        if self.raters_per_category is not None and design != "per_category":
            raise ValueError(f"raters per category applies to the per_category design; {protocol.name} uses {design}")
        if design == "sequential":
            keys = [q.key for q in protocol.questions]
            if protocol.layout != "pair":
                raise ValueError(
                    f"the sequential design compares A with B; {protocol.name} rates one image (use drawbench_sbs or coco_realism)"
                )
            if self.sequential.question is not None and self.sequential.question not in keys:
                raise ValueError(
                    f"sequential question must be one of {', '.join(keys)} ({protocol.name}), got {self.sequential.question!r}"
                )
        return design


@dataclass(frozen=True)
class PlannedTask:
    rater: str
    batch: int  # 1-based, per rater
    position: int  # 1-based within the batch
    item: Item
    a_on_left: bool


def rater_names(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"r{i:0{width}d}" for i in range(1, n + 1)]


def items_for(
    protocol: Protocol, a: dict[str, list[ImageRecord]], b: dict[str, list[ImageRecord]] | None
) -> dict[str, Item]:
    """item key -> ordinary item, for prompts that have images in every source the protocol needs.
    Pair protocols: one item per prompt (key: prompt id) with A's and B's images. A single-image
    protocol with a second source (coco_alignment with the reference) rates each source's image in a
    task of its own: two items per prompt, keys "<prompt id>/a" and "<prompt id>/b"."""
    ids = sorted(set(a) & set(b), key=_id_key) if b is not None else sorted(a, key=_id_key)
    if not ids:
        raise ValueError("the two sources share no prompt ids; nothing to compare")
    out = {}
    for pid in ids:
        ra, rb = a[pid], (b[pid] if b is not None else [])
        if protocol.layout == "single":
            for side, recs in (("a", ra), ("b", rb)) if rb else (("", ra),):
                out[f"{pid}/{side}" if side else pid] = Item(
                    prompt_id=pid,
                    category=recs[0].ref.category,
                    caption=recs[0].ref.prompt,
                    model_a=recs[0].model,
                    model_b="",
                    paths_a=tuple(r.path for r in recs),
                    paths_b=(),
                )
            continue
        out[pid] = Item(
            prompt_id=pid,
            category=ra[0].ref.category,
            caption=ra[0].ref.prompt,
            model_a=ra[0].model,
            model_b=rb[0].model if rb else "",
            paths_a=tuple(r.path for r in ra),
            paths_b=tuple(r.path for r in rb),
        )
    return out


def _id_key(pid: str):
    return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)


def assignment(protocol: Protocol, items: dict[str, Item], settings: PlanSettings) -> dict[str, list[str]]:
    """Evaluation -> its raters: one evaluation per category (per_category) or one of all prompts
    ("all"). Category c of C gets raters c*k, c*k+1, ... (mod the pool) for k raters per category."""
    pool = rater_names(settings.raters)
    if settings.design_for(protocol) in ("all_prompts", "sequential"):
        return {"all": pool}
    k = settings.raters_per_category or len(pool)
    categories = sorted({it.category for it in items.values()})
    check_pool_used(len(pool), k, len(categories))
    return {
        c: sorted((pool[(i * k + j) % len(pool)] for j in range(k)), key=pool.index) for i, c in enumerate(categories)
    }


def check_pool_used(raters: int, per_category: int, categories: int) -> None:
    """Refuse a pool larger than the seats the categories have: raters beyond them would get no task,
    and the study would silently have fewer raters than --raters says."""
    seats = per_category * categories
    if seats < raters:
        raise ValueError(
            f"--raters {raters} with --raters-per-category {per_category}: {categories} "
            f"categor{'y' if categories == 1 else 'ies'} x {per_category} give work to only {seats}, so "
            f"{raters - seats} raters would get no task; use --raters {seats}, or --raters-per-category "
            f"{math.ceil(raters / categories)} to give all {raters} work"
        )


def pool_size(n: int, share: float, kinds: tuple[str, ...], evaluation: str) -> int:
    """Prompts an evaluation of `n` sets aside for controls."""
    if share == 0:
        return 0
    h = max(1, round(n * share))
    if kinds == ("alignment",):  # one-image alignment controls come in pairs (two prompts swap images)
        h = max(2, h + h % 2)
    if n - h < 1:
        raise ValueError(
            f"evaluation {evaluation!r} has {n} prompt(s): none left to rate after {h} control prompt(s); "
            "lower --control-share (0 for no controls) or give more prompts"
        )
    return h


def pool_controls(
    rng: random.Random, protocol: Protocol, members: list[Item], share: float, evaluation: str
) -> tuple[list[Item], list[Item]]:
    """(the evaluation's ordinary items, its control items made from the pool set aside). Pair
    protocols with both kinds: a fidelity control uses one pool prompt, an alignment control two
    (its own and a donor's); about a third of their controls are alignment controls."""
    h = pool_size(len(members), share, protocol.control_kinds, evaluation)
    pair = protocol.layout == "pair"
    n_ali = (
        0
        if "alignment" not in protocol.control_kinds
        else h // 2
        if "fidelity" not in protocol.control_kinds
        else h // 4
    )
    n_fid = h - 2 * n_ali if "fidelity" in protocol.control_kinds else 0
    keys = tuple(q.key for q in protocol.questions)
    for _ in range(
        50
    ):  # an alignment control needs two different prompts (coco_alignment rates a prompt's two images apart)
        pool = rng.sample(members, h)
        pairs = list(zip(pool[n_fid : n_fid + n_ali], pool[n_fid + n_ali :]))
        if all(x.prompt_id != y.prompt_id for x, y in pairs):
            break
    else:
        raise ValueError(
            f"evaluation {evaluation!r}: its prompts cannot make alignment controls from two different prompts"
        )
    controls = [fidelity(rng, it, keys) for it in pool[:n_fid]]
    for own, other in pairs:
        controls += [alignment(rng, own, other)] if pair else list(caption_swap(own, other))
    chosen = {id(it) for it in pool}
    return [it for it in members if id(it) not in chosen], controls


def _sizes(n: int, k: int, rng: random.Random) -> list[int]:
    """`n` things in `k` parts whose sizes differ by at most one, the larger parts at random places."""
    q, r = divmod(n, k)
    sizes = [q + 1] * r + [q] * (k - r)
    rng.shuffle(sizes)
    return sizes


def _batches(ordinary: list[Item], controls: list[Item], batch_size: int, rng: random.Random) -> list[list[Item]]:
    """One evaluation's tasks in batches of near-equal size (at most `batch_size`), controls spread evenly."""
    n = math.ceil((len(ordinary) + len(controls)) / batch_size)
    out, o, c = [], 0, 0
    for size, k in zip(_sizes(len(ordinary) + len(controls), n, rng), _sizes(len(controls), n, rng)):
        batch = ordinary[o : o + size - k] + controls[c : c + k]
        o, c = o + size - k, c + k
        rng.shuffle(batch)
        out.append(batch)
    return out


def plan(protocol: Protocol, items: dict[str, Item], settings: PlanSettings) -> list[PlannedTask]:
    rng = random.Random(settings.seed)
    evaluations = assignment(protocol, items, settings)
    pools = {
        ev: pool_controls(
            rng,
            protocol,
            [it for it in items.values() if ev == "all" or it.category == ev],
            settings.control_share,
            ev,
        )
        for ev in evaluations
    }
    if settings.design_for(protocol) == "sequential":
        from .sequential_deal import planned

        return planned(rng, *pools["all"], settings)
    out: list[PlannedTask] = []
    for rater in rater_names(settings.raters):
        mine = [ev for ev, raters in evaluations.items() if rater in raters]
        rng.shuffle(mine)  # the order a rater meets their categories in
        b = 0
        for ev in mine:  # a batch never spans two evaluations
            ordinary, controls = list(pools[ev][0]), list(pools[ev][1])
            rng.shuffle(ordinary)
            rng.shuffle(controls)
            for batch in _batches(ordinary, controls, settings.batch_size, rng):
                b += 1
                out += [PlannedTask(rater, b, p, it, rng.random() < 0.5) for p, it in enumerate(batch, start=1)]
    return out

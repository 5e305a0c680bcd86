"""Sampling a (scene, caption) pair: deterministic in (split, category, index).

Each item has its own numpy Generator seeded with (split id, category id, index), so item i of a
split is always the same and never depends on which other items were drawn.

Splits: train and validation never contain a HELD_OUT colour x shape pair (in images or captions);
in test, half the items are forced to contain one held-out pair and the rest draw from all 18
pairs, so about 2/3 of test prompts name a held-out pair (133 of the 200 confirmation prompts) and
test prompts measure composition (grammar.pair_group splits them). Validation is in-distribution
(train's distribution, different seeds).
"""

from __future__ import annotations

import numpy as np

from .grammar import Caption, Phrase
from .scene import (
    BACKGROUNDS,
    CATEGORIES,
    COLORS,
    EDGE,
    GAP,
    HELD_OUT,
    RELATIONS,
    SHAPES,
    SIZES,
    SPLITS,
    Obj,
    Scene,
    check_name,
)

ALL_PAIRS = tuple((c, s) for c in COLORS for s in SHAPES)
# A relation is drawn with the main-axis centre distance >= 2x the cross-axis distance (and a clear
# gap between the boxes on the main axis), so "left of" is unambiguous; the verifier only needs the
# main axis to dominate (see verify.relation_holds).
DOMINANCE = 2.0
_CANDIDATES = 64  # positions tried at once per object (vectorised rejection sampling)


def item_rng(split: str, category: str, index: int) -> np.random.Generator:
    check_name("split", split, SPLITS)
    check_name("category", category, CATEGORIES)
    return np.random.default_rng([SPLITS.index(split), CATEGORIES.index(category), int(index)])


def _pairs(rng: np.random.Generator, split: str, k: int) -> list[tuple[str, str]]:
    """k distinct colour x shape pairs for this split (test: half the time one is held out)."""
    allowed = [p for p in ALL_PAIRS if split == "test" or p not in HELD_OUT]
    chosen: list[tuple[str, str]] = []
    if split == "test" and rng.random() < 0.5:
        held = sorted(HELD_OUT)
        chosen.append(held[rng.integers(len(held))])
    rest = [p for p in allowed if p not in chosen and p not in HELD_OUT] if chosen else allowed
    chosen += [rest[i] for i in rng.choice(len(rest), size=k - len(chosen), replace=False)]
    return [chosen[i] for i in rng.permutation(k)]


def _relation_ok(a: np.ndarray, b: np.ndarray, relation: str, need: float) -> np.ndarray:
    """a: (2,) centre of the subject, b: (N, 2) candidate centres of the object of the relation."""
    d = b - a  # subject "left of" object <=> object is to the right: d_x > 0
    axis, sign = {"left of": (0, 1), "right of": (0, -1), "above": (1, 1), "below": (1, -1)}[relation]
    main, cross = sign * d[:, axis], np.abs(d[:, 1 - axis])
    return (main >= need) & (main >= DOMINANCE * cross)


def place(rng: np.random.Generator, sides: list[float], relation: str | None = None, tries: int = 500) -> np.ndarray:
    """(k, 2) centres: inside the canvas with an EDGE margin, boxes separated by >= GAP on some axis,
    and (with a relation) object 0 REL object 1. Sequential rejection sampling with restarts."""
    for _ in range(tries):
        pts: list[np.ndarray] = []
        for s in sides:
            lo, hi = EDGE + s / 2, 1 - EDGE - s / 2
            cand = rng.uniform(lo, hi, size=(_CANDIDATES, 2))
            ok = np.ones(_CANDIDATES, bool)
            for p, ps in zip(pts, sides):
                need = (s + ps) / 2 + GAP
                ok &= (np.abs(cand[:, 0] - p[0]) >= need) | (np.abs(cand[:, 1] - p[1]) >= need)
            if relation is not None and len(pts) == 1:
                ok &= _relation_ok(pts[0], cand, relation, (s + sides[0]) / 2 + GAP)
            hits = np.flatnonzero(ok)
            if not hits.size:
                break
            pts.append(cand[hits[0]])
        else:
            return np.array(pts)
    raise RuntimeError(f"could not place objects of sides {sides} ({relation}) in {tries} tries")


def _size(rng: np.random.Generator) -> str:
    return tuple(SIZES)[rng.integers(len(SIZES))]


def sample_item(split: str, category: str, index: int) -> tuple[Scene, Caption]:
    rng = item_rng(split, category, index)
    background = tuple(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    relation = None
    if category == "Counting":
        n = int(rng.integers(1, 5))
        pairs = _pairs(rng, split, 1) * n
        # three or four large objects rarely fit with clear gaps; size is not claimed here anyway
        sizes = [_size(rng) for _ in range(n)] if n <= 2 else ["small"] * n
    else:
        k = {"Colors": int(rng.integers(2, 4)), "Positional": 2, "Descriptions": 1 if rng.random() < 0.25 else 2}[
            category
        ]
        pairs = _pairs(rng, split, k)
        sizes = [_size(rng) for _ in range(k)]
        if k == 2 and category in ("Positional", "Descriptions"):
            relation = RELATIONS[rng.integers(len(RELATIONS))]
    centres = place(rng, [SIZES[s] for s in sizes], relation)
    objects = tuple(
        Obj(shape, color, size, float(x), float(y)) for (color, shape), size, (x, y) in zip(pairs, sizes, centres)
    )
    scene = Scene(background, objects)
    if category == "Counting":
        caption = Caption(category, (Phrase(*pairs[0]),), count=len(objects))
    elif category == "Descriptions":
        phrases = tuple(Phrase(o.color, o.shape, o.size) for o in objects)
        caption = Caption(category, phrases, relation=relation, background=background)
    else:
        caption = Caption(category, tuple(Phrase(o.color, o.shape) for o in objects), relation=relation)
    return scene, caption


def relation_scene(rng: np.random.Generator, caption: Caption) -> Scene:
    """A random scene a two-phrase relation caption describes: its colours and shapes, the named
    sizes (else random), the named background (else random), object 0 REL object 1; the
    caption-conditional distribution used to measure what knowing the direction is worth."""
    if caption.relation is None or len(caption.phrases) != 2:
        raise ValueError(f"relation_scene needs a caption 'A REL B', got {caption}")
    background = caption.background or tuple(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    sizes = [p.size or _size(rng) for p in caption.phrases]
    centres = place(rng, [SIZES[s] for s in sizes], caption.relation)
    return Scene(
        background,
        tuple(Obj(p.shape, p.color, s, float(x), float(y)) for p, s, (x, y) in zip(caption.phrases, sizes, centres)),
    )

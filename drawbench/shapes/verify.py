"""The exact verifier: parse a caption into claims, detect the objects, check every claim.

Claim semantics (captions are generated to describe the whole scene, so all are exhaustive):
  "there is a red circle"            some detected object has that colour and shape (and size, in
                                     Descriptions, where sizes are named)
  "exactly 3 yellow triangles"       Counting: the number of yellow triangles is exactly 3
  "the X is to the left of the Y"    some X and some other Y with Y's centre to the right of X's and
                                     the horizontal offset larger than the vertical one (the main
                                     axis dominates; generation draws relations with >= 2x dominance)
  "the background is white"          Descriptions only
  "nothing else in the image"        every caption: the detected objects are exactly the mentioned
                                     ones, as a multiset of (colour, shape[, size]); so no extra
                                     objects, and "a red circle and a red circle" means two of them
A prompt is correct when all its claims pass. The same claim checker runs on ground-truth scenes
(`scene_claims`), which is how perturbed captions are known to be false.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .detect import Detection, detect
from .grammar import RELATION_TEXT, Caption, Phrase, parse_caption
from .scene import CATEGORIES, Scene


@dataclass(frozen=True)
class Verification:
    caption: str
    category: str
    claims: tuple[tuple[str, bool], ...]
    objects: tuple[Detection, ...]  # what the detector found
    background: str | None
    correct: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "correct", all(ok for _, ok in self.claims))


def _offsets(a, b, relation: str) -> tuple[float, float]:
    """(along, across): b's offset from a along the relation's direction (> 0: b on the side
    "a REL b" asks for) and its absolute offset on the other axis; centre fractions .x, .y (y down)."""
    dx, dy = b.x - a.x, b.y - a.y
    return {"left of": (dx, abs(dy)), "right of": (-dx, abs(dy)), "above": (dy, abs(dx)), "below": (-dy, abs(dx))}[
        relation
    ]


def relation_holds(a, b, relation: str) -> bool:
    """a REL b: b lies on the asked side and the named axis dominates."""
    along, across = _offsets(a, b, relation)
    return along > across


def _matches(p: Phrase, objects: Sequence) -> list:
    return [o for o in objects if o.color == p.color and o.shape == p.shape and (p.size is None or o.size == p.size)]


def relation_direction(v: Verification) -> str | None:
    """For a caption with a relation: "right-way" when the first named object lies on the asked
    side of the second along the relation's axis, "reversed" when on the other side, "missing" when
    either is not found; None for captions without a relation. (Finer than the relation claim:
    it separates a swapped pair from a misplaced one, chance being 50/50.)"""
    c = parse_caption(v.caption)
    if c.relation is None:
        return None
    first, second = (_matches(p, v.objects) for p in c.phrases)
    if not first or not second:
        return "missing"
    along, _ = _offsets(first[0], second[0], c.relation)
    return "right-way" if along > 0 else "reversed"


def check_claims(c: Caption, objects: Sequence, background: str | None) -> tuple[tuple[str, bool], ...]:
    """Claims of a parsed caption against objects with .color .shape .size .x .y (detections or
    ground-truth scene objects)."""
    claims: list[tuple[str, bool]] = []
    if c.category == "Counting":
        p = c.phrases[0]
        claims.append(
            (
                f"exactly {c.count} {p.color} {p.shape}{'s' if c.count > 1 else ''}",
                len(_matches(p, objects)) == c.count,
            )
        )
    else:
        claims += [(f"there is {p.text()}", bool(_matches(p, objects))) for p in c.phrases]
    if c.relation is not None:
        first, second = (_matches(p, objects) for p in c.phrases)
        ok = any(a is not b and relation_holds(a, b, c.relation) for a in first for b in second)
        claims.append((f"{c.phrases[0].noun()} is {RELATION_TEXT[c.relation]} {c.phrases[1].noun()}", ok))
    if c.background is not None:
        claims.append((f"the background is {c.background}", background == c.background))
    sized = c.phrases[0].size is not None
    named = Counter((p.color, p.shape, p.size) for p in c.phrases for _ in range(c.count or 1))
    seen = Counter((o.color, o.shape, o.size if sized else None) for o in objects)
    claims.append(("nothing else in the image", seen == named))
    return tuple(claims)


def verify(image, caption: str) -> Verification:
    """Check a caption against an image (PIL or uint8 HxWx3, >= 32 px). ValueError for a caption
    outside the grammar or an unusable image."""
    parsed = parse_caption(caption)
    background, objects = detect(image)
    return Verification(caption, parsed.category, check_claims(parsed, objects, background), objects, background)


def scene_claims(scene: Scene, caption: str) -> tuple[tuple[str, bool], ...]:
    """Ground truth: the caption's claims evaluated on the scene itself."""
    return check_claims(parse_caption(caption), scene.objects, scene.background)


def accuracy(verifications: Iterable[Verification]) -> dict:
    """{category | "overall": {n_prompts, prompt_accuracy, n_claims, claim_accuracy}}: the share of
    prompts whose claims all pass, and the share of individual claims that pass."""
    groups: dict[str, list[Verification]] = {}
    for v in verifications:
        groups.setdefault(v.category, []).append(v)
        groups.setdefault("overall", []).append(v)
    out = {}
    for name in [*CATEGORIES, "overall"]:
        vs = groups.get(name, [])
        claims = [ok for v in vs for _, ok in v.claims]
        out[name] = {
            "n_prompts": len(vs),
            "prompt_accuracy": sum(v.correct for v in vs) / len(vs) if vs else None,
            "n_claims": len(claims),
            "claim_accuracy": sum(claims) / len(claims) if claims else None,
        }
    return out

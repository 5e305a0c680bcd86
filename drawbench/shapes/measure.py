"""How good is the verifier? Agreement with ground truth on renders, clean and degraded the way
diffusion output is (mild blur + Gaussian noise), and how often it accepts a WRONG caption.

Degradation: Gaussian blur of radius U(0.5, 1.0) px at 64^2 (scaled with the size: 2-4 px at
256^2, the same blur relative to the picture), then N(0, 8/255) noise per channel, rounded to uint8.

Wrong captions (each made from the item's true caption, kept only if false on the ground-truth
scene, checked with the same claim semantics): another item's caption ("other_scene"), one colour
changed ("colour"), one shape changed ("shape"), Counting n -> n +- 1 ("count"), relation flipped
left<->right / above<->below ("relation"), one size swapped in a description ("size").
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from PIL import Image, ImageFilter

from .dataset import split_item
from .detect import detect
from .grammar import Caption, Phrase, format_caption
from .render import render_scene
from .scene import COLORS, SHAPES, SIZES
from .verify import Verification, accuracy, check_claims

BLUR_RADIUS_AT_64 = (0.5, 1.0)
NOISE_SIGMA = 8.0  # of 255
FLIP = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def degrade(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    radius = rng.uniform(*BLUR_RADIUS_AT_64) * image.width / 64
    arr = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), np.float32)
    arr = arr + rng.normal(0.0, NOISE_SIGMA, arr.shape)
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def _other(values, current: str, rng: np.random.Generator) -> str:
    choices = [v for v in values if v != current]
    return choices[rng.integers(len(choices))]


def perturb(c: Caption, other: Caption, rng: np.random.Generator) -> dict[str, Caption]:
    """Wrong versions of caption c, by kind (only the kinds that apply to its category)."""
    j = int(rng.integers(len(c.phrases)))
    p = c.phrases[j]

    def with_phrase(new: Phrase) -> Caption:
        return dataclasses.replace(c, phrases=c.phrases[:j] + (new,) + c.phrases[j + 1 :])

    out = {
        "other_scene": other,
        "colour": with_phrase(dataclasses.replace(p, color=_other(COLORS, p.color, rng))),
        "shape": with_phrase(dataclasses.replace(p, shape=_other(SHAPES, p.shape, rng))),
    }
    if c.count is not None:
        out["count"] = dataclasses.replace(
            c, count=c.count + 1 if c.count == 1 or (c.count < 4 and rng.random() < 0.5) else c.count - 1
        )
    if c.relation is not None:
        out["relation"] = dataclasses.replace(c, relation=FLIP[c.relation])
    if p.size is not None:
        out["size"] = with_phrase(dataclasses.replace(p, size=_other(SIZES, p.size, rng)))
    return out


def _rates(counts: dict[str, list[int]]) -> dict:
    """counts: kind -> [accepted, total] -> {kind: {n, false_accept_rate}} plus "overall"."""
    out = {k: {"n": t, "false_accept_rate": a / t if t else None} for k, (a, t) in sorted(counts.items())}
    a, t = (sum(v[i] for v in counts.values()) for i in (0, 1))
    out["overall"] = {"n": t, "false_accept_rate": a / t if t else None}
    return out


def measure_size(n: int, size: int, seed: int = 0, split: str = "test") -> dict:
    """Verifier vs ground truth on items 0..n-1 of a split rendered at `size`."""
    rng = np.random.default_rng([seed, size])
    results: dict[str, dict] = {}
    verdicts: dict[str, list[Verification]] = {"clean": [], "degraded": []}
    wrong: dict[str, dict[str, list[int]]] = {"clean": {}, "degraded": {}}
    skipped_true = 0
    t0 = time.perf_counter()
    for i in range(n):
        scene, caption = split_item(split, i)
        perturbed = perturb(caption, split_item(split, (i + 1) % n if n > 1 else i + 1)[1], rng)
        image = render_scene(scene, size)
        for condition, pixels in (("clean", image), ("degraded", degrade(image, rng))):
            background, objects = detect(pixels)
            text = format_caption(caption)
            verdicts[condition].append(
                Verification(text, caption.category, check_claims(caption, objects, background), objects, background)
            )
            for kind, bad in perturbed.items():
                if all(ok for _, ok in check_claims(bad, scene.objects, scene.background)):
                    skipped_true += condition == "clean"  # e.g. another scene with the same caption
                    continue
                accepted = all(ok for _, ok in check_claims(bad, objects, background))
                tally = wrong[condition].setdefault(kind, [0, 0])
                tally[0] += accepted
                tally[1] += 1
    for condition in verdicts:
        results[condition] = {"agreement": accuracy(verdicts[condition]), "false_accept": _rates(wrong[condition])}
    results["perturbations_true_of_scene_skipped"] = skipped_true
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results

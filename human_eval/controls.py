"""Control trials: tasks with a known right answer, shown exactly like ordinary tasks (same
protocol, same layout, same image encoding and serving: human_eval.serving).

Controls are made from a control pool: per evaluation, a few of its prompts are set aside and
never rated as ordinary tasks (human_eval.plan). Every rater of the evaluation gets the same
control tasks, as every rater gets the same ordinary tasks, so nothing a client receives tells a
control apart, for one rater or for raters comparing notes (issue 30): no caption or image a rater
sees in a control appears anywhere else in their queue, and a colluding rater sees the very same
task, not a different version of it.

- fidelity control (pair protocols): a pool prompt's images from one source beside the OTHER
  source's images of that prompt, degraded (Gaussian blur + noise). Right answer: the clean side
  ("A") for every question. Two different images side by side, as in an ordinary task (a copy of
  the same image on both sides was itself a fingerprint).
- alignment control: pair protocols: a pool prompt P's caption with its images from one source
  beside a second pool prompt Q's images from the other source; Q's caption and its first
  source's images are never shown (two models' images of one prompt can be near-identical, e.g.
  SD v1.4 and v1.5 from one seed, so showing both in two tasks would link them). Right answer: the
  matching set ("A") on the alignment question (the quality answer has no right answer: kept in
  the database, left out of the export frame). coco_alignment: two pool prompts swap images (P's
  caption with Q's image and the other way round); right answer "no". Each pool image is shown
  at most once.

In a control, model_a is the correct side and model_b names the control (`control:degraded`,
`control:unrelated`), so the de-randomised answer "A" is the right one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

CONTROL_KINDS = ("alignment", "fidelity")
DEGRADED = "control:degraded"
UNRELATED = "control:unrelated"


@dataclass(frozen=True)
class DegradeSettings:
    blur_fraction: float = 0.04  # Gaussian blur radius as a fraction of the image width (20 px at 512)
    # additive Gaussian noise, 0..255 units. The served size no longer depends on it (every image is
    # padded to one length), so it only needs to make the copy look bad, not to match a file size.
    noise_std: float = 12.0


@dataclass(frozen=True)
class Item:
    """A planned task before it gets ids: which source images go on which side."""

    prompt_id: str
    category: str
    caption: str
    model_a: str
    model_b: str
    paths_a: tuple[Path, ...]
    paths_b: tuple[Path, ...]
    is_control: bool = False
    control_kind: str = ""
    expected: tuple[tuple[str, str], ...] = ()
    degrade_b: bool = False  # paths_b are shown through `degrade`


def degrade(src: Path, seed: int, settings: DegradeSettings = DegradeSettings()) -> Image.Image:
    """A heavily blurred, noisy copy of `src`, same size (encoded by the caller like every image)."""
    with Image.open(src) as im:
        rgb = im.convert("RGB")
    blurred = np.asarray(
        rgb.filter(ImageFilter.GaussianBlur(radius=max(1.0, settings.blur_fraction * rgb.width))), dtype=np.float32
    )
    noise = np.random.default_rng(seed).normal(0.0, settings.noise_std, size=blurred.shape).astype(np.float32)
    return Image.fromarray(np.clip(blurred + noise, 0, 255).astype(np.uint8))


def fidelity(rng: random.Random, item: Item, question_keys: tuple[str, ...]) -> Item:
    """One source's images kept clean beside the other source's images of the prompt, degraded."""
    flip = rng.random() < 0.5
    model, clean, other = (
        (item.model_b, item.paths_b, item.paths_a) if flip else (item.model_a, item.paths_a, item.paths_b)
    )
    return replace(
        item,
        model_a=model,
        model_b=DEGRADED,
        paths_a=clean,
        paths_b=other,
        degrade_b=True,
        is_control=True,
        control_kind="fidelity",
        expected=tuple((q, "A") for q in question_keys),
    )


def alignment(rng: random.Random, own: Item, donor: Item) -> Item:
    """Pair protocols: `own`'s caption and images from one source beside `donor`'s images from the other."""
    if own.prompt_id == donor.prompt_id:
        raise ValueError(f"an alignment control needs two different prompts, got {own.prompt_id!r} twice")
    on_b = (
        rng.random() < 0.5
    )  # the matching set comes from source b (the unrelated one from a), or the other way round
    return replace(
        own,
        model_a=own.model_b if on_b else own.model_a,
        model_b=UNRELATED,
        paths_a=own.paths_b if on_b else own.paths_a,
        paths_b=donor.paths_a if on_b else donor.paths_b,
        is_control=True,
        control_kind="alignment",
        expected=(("alignment", "A"),),
    )


def caption_swap(x: Item, y: Item) -> tuple[Item, Item]:
    """One-image protocols: each caption with the other prompt's image (right answer "no")."""
    if x.prompt_id == y.prompt_id:
        raise ValueError(f"an alignment control needs two different prompts, got {x.prompt_id!r} twice")
    return tuple(
        replace(
            own,
            model_a=other.model_a,
            model_b="",
            paths_a=other.paths_a,
            paths_b=(),
            is_control=True,
            control_kind="alignment",
            expected=(("caption", "no"),),
        )
        for own, other in ((x, y), (y, x))
    )

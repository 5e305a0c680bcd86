"""Control trials: tasks with a known right answer, built automatically and shown exactly like
ordinary tasks (same protocol, same layout, opaque ids).

- alignment control: the prompt paired with images the same model made for an UNRELATED prompt
  (another category where possible). Right answer: the matching set ("A"), or "no" for
  coco_alignment. A side-by-side alignment control scores only the alignment question; its quality
  answer has no right answer: it is kept in the database but left out of the export frame.
- fidelity control: a set paired with a heavily degraded copy of itself (Gaussian blur + noise).
  Right answer: the non-degraded set ("A") for every question of the protocol.

In a control, model_a is the correct side and model_b names the control (`control:degraded`,
`control:unrelated`), so the de-randomised answer "A" is the right one.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

CONTROL_KINDS = ("alignment", "fidelity")
DEGRADED = "control:degraded"
UNRELATED = "control:unrelated"


@dataclass(frozen=True)
class DegradeSettings:
    blur_fraction: float = 0.04  # Gaussian blur radius as a fraction of the image width (20 px at 512)
    noise_std: float = 40.0  # additive Gaussian noise, in 0..255 units


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
    degrade_b: bool = False  # paths_b are copied through `degrade`


def degrade(src: Path, dst: Path, seed: int, settings: DegradeSettings = DegradeSettings()) -> dict:
    """A heavily blurred, noisy copy of `src` with the same size and format (decided by dst's suffix),
    encoded to about the same number of bytes as `src`: a control must not stand out by its file size
    (noise alone made degraded copies 3-40x larger than their originals, visible in Content-Length).
    The blur is always the full `blur_fraction`; the noise level (PNG) or noise and JPEG quality are
    chosen from a fixed ladder as the encoding whose size is closest to the source's. Returns them."""
    import io

    with Image.open(src) as im:
        rgb = im.convert("RGB")
    target = src.stat().st_size
    blurred = np.asarray(rgb.filter(ImageFilter.GaussianBlur(radius=max(1.0, settings.blur_fraction * rgb.width))), dtype=np.float32)
    unit = np.random.default_rng(seed).normal(0.0, 1.0, size=(rgb.height, rgb.width, 3)).astype(np.float32)
    jpeg = dst.suffix.lower() in (".jpg", ".jpeg")
    noises = sorted({settings.noise_std * f for f in (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)})
    best = None
    for noise in noises:
        img = Image.fromarray(np.clip(blurred + noise * unit, 0, 255).astype(np.uint8))
        for quality in ((95, 90, 75, 60, 45, 30, 15) if jpeg else (None,)):
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality) if jpeg else img.save(buf, format="PNG")
            gap = abs(buf.tell() - target)
            if best is None or gap < best[0]:
                best = (gap, buf.getvalue(), {"noise_std": round(noise, 2), "jpeg_quality": quality, "bytes": buf.tell(),
                                             "source_bytes": target})
    dst.write_bytes(best[1])
    return best[2]


def _unrelated(rng: random.Random, item: Item, pool: dict[str, Item]) -> Item:
    """An item of another prompt, from another category when there is one."""
    others = [o for _, o in sorted(pool.items()) if o.prompt_id != item.prompt_id]
    if not others:
        raise ValueError("alignment controls need at least 2 prompts with images")
    elsewhere = [o for o in others if o.category != item.category]
    return rng.choice(elsewhere or others)


def make_control(rng: random.Random, kind: str, protocol: str, question_keys: tuple[str, ...],
                 base: Item, pool: dict[str, Item]) -> Item:
    """A control task of `kind` built from the ordinary item `base` (prompt and model images)."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control kind {kind!r}; choose from {', '.join(CONTROL_KINDS)}")
    use_b = protocol == "drawbench_sbs" and rng.random() < 0.5  # whose images the control is built from
    model, paths = (base.model_b, base.paths_b) if use_b else (base.model_a, base.paths_a)
    common = dict(prompt_id=base.prompt_id, category=base.category, caption=base.caption, is_control=True, control_kind=kind)
    if kind == "fidelity":
        return Item(model_a=model, model_b=DEGRADED, paths_a=paths, paths_b=paths, degrade_b=True,
                    expected=tuple((q, "A") for q in question_keys), **common)
    other = _unrelated(rng, base, pool)
    other_paths = other.paths_b if use_b else other.paths_a
    if protocol == "coco_alignment":
        return Item(model_a=model, model_b="", paths_a=other_paths, paths_b=(), expected=(("caption", "no"),), **common)
    return Item(model_a=model, model_b=UNRELATED, paths_a=paths, paths_b=other_paths, expected=(("alignment", "A"),), **common)

"""Does a shapes base follow word order? Sample each relation caption and its swap with the same seed.

    python -m bench.diagnostics.swap_check imagen/weights/shapes [--stage base=DIR] [--n 64] [--base-guidance 5]

Captions: the first n Positional captions of the validation split (trained colour x shape pairs
only, so composition does not interfere). For each, the base samples "A rel B" and "B rel A" with
the same seed; the verifier (16^2 output nearest-upsampled to 64^2, as stage_check's base row) says
for each image whether the first named object is on the asked side (verify.relation_direction).
A base that ignores the order keeps the layout under the swap, so right-way(caption) +
right-way(swap) is about n; one that follows the order gets about 2n. Sampling as stage_check:
static thresholding, DDPM 32 steps, seeds = caption index.

--loss-times 0.7,0.95 adds the training-side view: the base's x0 error on the captions' own
scenes at those diffusion times with the true caption, its swap and no text (same noise for all),
next to what a perfect model gains from knowing the direction at pure noise (t = 1: the best guess
is the caption's mean image; `ideal_direction_gain`).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from drawbench.shapes.dataset import split_item
from drawbench.shapes.generate import relation_scene
from drawbench.shapes.grammar import format_caption, parse_caption
from drawbench.shapes.render import render_scene
from drawbench.shapes.verify import relation_direction, verify
from imagen.checkpoint import load_cascade
from imagen.conditioning import to_uint8
from imagen.data import image_to_tensor
from imagen.diffusion import q_sample, x0_from_prediction
from imagen.guidance import Thresholding
from imagen.pipeline import Cascade, Runtime, StageSampling
from imagen.schedule import make_logsnr

from .order_check import swapped
from .stage_check import run_stage, stage_arg, with_stage


def relation_captions(n: int) -> list[str]:
    """The first n Positional captions of the validation split (item 4k + 2 is Positional)."""
    return [format_caption(split_item("validation", 4 * k + 2)[1]) for k in range(n)]


def swap_check(
    cascade: Cascade, n: int = 64, guidance: float = 5.0, rt: Runtime | None = None
) -> dict[str, dict[str, int]]:
    """{"caption" | "swap": {"right-way", "reversed", "missing": counts}} over n caption pairs."""
    caps = relation_captions(n)
    s = StageSampling(steps=32, guidance=guidance, thresholding=Thresholding("static"))
    out = {}
    for name, texts in (("caption", caps), ("swap", [swapped(c) for c in caps])):
        x = run_stage(cascade, 0, texts, s, rt or Runtime(), None)  # (n, 3, 16, 16), same seeds for both
        ims = to_uint8(F.interpolate(x, size=64, mode="nearest"))
        counts = Counter(relation_direction(verify(Image.fromarray(ims[i].numpy()), t)) for i, t in enumerate(texts))
        out[name] = {k: counts.get(k, 0) for k in ("right-way", "reversed", "missing")}
    return out


@torch.no_grad()
def loss_gap(
    cascade: Cascade, n: int = 256, times: tuple[float, ...] = (0.7, 0.95), repeats: int = 4
) -> list[dict[str, float]]:
    """Per time t: mean x0 squared error of the base on the n captions' own scenes with the true
    caption, its swap and no text (float32, the same noise for the three), and the share of images
    where the true caption does better than its swap (0.5 when the order is ignored)."""
    unet, stage = cascade.unets[0], cascade.stages[0]
    caps = relation_captions(n)
    r = stage.resolution  # rendered at the stage resolution, as the trainer's shapes data
    x = torch.stack([image_to_tensor(render_scene(split_item("validation", 4 * k + 2)[0], r), r) for k in range(n)])
    true, swap = cascade.text_encoder.encode(caps), cascade.text_encoder.encode([swapped(c) for c in caps])
    texts = {"caption": true, "swap": swap, "no text": (true[0], torch.zeros_like(true[1]))}
    gen, rows = torch.Generator().manual_seed(0), []
    for t in times:
        logsnr = make_logsnr(stage.diffusion)(torch.full((n,), float(t)))
        err = {k: torch.zeros(n) for k in texts}
        for _ in range(repeats):
            z = q_sample(x, logsnr, torch.randn(x.shape, generator=gen))
            for k, (text, mask) in texts.items():
                x0 = x0_from_prediction(unet(z, logsnr, text, mask), z, logsnr, stage.diffusion.prediction)
                err[k] += ((x0 - x) ** 2).flatten(1).mean(1) / repeats  # (n,)
        rows.append(
            {
                "t": t,
                **{k: round(v.mean().item(), 5) for k, v in err.items()},
                "caption_beats_swap": round((err["caption"] < err["swap"]).float().mean().item(), 3),
            }
        )
    return rows


def ideal_direction_gain(resolution: int, n_captions: int = 8, n_scenes: int = 1000) -> float:
    """x0 squared error a perfect model saves at pure noise by knowing which way round the caption
    goes: its best guess is the caption's mean image M(A rel B) instead of the average of
    M(A rel B) and M(B rel A), a saving of mean((M(A rel B) - M(B rel A))^2) / 4 per pixel value.
    Mean over the first n_captions relation captions, n_scenes random scenes each."""
    rng, gains = np.random.default_rng(0), []
    for cap in relation_captions(n_captions):
        means = [
            torch.stack(
                [
                    image_to_tensor(render_scene(relation_scene(rng, parse_caption(c)), resolution), resolution)
                    for _ in range(n_scenes)
                ]
            ).mean(0)
            for c in (cap, swapped(cap))
        ]
        gains.append(((means[0] - means[1]) ** 2).mean().item() / 4)
    return sum(gains) / len(gains)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n", type=int, default=64, help="caption pairs")
    p.add_argument("--base-guidance", type=float, default=5.0)
    p.add_argument(
        "--stage", action="append", default=[], metavar="NAME=DIR", help="swap in another base (NAME = base)"
    )
    p.add_argument(
        "--loss-times", default="", metavar="T,T,...", help="also the x0-error probe at these times in (0, 1)"
    )
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be >= 1, got {args.n}")
    try:
        times = tuple(float(t) for t in args.loss_times.split(",") if t.strip())
    except ValueError:
        p.error(f"--loss-times takes numbers in (0, 1) separated by commas, got {args.loss_times!r}")
    if any(not 0 < t < 1 for t in times):
        p.error(f"--loss-times must lie in (0, 1), got {args.loss_times!r}")
    cascade = load_cascade(args.checkpoint)
    try:
        for name, stage_dir in (stage_arg(a, p) for a in args.stage):
            cascade = with_stage(cascade, name, stage_dir)
    except ValueError as e:
        p.error(str(e))
    res = swap_check(cascade, args.n, args.base_guidance)
    total = res["caption"]["right-way"] + res["swap"]["right-way"]
    print(
        f"right-way: caption {res['caption']['right-way']} + swap {res['swap']['right-way']} = {total} "
        f"(order ignored ~{args.n}, followed ~{2 * args.n})"
    )
    print(json.dumps(res))
    if times:
        for row in loss_gap(cascade, args.n, times):
            print(json.dumps(row))
        gain = ideal_direction_gain(cascade.stages[0].resolution)
        print(f"a perfect model's saving from the direction at pure noise: {gain:.5f} (x0 squared error per value)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does a shapes base follow word order? Sample each relation caption and its swap with the same seed.

    python -m drawbench.shapes.swap_check imagen/weights/shapes [--stage base=DIR] [--n 64] [--base-guidance 5]

Captions: the first n Positional captions of the validation split (trained colour x shape pairs
only, so composition does not interfere). For each, the base samples "A rel B" and "B rel A" with
the same seed; the verifier (16^2 output nearest-upsampled to 64^2, as stage_check's base row) says
for each image whether the first named object is on the asked side (verify.relation_direction).
A base that ignores the order keeps the layout under the swap, so right-way(caption) +
right-way(swap) is about n; one that follows the order gets about 2n. Sampling as stage_check:
static thresholding, DDPM 32 steps, seeds = caption index.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch.nn.functional as F
from PIL import Image

from imagen.checkpoint import load_cascade
from imagen.conditioning import to_uint8
from imagen.guidance import Thresholding
from imagen.pipeline import Cascade, Runtime, StageSampling

from .dataset import split_item
from .grammar import format_caption
from .order_check import swapped
from .stage_check import run_stage, stage_arg, with_stage
from .verify import relation_direction, verify


def relation_captions(n: int) -> list[str]:
    """The first n Positional captions of the validation split (item 4k + 2 is Positional)."""
    return [format_caption(split_item("validation", 4 * k + 2)[1]) for k in range(n)]


def swap_check(cascade: Cascade, n: int = 64, guidance: float = 5.0, rt: Runtime | None = None) -> dict[str, dict[str, int]]:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n", type=int, default=64, help="caption pairs")
    p.add_argument("--base-guidance", type=float, default=5.0)
    p.add_argument("--stage", action="append", default=[], metavar="NAME=DIR", help="swap in another base (NAME = base)")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be >= 1, got {args.n}")
    cascade = load_cascade(args.checkpoint)
    try:
        for name, stage_dir in (stage_arg(a, p) for a in args.stage):
            cascade = with_stage(cascade, name, stage_dir)
    except ValueError as e:
        p.error(str(e))
    res = swap_check(cascade, args.n, args.base_guidance)
    total = res["caption"]["right-way"] + res["swap"]["right-way"]
    print(f"right-way: caption {res['caption']['right-way']} + swap {res['swap']['right-way']} = {total} "
          f"(order ignored ~{args.n}, followed ~{2 * args.n})")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

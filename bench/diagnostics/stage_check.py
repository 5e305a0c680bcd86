"""Which stage of a shapes cascade loses prompts: feed each stage ground-truth low-res renders
instead of the previous stage's output and verify at the stage's own resolution.

    python -m bench.diagnostics.stage_check imagen/weights/shapes [--n-per-category 20]

Rows (prompt accuracy of the exact verifier, overall and per category):
  gt-16-nearest      the ground-truth 16^2 render, nearest-upsampled to 64^2: what a 16^2 base can carry
  base(w)-nearest    the base stage's 16^2 output (guidance w), nearest-upsampled the same way
  sr64(gt16)         the 16->64 stage on ground-truth 16^2 inputs
  base(w)->sr64      the base stage's output then sr64, at 64^2
  sr256(gt64)        the 64->256 stage on ground-truth 64^2 inputs
Each row also splits the accuracy by pair group (held-out: the caption names a colour x shape
pair never trained on; seen) and counts the relation captions (Positional, some Descriptions) whose two objects were
both drawn, split into right-way and reversed (verify.relation_direction): 50/50 is chance.
`--stage NAME=DIR` (repeatable; NAME base, sr64 or sr256) swaps in another checkpoint of that stage
(e.g. a training run's `ckpt/base` or `ckpt/sr64`: any U-Net config, same text encoder and
resolutions), so a retrained stage is compared with the shipped one on the same prompts and
seeds; `--rows` picks rows (the base-only row is cheap: ~1.2 s per
prompt on 2 cores); `--start K` skips the first K prompts of each category, as the prompt set's
`start` does. Assumes the shapes preset's 16 -> 64 -> 256 cascade (stage indices 0, 1, 2). Seeds are the prompt
index; sampling as in bench/specs/shapes_eval.toml: static thresholding, base DDPM 32 steps, sr64
DDPM 32, sr256 DDPM 16, SR guidance 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from common.errors import check_choice
from drawbench.shapes.dataset import split_item
from drawbench.shapes.grammar import PAIR_GROUPS, format_caption, pair_group, parse_caption
from drawbench.shapes.render import render_scene
from drawbench.shapes.scene import CATEGORIES
from drawbench.shapes.verify import relation_direction, verify
from imagen.checkpoint import load_cascade, load_stage
from imagen.conditioning import downsample, to_uint8
from imagen.data import image_to_tensor
from imagen.guidance import Thresholding
from imagen.pipeline import Cascade, Runtime, StageSampling, sample_stage


def accuracy(x: torch.Tensor, captions: list[str]) -> dict[str, float | int]:
    """x (B, 3, H, W) in [-1, 1] -> prompt accuracy overall, per category (item i is
    CATEGORIES[i % 4]) and per pair group (held-out / seen), plus counts of relation captions
    drawn the right way / reversed."""
    images = to_uint8(x)
    vs = [verify(Image.fromarray(images[i].numpy()), c) for i, c in enumerate(captions)]
    ok = [v.correct for v in vs]
    out: dict[str, float | int] = {"overall": sum(ok) / len(ok)}
    for k, cat in enumerate(CATEGORIES):
        sub = ok[k :: len(CATEGORIES)]
        out[cat] = sum(sub) / len(sub)
    groups = [pair_group(parse_caption(c)) for c in captions]
    for g in PAIR_GROUPS:
        sub = [o for o, gr in zip(ok, groups) if gr == g]
        out[g] = sum(sub) / len(sub) if sub else float("nan")
    directions = [relation_direction(v) for v in vs]
    for d in ("right-way", "reversed"):
        out[d] = directions.count(d)
    return out


def run_stage(
    cascade, index: int, captions: list[str], s: StageSampling, rt: Runtime, prev: torch.Tensor | None
) -> torch.Tensor:
    """Stage `index` on all captions in batches; seeds = item index. Returns x0 (N, 3, R, R)."""
    out, bs = [], rt.batch_size
    for b in range(0, len(captions), bs):
        text, mask = cascade.text_encoder.encode(captions[b : b + bs])
        low = None if prev is None else prev[b : b + bs]
        out.append(
            sample_stage(
                cascade.unets[index],
                cascade.stages[index],
                text,
                mask,
                list(range(b, b + len(text))),
                index,
                s,
                rt,
                prev=low,
            )
        )
    return torch.cat(out)


ROWS = ("gt-16-nearest", "base-nearest", "sr64(gt16)", "base->sr64", "sr256(gt64)")


def with_stage(cascade: Cascade, name: str, stage_dir: Path) -> Cascade:
    """The cascade with its stage `name` replaced by the stage checkpoint in stage_dir."""
    names = [st.name for st in cascade.stages]
    check_choice("stage", name, names)
    k = names.index(name)
    stage, te, unet, _ = load_stage(stage_dir)
    old = cascade.stages[k]
    if (te, stage.resolution, stage.lowres_resolution) != (
        cascade.config.text_encoder,
        old.resolution,
        old.lowres_resolution,
    ):
        raise ValueError(
            f"{stage_dir} does not fit this cascade's stage {name!r}: text encoder {te}, "
            f"{stage.lowres_resolution} -> {stage.resolution}; the cascade has {cascade.config.text_encoder}, "
            f"{old.lowres_resolution} -> {old.resolution}"
        )
    stages, unets = list(cascade.stages), list(cascade.unets)
    stages[k], unets[k] = dataclasses.replace(stage, name=name), unet
    return dataclasses.replace(cascade, config=dataclasses.replace(cascade.config, stages=tuple(stages)), unets=unets)


def stage_check(
    checkpoint: Path,
    n_per_category: int,
    base_guidance: float,
    rt: Runtime,
    swaps: dict[str, Path] | None = None,
    start: int = 0,
    rows: tuple[str, ...] = ROWS,
) -> dict[str, dict[str, float | int]]:
    for r in rows:
        check_choice("row", r, ROWS)
    cascade = load_cascade(checkpoint)
    for name, stage_dir in (swaps or {}).items():
        cascade = with_stage(cascade, name, stage_dir)
    resolutions = [st.resolution for st in cascade.stages]
    if resolutions != [16, 64, 256]:
        raise ValueError(f"stage_check expects a 16 -> 64 -> 256 cascade (the shapes preset), got {resolutions}")
    items = [split_item("test", len(CATEGORIES) * start + i) for i in range(len(CATEGORIES) * n_per_category)]
    captions = [format_caption(c) for _, c in items]
    gt256 = torch.stack([image_to_tensor(render_scene(scene, 256), 256) for scene, _ in items])
    gt64, gt16 = downsample(gt256, 64), downsample(gt256, 16)  # how training makes SR inputs
    static = Thresholding("static")
    base_s = StageSampling(steps=32, sampler="ddpm", guidance=base_guidance, thresholding=static)
    sr64 = StageSampling(steps=32, sampler="ddpm", guidance=1.0, thresholding=static)
    sr256 = StageSampling(steps=16, sampler="ddpm", guidance=1.0, thresholding=static)
    base16 = run_stage(cascade, 0, captions, base_s, rt, None) if {"base-nearest", "base->sr64"} & set(rows) else None
    compute = {
        "gt-16-nearest": lambda: F.interpolate(gt16, size=64, mode="nearest"),
        "base-nearest": lambda: F.interpolate(base16, size=64, mode="nearest"),
        "sr64(gt16)": lambda: run_stage(cascade, 1, captions, sr64, rt, gt16),
        "base->sr64": lambda: run_stage(cascade, 1, captions, sr64, rt, base16),
        "sr256(gt64)": lambda: run_stage(cascade, 2, captions, sr256, rt, gt64),
    }
    w = f"(w={base_guidance:g})"
    return {
        r.replace("base", f"base{w}", 1) if r.startswith("base") else r: accuracy(compute[r](), captions)
        for r in ROWS
        if r in rows
    }


def stage_arg(arg: str, p: argparse.ArgumentParser) -> tuple[str, Path]:
    """--stage NAME=DIR -> (NAME, DIR); a usage error for anything else."""
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        p.error(f"--stage takes NAME=DIR (e.g. sr64=ckpt/sr64), got {arg!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n-per-category", type=int, default=20)
    p.add_argument("--base-guidance", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="use the stage checkpoint in DIR instead of the cascade's stage NAME (base, sr64, sr256)",
    )
    p.add_argument("--start", type=int, default=0, help="skip the first START prompts of each category")
    p.add_argument("--rows", nargs="+", default=list(ROWS), help=f"rows to compute: {', '.join(ROWS)}")
    args = p.parse_args(argv)
    swaps = dict(stage_arg(a, p) for a in args.stage)
    try:
        rows = stage_check(
            args.checkpoint,
            args.n_per_category,
            args.base_guidance,
            Runtime(batch_size=args.batch_size),
            swaps=swaps,
            start=args.start,
            rows=tuple(args.rows),
        )
    except ValueError as e:
        p.error(str(e))
    for name, acc in rows.items():
        print(
            f"{name:22s} "
            + "  ".join(f"{k} {v:6.1%}" if isinstance(v, float) else f"{k} {v:3d}" for k, v in acc.items())
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

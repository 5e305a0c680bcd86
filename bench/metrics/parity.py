"""`imagen-bench parity --clip DIR [--judge DIR] [--images DIR]`: the numbers our metrics give with
a user's real weights beside the reference implementation's on the same images, image by image.

    CLIP score   ours (bench.metrics.clip_score)  vs  torchmetrics' clip_score (installed with us)
    VQAScore     ours (bench.metrics.vqa)         printed; t2v_metrics loads judges by hub name only

A reference that is not installed is named with how to get it, never replaced by another number.
The tests hold the same comparisons on tiny models (docs/metrics.md, "Parity"); this command is for
the weights a user actually has. Images: a folder of images named by prompt id with its prompt-set
manifest (default: the first --n of ../shared/data/drawbench-sd/sd-v1-4, the SD DrawBench images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.multimodal import clip_score

from common.files import write_json_atomic
from common.options import int_in
from common.runs import PromptRef

from . import build_metric
from .base import ScoredImage
from .preprocess import load_rgb

DEFAULT_IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "drawbench-sd" / "sd-v1-4"


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text, description=help_text + ". " + __doc__.split("\n\n")[1].replace("\n", " ")
    )
    p.add_argument("--clip", type=Path, default=None, help="a Hugging Face CLIPModel folder (CLIP score)")
    p.add_argument("--judge", type=Path, default=None, help="a Hugging Face vision-language model folder (VQAScore)")
    p.add_argument(
        "--images", type=Path, default=DEFAULT_IMAGES, help="image folder with prompt_set.json (default: %(default)s)"
    )
    p.add_argument("--prompt-set", default="drawbench", help="the prompt set the images answer (default %(default)s)")
    p.add_argument(
        "--options", default="", metavar="KEY=VALUE,...", help="the prompt set's options, e.g. path=my_prompts.csv"
    )
    p.add_argument("--n", type=int_in(1, 200), default=8, help="images to score, 1-200 (default %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="also write the table as JSON here (never overwritten)")
    p.set_defaults(func=run)


def _records(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    from common.imagestore import read_folder
    from drawbench.sets import load_prompt_set, options_from_text

    prompts = load_prompt_set(args.prompt_set, options_from_text(args.prompt_set, args.options))
    records = read_folder(args.images, prompts, prompt_set=args.prompt_set)[: args.n]
    return [(r.ref.prompt, load_rgb(r.path)[0]) for r in records]


class TensorFeatures:
    """A CLIPModel whose get_*_features return tensors: transformers 5 returns output objects where
    torchmetrics 1.9 expects tensors (the projected features are their pooler_output)."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def to(self, device):
        self.model.to(device)
        return self

    def get_image_features(self, *a, **k):
        out = self.model.get_image_features(*a, **k)
        return out if hasattr(out, "norm") else out.pooler_output

    def get_text_features(self, *a, **k):
        out = self.model.get_text_features(*a, **k)
        return out if hasattr(out, "norm") else out.pooler_output


def torchmetrics_clip_scores(folder: Path, pairs: list[tuple[str, np.ndarray]]) -> list[float]:
    """torchmetrics 1.9's clip_score, one call per (prompt, image): max(100 cos, 0) per image."""
    from transformers import CLIPModel, CLIPProcessor

    def load():
        return TensorFeatures(CLIPModel.from_pretrained(folder).eval()), CLIPProcessor.from_pretrained(folder)

    with torch.no_grad():
        return [
            float(clip_score(torch.from_numpy(im).permute(2, 0, 1), p, model_name_or_path=load)) for p, im in pairs
        ]


def _ours(name: str, options: dict, pairs: list[tuple[str, np.ndarray]]) -> list[float]:
    metric = build_metric(name, options)
    return [
        v[name]
        for v in metric.update(
            [ScoredImage("parity", PromptRef("p", str(i), "x", p, 0), im) for i, (p, im) in enumerate(pairs)]
        )
    ]


def clip_rows(folder: Path, pairs: list[tuple[str, np.ndarray]]) -> list[dict]:
    ours, theirs = _ours("clip_score", {"model": str(folder)}, pairs), torchmetrics_clip_scores(folder, pairs)
    return [
        {"metric": "clip_score", "prompt": p, "ours": o, "reference": t, "reference_name": "torchmetrics clip_score"}
        for (p, _), o, t in zip(pairs, ours, theirs)
    ]


def judge_rows(folder: Path, pairs: list[tuple[str, np.ndarray]]) -> list[dict]:
    why = (
        "t2v_metrics (the reference) loads its judges by hub name, not from a local folder, and no hub is reachable here: "
        "run its VQAScore(model=...) on the same images where it is, and compare with the numbers above"
    )
    return [
        {"metric": "vqascore", "prompt": p, "ours": o, "reference": None, "reference_name": why}
        for (p, _), o in zip(pairs, _ours("vqascore", {"model": str(folder)}, pairs))
    ]


def run(args: argparse.Namespace) -> int:
    if args.clip is None and args.judge is None:
        raise ValueError(
            "give --clip DIR and/or --judge DIR: the weights whose numbers to compare with the references"
        )
    if args.out is not None and args.out.exists():
        raise FileExistsError(f"{args.out} exists; choose another --out")
    pairs = _records(args)
    rows = (clip_rows(args.clip, pairs) if args.clip else []) + (judge_rows(args.judge, pairs) if args.judge else [])
    for r in rows:
        diff = "" if r["reference"] is None else f"  |diff| {abs(r['ours'] - r['reference']):.2e}"
        ref = "not run" if r["reference"] is None else f"{r['reference']:.6f}"
        print(f"{r['metric']:<10} ours {r['ours']:.6f}  reference {ref}{diff}  {r['prompt'][:50]!r}")
    for name in sorted({r["reference_name"] for r in rows if r["reference"] is None}):
        print(f"reference not run: {name}")
    if args.out is not None:
        write_json_atomic(args.out, {"images": str(args.images), "rows": rows})
    return 0

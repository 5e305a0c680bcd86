"""`imagen-bench fid-stats SRC --out FILE.npz`: reference Inception statistics for FID/KID."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .features import DTYPES, FeatureConfig, FeatureExtractor
from .preprocess import RESIZE_MODES
from .reference import compute_reference, parse_spec, write_stats_file


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text + ". SRC: folder:DIR | coco:DIR | shapes:SPLIT | DIR")
    p.add_argument("src", help="reference images: folder:DIR, coco:DIR (captions.json + images/), shapes:SPLIT, or a plain DIR")
    p.add_argument("--out", required=True, type=Path, help="output .npz (mu, sigma, n, features, meta); never overwritten")
    p.add_argument("--resize", default=FeatureConfig.resize, help=f"{' | '.join(RESIZE_MODES)} (default %(default)s)")
    p.add_argument("--dtype", default=FeatureConfig.dtype, help=f"{' | '.join(DTYPES)} (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=FeatureConfig.batch_size)
    p.add_argument("--n", type=int, default=None, help="use only the first N images (sorted by name)")
    p.add_argument("--shapes-size", type=int, default=256, help="render size for shapes:SPLIT")
    p.add_argument("--no-features", action="store_true", help="store only mu/sigma (smaller file; KID then cannot use it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    src = args.src if ":" in args.src else f"folder:{args.src}"
    if parse_spec(src)[0] == "stats":
        raise ValueError("fid-stats computes statistics from images; SRC must be folder:DIR, coco:DIR, shapes:SPLIT or a DIR")
    if args.out.exists():
        raise ValueError(f"{args.out} exists; refusing to overwrite it (choose another --out or remove it)")
    if args.out.suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {args.out}")
    extractor = FeatureExtractor(FeatureConfig(resize=args.resize, dtype=args.dtype, batch_size=args.batch_size))
    start = time.time()
    ref = compute_reference(src, extractor, n=args.n, shapes_size=args.shapes_size)
    write_stats_file(args.out, ref, with_features=not args.no_features)
    print(f"wrote {args.out}: n={ref.n} resize={args.resize} dtype={args.dtype} ({time.time() - start:.0f} s)")
    return 0

"""`imagen-bench fid-stats SRC --out FILE.npz`: reference Inception statistics for FID/KID.
`imagen-bench fid IMAGES --reference SPEC`: FID and KID of an image folder against a reference."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from common.files import check_writable, write_json_atomic

from .features import DTYPES, FeatureConfig, FeatureExtractor
from .fid import FID, KID
from .preprocess import CROP_MODES, RESIZE_MODES, load_rgb
from .reference import compute_reference, image_files, parse_spec, write_stats_file


def add_parser(sub, name: str, help_text: str) -> None:
    if name == "fid":
        return add_fid_parser(sub, name, help_text)
    p = sub.add_parser(
        name, help=help_text, description=help_text + ". SRC: folder:DIR | coco:DIR | shapes:SPLIT | DIR"
    )
    p.add_argument(
        "src", help="reference images: folder:DIR, coco:DIR (captions.json + images/), shapes:SPLIT, or a plain DIR"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="output .npz (mu, sigma, n, features, meta); never overwritten"
    )
    p.add_argument("--resize", default=FeatureConfig.resize, help=f"{' | '.join(RESIZE_MODES)} (default %(default)s)")
    p.add_argument("--dtype", default=FeatureConfig.dtype, help=f"{' | '.join(DTYPES)} (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=FeatureConfig.batch_size)
    p.add_argument(
        "--device",
        default=FeatureConfig.device,
        help="auto (cuda if present) | cpu | cuda | cuda:N (float32 features either way)",
    )
    p.add_argument("--n", type=int, default=None, help="use only the first N images (sorted by name)")
    p.add_argument("--shapes-size", type=int, default=256, help="render size for shapes:SPLIT")
    _reference_prep(p)
    p.add_argument(
        "--no-features", action="store_true", help="store only mu/sigma (smaller file; KID then cannot use it)"
    )
    p.set_defaults(func=run)


def _reference_prep(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--crop",
        default="none",
        choices=CROP_MODES,
        help="reference images: 'center' = largest centred square first (COCO FID-30K); default as stored",
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="reference images resized to SIZE x SIZE (PIL bicubic) before the Inception resize: the "
        "generated images' resolution (256 for Imagen's COCO FID-30K); default as stored",
    )


def run(args: argparse.Namespace) -> int:
    src = args.src if ":" in args.src else f"folder:{args.src}"
    if parse_spec(src)[0] == "stats":
        raise ValueError(
            "fid-stats computes statistics from images; SRC must be folder:DIR, coco:DIR, shapes:SPLIT or a DIR"
        )
    if args.out.exists():
        raise ValueError(f"{args.out} exists; refusing to overwrite it (choose another --out or remove it)")
    if args.out.suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {args.out}")
    check_writable(args.out, folder=False)  # before the Inception work, not after
    extractor = FeatureExtractor(
        FeatureConfig(resize=args.resize, dtype=args.dtype, batch_size=args.batch_size, device=args.device)
    )
    start = time.time()
    ref = compute_reference(src, extractor, n=args.n, shapes_size=args.shapes_size, crop=args.crop, size=args.size)
    write_stats_file(args.out, ref, with_features=not args.no_features)
    print(
        f"wrote {args.out}: n={ref.n} crop={args.crop} size={args.size} resize={args.resize} dtype={args.dtype} "
        f"({time.time() - start:.0f} s)"
    )
    return 0


def add_fid_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("images", type=Path, help="folder of generated images (.png .jpg .jpeg .webp)")
    p.add_argument("--reference", required=True, help="folder:DIR | coco:DIR | stats:FILE.npz | shapes:SPLIT")
    p.add_argument("--resize", default=FeatureConfig.resize, help=f"{' | '.join(RESIZE_MODES)} (default %(default)s)")
    p.add_argument("--dtype", default=FeatureConfig.dtype, help=f"{' | '.join(DTYPES)} (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=FeatureConfig.batch_size)
    p.add_argument(
        "--device",
        default=FeatureConfig.device,
        help="auto (cuda if present) | cpu | cuda | cuda:N (float32 features either way)",
    )
    _reference_prep(p)
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (capped at the smaller set)")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache reference features here (reused when nothing changed)"
    )
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON (never overwritten)")
    p.set_defaults(func=run_fid)


def run_fid(args: argparse.Namespace) -> int:
    """FID and KID of one image folder against a reference, printed as JSON (one object per number)."""
    if args.out is not None and args.out.exists():
        raise ValueError(f"{args.out} exists; refusing to overwrite it")
    if args.out is not None:
        check_writable(args.out, folder=False)
    files = image_files("folder", str(args.images))
    common = {
        "reference": args.reference,
        "resize": args.resize,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "device": args.device,
        "crop": args.crop,
        "size": args.size,
    }
    start = time.time()
    with (
        tempfile.TemporaryDirectory() as tmp
    ):  # without --cache-dir, KID reuses FID's reference features via a temp cache
        cache = args.cache_dir or Path(tmp)
        fid = FID(common, cache_dir=cache)
        kid = KID({**common, "subset_size": args.kid_subset_size}, cache_dir=cache, extractor=fid.extractor)
        cell = args.images.name
        for i in range(0, len(files), 64):  # decode 64 at a time: bounded memory for large folders
            feats = fid.extractor(
                [load_rgb(f)[0] for f in files[i : i + 64]]
            )  # (B, 2048), extracted once for both metrics
            codes = [float(i + j) for j in range(len(feats))]  # a folder has no prompts: each image its own
            fid.add_features([cell] * len(feats), feats, codes)
            kid.add_features([cell] * len(feats), feats, codes)
        results = [dataclasses.asdict(r) for r in fid.compute() + kid.compute()]
    summary = {
        "images": str(args.images),
        "device": fid.extractor.device,
        "seconds": round(time.time() - start, 1),
        "results": results,
    }
    print(json.dumps(summary, indent=2, sort_keys=True))
    if args.out is not None:
        write_json_atomic(args.out, summary)
    return 0

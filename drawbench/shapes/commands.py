"""`imagen-bench shapes export|verifier-accuracy`."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from common.files import write_json_atomic
from common.options import seed_int
from common.version import __version__

from .coco import export_coco
from .detect import MIN_SIDE
from .measure import BLUR_RADIUS_AT_64, NOISE_SIGMA, measure_size
from .scene import SPLITS


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = actions.add_parser("export", help="write a split as a COCO captions folder (captions.json + images/)")
    e.add_argument("--split", default="test", choices=SPLITS)
    e.add_argument("--n", type=int, default=200, help="items 0..n-1 of the split")
    e.add_argument("--size", type=int, default=256, help="image side in pixels")
    e.add_argument("--out", type=Path, required=True, help="new or empty folder")
    e.set_defaults(func=run_export)
    v = actions.add_parser("verifier-accuracy", help="verifier vs ground truth: clean, blurred+noisy, wrong captions")
    v.add_argument("--n", type=int, default=2000, help="renders per size (test split items 0..n-1)")
    v.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="image sides to test (>= 32)")
    v.add_argument("--seed", type=seed_int, default=0, help="seed of the degradations and caption perturbations")
    v.add_argument("--out", type=Path, help="write the numbers and what made them to this JSON file (must not exist)")
    v.set_defaults(func=run_verifier_accuracy)


def run_export(args) -> int:
    out = export_coco(args.split, args.n, args.out, args.size)
    print(f"wrote {args.n} {args.size}x{args.size} images of split {args.split!r} + captions.json to {out}")
    return 0


def run_verifier_accuracy(args) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if min(args.sizes) < MIN_SIDE:
        raise ValueError(f"--sizes must all be >= {MIN_SIDE}, got {args.sizes}")
    if args.out is not None and args.out.exists():
        raise ValueError(f"{args.out} exists; refusing to overwrite it (choose a new --out)")
    results = {}
    for size in args.sizes:
        r = results[str(size)] = measure_size(args.n, size, args.seed)
        for condition in ("clean", "degraded"):
            agree, fa = r[condition]["agreement"]["overall"], r[condition]["false_accept"]["overall"]
            print(
                f"{size:>4}px {condition:>8}: prompts correct {agree['prompt_accuracy']:.2%} of {agree['n_prompts']}, "
                f"claims {agree['claim_accuracy']:.2%} of {agree['n_claims']}; wrong captions accepted "
                f"{fa['false_accept_rate']:.2%} of {fa['n']}  ({r['seconds']} s)"
            )
    if args.out is not None:
        made_by = {
            "command": "imagen-bench shapes verifier-accuracy",
            "config": {
                "n": args.n,
                "sizes": args.sizes,
                "seed": args.seed,
                "split": "test",
                "blur_radius_at_64": list(BLUR_RADIUS_AT_64),
                "noise_sigma_of_255": NOISE_SIGMA,
            },
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": platform.platform(),
        }
        write_json_atomic(args.out, {"made_by": made_by, "results": results})
        print(f"wrote {args.out}")
    return 0

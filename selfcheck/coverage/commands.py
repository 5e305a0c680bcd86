"""`imagen-bench coverage`: does every interval the suite prints cover its truth 95 % of the time?

Simulates data with known truths (selfcheck/coverage/simulate.py, truths.py), applies the suite's
interval and the former one to each replicate, and writes the coverage table (docs/intervals.md is
this command's output at the default sizes):

    imagen-bench coverage --out runs/coverage            # the docs' table (hours on one core: KID and CMMD
                                                         # dominate; --parts splits it over processes)
    imagen-bench coverage --quick --out /tmp/cov          # small sizes (5 min 9 s on one EPYC core, KID 120 s,
                                                         # CMMD 84 s, paired 74 s; the CI tests run smaller)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from common.options import int_in, seed_int

PARTS = ("per-image", "fd", "kid", "cmmd", "prdc", "paired", "ranks", "crossed")


def _parts(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in PARTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"parts must be a comma-separated subset of {', '.join(PARTS)}; got {text!r}")
    return names


_replicates = int_in(20, 100_000)


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out", type=Path, required=True, help="new folder for coverage.csv, coverage.md and coverage.json"
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes (the CI test's): minutes, with Monte Carlo error ~1.3 points"
    )
    p.add_argument(
        "--parts", type=_parts, default=PARTS, help=f"comma-separated subset of {', '.join(PARTS)} (default: all)"
    )
    p.add_argument(
        "--replicates",
        type=_replicates,
        default=None,
        help="replicates per cell of the suite's methods (default 1000; quick 300)",
    )
    p.add_argument(
        "--former-replicates",
        type=_replicates,
        default=None,
        help="replicates per cell of the former bootstrap (each costs 100 metric evaluations; default 100, quick 60)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="simulation seed (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..results import fresh_folder, publish, stamp
    from .parts import run as simulate
    from .simulate import QUICK, Sizes
    from .table import markdown

    fresh_folder(args.out)
    sizes = QUICK if args.quick else Sizes()
    if args.replicates:
        sizes = dataclasses.replace(sizes, replicates=args.replicates)
    if args.former_replicates:
        sizes = dataclasses.replace(sizes, old_replicates=args.former_replicates)
    start = time.time()
    rows = simulate(sizes, args.parts, args.seed, log=lambda m: print(m, flush=True))
    frame = pd.DataFrame(rows)
    made = stamp("coverage") | {
        "sizes": dataclasses.asdict(sizes),
        "quick": args.quick,
        "parts": list(args.parts),
        "seed": args.seed,
        "seconds": round(time.time() - start, 1),
    }
    publish(args.out, "coverage", {"coverage": frame}, markdown(frame, made), made)
    failing = frame[(~frame["pass"]) & ~frame["method"].str.contains("former")]
    print(markdown(frame, made))
    print(
        f"coverage written to {args.out} in {made['seconds']:.0f} s; {len(failing)} of the suite's cells outside the criteria"
    )
    return 0

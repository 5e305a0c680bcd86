"""`imagen-bench sequential`: does a sequential A-vs-B study (human_eval.sequential) spend fewer
ratings than the paper's fixed design for the same error rates, and does its final interval cover?

Simulates both designs on the same simulated raters and prompts (selfcheck/sequential/simulate.py)
at true preference rates 0.5, 0.55, 0.6, 0.7 and writes the table of docs/human_eval.md:

    imagen-bench sequential --out runs/sequential          # the docs' tables (1,000 / 300 replicates, minutes)
    imagen-bench sequential --quick --out /tmp/seq          # the CI size (120 / 40 replicates, seconds)

and, for several models, the ranking table (selfcheck/sequential/ranking.py).

Exit status 1 when the default plan misses the goal (table.goal_failures).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from common.options import int_in, seed_int


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out", type=Path, required=True, help="new folder for sequential.csv, sequential.md and sequential.json"
    )
    p.add_argument(
        "--quick", action="store_true", help="the CI size: 120 replicates per rate, 200 bootstrap resamples (seconds)"
    )
    p.add_argument(
        "--replicates", type=int_in(10, 100_000), default=None, help="replicates per rate (default 1000; quick 120)"
    )
    p.add_argument(
        "--ranking-replicates",
        type=int_in(10, 100_000),
        default=None,
        help="replicates per scenario of the several-models table (default 300; quick 40)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="simulation seed (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..results import fresh_folder, publish, stamp
    from .ranking import run as rank
    from .simulate import QUICK, Sizes
    from .simulate import run as simulate
    from .table import goal_failures, markdown

    fresh_folder(args.out)
    given = {"replicates": args.replicates, "ranking_replicates": args.ranking_replicates}
    sizes = dataclasses.replace(QUICK if args.quick else Sizes(), **{k: v for k, v in given.items() if v})
    start = time.time()
    frame = pd.DataFrame(simulate(sizes, args.seed, log=lambda m: print(m, flush=True)))
    ranking = pd.DataFrame(rank(sizes, args.seed, log=lambda m: print(m, flush=True)))
    made = (
        stamp("sequential")
        | dataclasses.asdict(sizes)
        | {
            "quick": args.quick,
            "seed": args.seed,
            "seconds": round(time.time() - start, 1),
            "goal_failures": goal_failures(frame),
        }
    )
    text = markdown(frame, ranking, made)
    publish(args.out, "sequential", {"sequential": frame, "sequential_ranking": ranking}, text, made)
    print(text)
    print(f"written to {args.out} in {made['seconds']:.0f} s")
    return 1 if made["goal_failures"] else 0

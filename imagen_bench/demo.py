"""`imagen-bench demo`: the suite's main job on the offline default, in one command.

1. sweep bench/specs/demo.toml (shipped shapes cascade; 100 held-out shapes prompts; guidance
   w {1, 5} x {none, dynamic} thresholding) into OUT, resuming whatever is there;
2. build the HTML report of that run folder into OUT/report (derived only from OUT's files,
   so it is rebuilt atomically on every call).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import SPECS

DEMO_SPEC = SPECS / "demo.toml"


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run folder (default: %(default)s); rerun resumes"
    )
    p.add_argument("--spec", type=Path, default=DEMO_SPEC, help="sweep spec (default: the shipped demo spec)")
    p.add_argument("--cache-dir", type=Path, default=None, help="text-encoding / FID-reference cache")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.sweep.runner import run_sweep
    from reports.build import ReportInputs, ReportOptions, build_report

    result = run_sweep(args.spec, args.out, cache_dir=args.cache_dir)
    print(
        f"{result.run}: {result.images_total} images ({result.images_generated} generated now) in {result.seconds:.0f}s"
    )
    report = build_report(
        ReportInputs(runs=(Path(result.run),)), Path(result.run) / "report", ReportOptions(), force=True
    )
    print(f"report: {report / 'index.html'}")
    return 0

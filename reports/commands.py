"""`imagen-bench report` and `imagen-bench power`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .answers import DEFAULT_CONTROL_THRESHOLD
from .bootstrap import DEFAULT_METHOD, DEFAULT_RESAMPLES, METHODS
from .paired import DEFAULT_RESAMPLES as DEFAULT_RESAMPLES_PAIRED
from .power import DEFAULT_POWER_RESAMPLES, DEFAULT_STUDIES, DEFAULT_TARGET, VARY, PowerQuery, needed, power_curve
from .simulate import RaterModel

# Demo ratings (--simulate-ratings, imagen_bench.simulated): a modest true preference for the
# second model, like the small SD v1.4 -> v1.5 improvement.
DEMO_PREFERENCE = 0.45  # for model A (the first folder), i.e. 0.55 for the second


def add_parser(sub, name: str, help_text: str) -> None:
    {"report": _add_report, "power": _add_power, "leaderboard": _add_leaderboard}[name](sub.add_parser(name, help=help_text, description=help_text))


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _ci_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ci", choices=METHODS, default=DEFAULT_METHOD, help="interval method (default: %(default)s)")
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap / simulation seed (default: %(default)s)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default: %(default)s)")


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="RUN_OR_STUDY",
                   help="run folders (contract 1), rating studies / DB URLs (human_eval), or ratings files (.parquet/.csv)")
    p.add_argument("--out", required=True, type=Path, help="report folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing report folder (atomically)")
    _ci_options(p)
    p.add_argument("--control-threshold", type=float, default=None,
                   help=f"exclude raters below this control accuracy in every study (default: each study's recorded threshold, "
                        f"{DEFAULT_CONTROL_THRESHOLD} where none is recorded)")
    p.add_argument("--power-effect", type=float, default=0.05, help="preference difference for the power section; 0 = off")
    p.add_argument("--power-studies", type=int, default=DEFAULT_STUDIES, help="simulated studies per power point")
    p.add_argument("--simulate-ratings", nargs=2, metavar=("IMAGES_A", "IMAGES_B"), type=Path,
                   help="demo: simulate DrawBench side-by-side ratings of two folders of images named by prompt id")
    p.add_argument("--true-preference", type=float, default=DEMO_PREFERENCE,
                   help="demo: true preference for IMAGES_A, ties half (default: %(default)s)")
    p.set_defaults(func=run_report, simulate=None)  # simulate: the shell's (imagen_bench.cli.WIRING; reads DrawBench prompts)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated metric names, got {text!r}")
    return names


def _add_leaderboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (imagen-bench sweep), any number")
    p.add_argument("--out", type=Path, default=None, help="new folder for leaderboard.csv/.parquet, pairs.csv/.parquet, leaderboard.json")
    p.add_argument("--metrics", type=_names, default=None, help="comma-separated metrics to compare (default: all of the runs')")
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES_PAIRED, help="bootstrap resamples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default: %(default)s)")
    p.set_defaults(func=run_leaderboard)


def run_leaderboard(args) -> int:
    import json
    from datetime import datetime, timezone

    import pandas as pd

    from common.files import check_writable, write_json_atomic
    from common.tables import to_csv
    from common.version import __version__

    from .leaderboard import LeaderboardOptions, leaderboard, wide

    options = LeaderboardOptions(metrics=args.metrics, resamples=args.resamples, seed=args.seed, level=args.level)
    if args.out is not None:
        check_writable(args.out)
        if args.out.exists() and any(args.out.iterdir()):
            raise ValueError(f"{args.out} exists and is not empty; refusing to overwrite it (choose a new --out)")
    board, pairs = leaderboard(args.runs, options)
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 60):
        print(wide(board).to_string(index=False))
    print(f"\n{options.method()}. Set metrics (FID, KID, precision/recall, ...) carry an interval only where the metric recorded one "
          f"(blocks = G); FID / FD below 2,048 images is marked not comparable and never ranked.")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("leaderboard", board), ("pairs", pairs)):
            to_csv(frame, args.out / f"{name}.csv")
            frame.to_parquet(args.out / f"{name}.parquet", index=False)
        runs = {str(r): json.loads((Path(r) / "run.json").read_text()).get("spec_sha256") if (Path(r) / "run.json").is_file() else None
                for r in args.runs}
        write_json_atomic(args.out / "leaderboard.json", {
            "format": "imagen-bench-leaderboard/1", "package_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": runs,
            "options": {"metrics": list(options.metrics) if options.metrics else None, "resamples": options.resamples,
                        "seed": options.seed, "level": options.level},
            "method": options.method()})
        print(f"leaderboard written to {args.out}")
    return 0


def _add_power(p: argparse.ArgumentParser) -> None:
    p.add_argument("--effect", type=float, required=True, help="true preference minus 0.5 to detect, e.g. 0.05")
    p.add_argument("--vary", choices=VARY, default="raters", help="what the grid counts (default: %(default)s)")
    p.add_argument("--grid", type=_ints, default=(10, 20, 40, 80, 160), help="comma-separated counts (default: 10,20,40,80,160)")
    p.add_argument("--prompts", type=int, default=200, help="prompts, when varying raters (default: %(default)s)")
    p.add_argument("--raters", type=int, default=40, help="raters, when varying prompts (default: %(default)s)")
    p.add_argument("--answers-per-rater", type=int, default=50, help="default: %(default)s")
    p.add_argument("--prompt-sd", type=float, default=RaterModel.prompt_sd, help="logit sd of per-prompt preference")
    p.add_argument("--rater-sd", type=float, default=RaterModel.rater_sd, help="logit sd of rater bias")
    p.add_argument("--tie-rate", type=float, default=RaterModel.tie_rate, help="share of 'indifferent' answers")
    p.add_argument("--studies", type=int, default=DEFAULT_STUDIES, help="simulated studies per grid point")
    p.add_argument("--target", type=float, default=DEFAULT_TARGET, help="power to reach (default: %(default)s)")
    p.add_argument("--ci", choices=METHODS, default=DEFAULT_METHOD)
    p.add_argument("--resamples", type=int, default=DEFAULT_POWER_RESAMPLES, help="bootstrap resamples per simulated study")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", type=float, default=0.95)
    p.set_defaults(func=run_power)


def run_power(args) -> int:
    # the query validates --effect and sets the model's preference to 0.5 + effect
    model = RaterModel(prompt_sd=args.prompt_sd, rater_sd=args.rater_sd, tie_rate=args.tie_rate)
    query = PowerQuery(effect=args.effect, grid=args.grid, vary=args.vary, n_prompts=args.prompts, n_raters=args.raters,
                       answers_per_rater=args.answers_per_rater, rater_model=model, studies=args.studies,
                       resamples=args.resamples, method=args.ci, level=args.level, target=args.target, seed=args.seed)
    curve = power_curve(query)
    print(query.describe())
    print(curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(needed(curve, query))
    return 0


def run_report(args) -> int:
    from common.files import check_writable

    from .answers import load_answers
    from .build import ReportInputs, ReportOptions, build_report
    from .preference import CIConfig
    from .publish import check_target
    from .runs import is_run_folder

    check_writable(args.out)  # before reading anything large
    check_target(args.out, args.force)
    runs, answers, settings, images, banner = [], [], {}, {}, ""
    for item in args.inputs:
        path = Path(item)
        if path.is_dir() and is_run_folder(path):
            runs.append(path)
        else:
            frame, recorded = load_answers(item)
            answers.append((item, frame))
            settings.update(recorded)
    if args.simulate_ratings:
        if args.simulate is None:
            raise ValueError("--simulate-ratings needs the DrawBench prompts; run it through the imagen-bench command")
        frame, images = args.simulate(args.simulate_ratings, args.true_preference, args.seed)
        answers.append((f"simulated ratings of {args.simulate_ratings[0]} vs {args.simulate_ratings[1]}", frame))
        banner = (f"SIMULATED RATINGS: the side-by-side answers below were generated by reports.simulate (true preference for "
                  f"{args.simulate_ratings[0].name} = {args.true_preference}, ties half), not by people. The images are real.")
    if not runs and not answers:
        raise ValueError("nothing to report: give RUN_OR_STUDY inputs or --simulate-ratings IMAGES_A IMAGES_B")
    options = ReportOptions(ci=CIConfig(method=args.ci, resamples=args.resamples, seed=args.seed, level=args.level),
                            control_threshold=args.control_threshold, power_effect=args.power_effect,
                            power_studies=args.power_studies, banner=banner)
    out = build_report(ReportInputs(runs=tuple(runs), answers=tuple(answers), study_settings=settings, images=images), args.out,
                       options, args.force)
    print(f"report written to {out / 'index.html'}")
    return 0

"""`imagen-bench report` and `imagen-bench power`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.files import check_writable, staged_folder, write_json_atomic
from common.options import int_in, seed_int
from common.tables import to_csv
from common.version import __version__
from human_eval.contract import DEFAULT_CONTROL_THRESHOLD

from .answers import load_answers
from .bootstrap import DEFAULT_METHOD, DEFAULT_RESAMPLES, METHODS, RESAMPLES_RANGE
from .leaderboard import LeaderboardOptions, leaderboard, wide
from .paired import DEFAULT_RESAMPLES as DEFAULT_RESAMPLES_PAIRED
from .power import (
    ANSWERS_RANGE,
    COUNT_RANGE,
    DEFAULT_POWER_RESAMPLES,
    DEFAULT_STUDIES,
    DEFAULT_TARGET,
    GRID_POINTS,
    STUDIES_RANGE,
    VARY,
    PowerQuery,
    needed,
    power_curve,
)
from .preference import CIConfig
from .publish import check_target
from .runs import is_run_folder, spec_sha256
from .simulate import RaterModel
from .simulated import simulated_ratings  # reads the DrawBench prompts only when asked

# Demo ratings (--simulate-ratings, reports.simulated): a modest true preference for the
# second model, like the small SD v1.4 -> v1.5 improvement.
DEMO_PREFERENCE = 0.45  # for model A (the first folder), i.e. 0.55 for the second


# bounds checked while the command line is parsed; why each: reports/bootstrap.py, reports/power.py
RESAMPLES, STUDIES = int_in(*RESAMPLES_RANGE), int_in(*STUDIES_RANGE)
COUNT, ANSWERS = int_in(*COUNT_RANGE), int_in(*ANSWERS_RANGE)


def add_parser(sub, name: str, help_text: str) -> None:
    {"report": _add_report, "power": _add_power, "leaderboard": _add_leaderboard}[name](
        sub.add_parser(name, help=help_text, description=help_text)
    )


def _grid(text: str) -> tuple[int, ...]:
    """--grid: up to GRID_POINTS comma-separated counts, each in COUNT_RANGE."""
    low, high = COUNT_RANGE
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or len(values) > GRID_POINTS or not all(low <= v <= high for v in values):
        raise argparse.ArgumentTypeError(
            f"must be 1 to {GRID_POINTS} comma-separated integers in [{low}, {high}], got {text[:80]!r}"
        )
    return values


def _ci_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ci", choices=METHODS, default=DEFAULT_METHOD, help="interval method (default: %(default)s)")
    p.add_argument(
        "--resamples",
        type=RESAMPLES,
        default=None,
        help=f"bootstrap resamples of every interval that resamples, {RESAMPLES_RANGE[0]}-{RESAMPLES_RANGE[1]} (default: "
        f"{DEFAULT_RESAMPLES} for rating studies, {DEFAULT_RESAMPLES_PAIRED} for run folders' paired comparisons)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of every bootstrap (rating studies, run folders' paired comparisons) and simulation (default: %(default)s)",
    )
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default: %(default)s)")


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="RUN_OR_STUDY",
        help="run folders (contract 1), rating studies / DB URLs (human_eval), or ratings files (.parquet/.csv)",
    )
    p.add_argument("--out", required=True, type=Path, help="report folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing report folder (atomically)")
    _ci_options(p)
    p.add_argument(
        "--control-threshold",
        type=float,
        default=None,
        help=f"exclude raters below this control accuracy in every study (default: each study's recorded threshold, "
        f"{DEFAULT_CONTROL_THRESHOLD} where none is recorded)",
    )
    p.add_argument(
        "--power-effect", type=float, default=0.05, help="preference difference for the power section; 0 = off"
    )
    p.add_argument(
        "--power-studies",
        type=STUDIES,
        default=DEFAULT_STUDIES,
        help=f"simulated studies per power point, {STUDIES_RANGE[0]}-{STUDIES_RANGE[1]} (default: %(default)s)",
    )
    p.add_argument(
        "--simulate-ratings",
        nargs=2,
        metavar=("IMAGES_A", "IMAGES_B"),
        type=Path,
        help="demo: simulate DrawBench side-by-side ratings of two folders of images named by prompt id",
    )
    p.add_argument(
        "--true-preference",
        type=float,
        default=DEMO_PREFERENCE,
        help="demo: true preference for IMAGES_A, ties half (default: %(default)s)",
    )
    p.set_defaults(func=run_report)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated metric names, got {text!r}")
    return names


def _add_leaderboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (imagen-bench sweep), any number")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="new folder for leaderboard.csv/.parquet, pairs.csv/.parquet, leaderboard.json",
    )
    p.add_argument(
        "--metrics", type=_names, default=None, help="comma-separated metrics to compare (default: all of the runs')"
    )
    p.add_argument(
        "--resamples",
        type=RESAMPLES,
        default=DEFAULT_RESAMPLES_PAIRED,
        help=f"bootstrap resamples, {RESAMPLES_RANGE[0]}-{RESAMPLES_RANGE[1]} (default: %(default)s)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default: %(default)s)")
    p.set_defaults(func=run_leaderboard)


def run_leaderboard(args) -> int:
    options = LeaderboardOptions(metrics=args.metrics, resamples=args.resamples, seed=args.seed, level=args.level)
    if args.out is not None:
        check_writable(args.out)
        if args.out.exists() and any(args.out.iterdir()):
            raise ValueError(f"{args.out} exists and is not empty; refusing to overwrite it (choose a new --out)")
    specs = {
        str(r): spec_sha256(r) for r in args.runs
    }  # every input read and checked before anything is printed or written
    board, pairs = leaderboard(args.runs, options)
    if args.out is not None:
        write_leaderboard(args.out, board, pairs, specs, options)
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 60):
        print(wide(board).to_string(index=False))
    print(
        f"\n{options.method()}. Set metrics (FID, KID, precision/recall, ...) carry an interval only where the metric recorded one "
        f"(blocks = G); FID / FD below 2,048 images is marked not comparable and never ranked."
    )
    if args.out is not None:
        print(f"leaderboard written to {args.out}")
    return 0


def write_leaderboard(out: Path, board, pairs, specs: dict[str, str | None], options) -> None:
    """leaderboard.csv/.parquet, pairs.csv/.parquet and leaderboard.json (what made them), published
    as one folder (common.files.staged_folder): a full disk or a kill leaves no half folder."""
    with staged_folder(out) as stage:
        for name, frame in (("leaderboard", board), ("pairs", pairs)):
            to_csv(frame, stage / f"{name}.csv")
            frame.to_parquet(stage / f"{name}.parquet", index=False)
        write_json_atomic(
            stage / "leaderboard.json",
            {
                "format": "imagen-bench-leaderboard/1",
                "package_version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "runs": specs,
                "options": {
                    "metrics": list(options.metrics) if options.metrics else None,
                    "resamples": options.resamples,
                    "seed": options.seed,
                    "level": options.level,
                },
                "method": options.method(),
            },
        )


def _add_power(p: argparse.ArgumentParser) -> None:
    p.add_argument("--effect", type=float, required=True, help="true preference minus 0.5 to detect, e.g. 0.05")
    p.add_argument("--vary", choices=VARY, default="raters", help="what the grid counts (default: %(default)s)")
    p.add_argument(
        "--grid", type=_grid, default=(10, 20, 40, 80, 160), help="comma-separated counts (default: 10,20,40,80,160)"
    )
    p.add_argument("--prompts", type=COUNT, default=200, help="prompts, when varying raters (default: %(default)s)")
    p.add_argument("--raters", type=COUNT, default=40, help="raters, when varying prompts (default: %(default)s)")
    p.add_argument("--answers-per-rater", type=ANSWERS, default=50, help="default: %(default)s")
    p.add_argument("--prompt-sd", type=float, default=RaterModel.prompt_sd, help="logit sd of per-prompt preference")
    p.add_argument("--rater-sd", type=float, default=RaterModel.rater_sd, help="logit sd of rater bias")
    p.add_argument("--tie-rate", type=float, default=RaterModel.tie_rate, help="share of 'indifferent' answers")
    p.add_argument("--studies", type=STUDIES, default=DEFAULT_STUDIES, help="simulated studies per grid point")
    p.add_argument("--target", type=float, default=DEFAULT_TARGET, help="power to reach (default: %(default)s)")
    p.add_argument("--ci", choices=METHODS, default=DEFAULT_METHOD)
    p.add_argument(
        "--resamples", type=RESAMPLES, default=DEFAULT_POWER_RESAMPLES, help="bootstrap resamples per simulated study"
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--level", type=float, default=0.95)
    p.set_defaults(func=run_power)


def run_power(args) -> int:
    # the query validates --effect and sets the model's preference to 0.5 + effect
    model = RaterModel(prompt_sd=args.prompt_sd, rater_sd=args.rater_sd, tie_rate=args.tie_rate)
    query = PowerQuery(
        effect=args.effect,
        grid=args.grid,
        vary=args.vary,
        n_prompts=args.prompts,
        n_raters=args.raters,
        answers_per_rater=args.answers_per_rater,
        rater_model=model,
        studies=args.studies,
        resamples=args.resamples,
        method=args.ci,
        level=args.level,
        target=args.target,
        seed=args.seed,
    )
    curve = power_curve(query)
    print(query.describe())
    print(curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(needed(curve, query))
    return 0


def run_report(args) -> int:
    from .build import ReportInputs, ReportOptions, build_report

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
        frame, images = simulated_ratings(args.simulate_ratings, args.true_preference, args.seed)
        answers.append((f"simulated ratings of {args.simulate_ratings[0]} vs {args.simulate_ratings[1]}", frame))
        banner = (
            f"SIMULATED RATINGS: the side-by-side answers below were generated by reports.simulate (true preference for "
            f"{args.simulate_ratings[0].name} = {args.true_preference}, ties half), not by people. The images are real."
        )
    if not runs and not answers:
        raise ValueError("nothing to report: give RUN_OR_STUDY inputs or --simulate-ratings IMAGES_A IMAGES_B")
    options = ReportOptions(
        ci=CIConfig(method=args.ci, resamples=args.resamples or DEFAULT_RESAMPLES, seed=args.seed, level=args.level),
        run_resamples=args.resamples or DEFAULT_RESAMPLES_PAIRED,
        control_threshold=args.control_threshold,
        power_effect=args.power_effect,
        power_studies=args.power_studies,
        banner=banner,
    )
    out = build_report(
        ReportInputs(runs=tuple(runs), answers=tuple(answers), study_settings=settings, images=images),
        args.out,
        options,
        args.force,
    )
    print(f"report written to {out / 'index.html'}")
    return 0

"""The simulation's table (docs/human_eval.md, "Studies that stop when they know") and the goal check."""

from __future__ import annotations

import pandas as pd

from .simulate import FIXED

COVERAGE_GOAL = 95.0  # % of final intervals that hold the truth, under optional stopping
SAVINGS_GOAL = 40.0  # % fewer ratings than the fixed design, on average, at rates >= GOAL_FROM
GOAL_FROM = 0.6


def goal_failures(frame: pd.DataFrame, tolerance: float = 0.0) -> list[str]:
    """What the default plan misses of issue 30's goal: at rates >= 0.6 the fixed design's error rate
    or lower with >= 40 % fewer ratings on average; at every rate final-interval coverage >= 95 %
    against both truths (less `tolerance` points: a small run's Monte Carlo error). Empty: met."""
    out = []
    fixed = frame[frame["design"] == FIXED].set_index("rate")
    for r in frame[frame["default"]].itertuples():
        if r.rate >= GOAL_FROM and r.savings < SAVINGS_GOAL:
            out.append(f"rate {r.rate:g}: {r.savings:.1f} % fewer ratings, goal >= {SAVINGS_GOAL:g} %")
        if r.rate >= GOAL_FROM and r.error > fixed.loc[r.rate, "error"]:
            out.append(
                f"rate {r.rate:g}: error {r.error:.1f} % above the fixed design's {fixed.loc[r.rate, 'error']:.1f} %"
            )
        for truth in ("coverage_prompts", "coverage_population"):
            if getattr(r, truth) < COVERAGE_GOAL - tolerance:
                out.append(f"rate {r.rate:g}: {truth} {getattr(r, truth):.1f} %, goal >= {COVERAGE_GOAL:g} %")
    return out


def markdown(frame: pd.DataFrame, ranking: pd.DataFrame, made: dict) -> str:
    head = [
        f"Made by `imagen-bench sequential{' --quick' if made['quick'] else ''} --seed {made['seed']}` (imagen-bench "
        f"{made['package_version']}, {made['replicates']:,} replicates per rate, {made['seconds']:.0f} s on {made['machine']['cpu']}, "
        f"{made['machine']['cores']} cores).",
        "",
        "| true rate | design | ratings (mean) | fewer than fixed | error % | wrong winner % | no winner % | coverage, study's prompts % "
        "| coverage, population % | median width | stopped by |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [
        f"| {r.rate:g} | {r.design}{' (default)' if r.default else ''} | {r.mean_ratings:,.0f} | {r.savings:.0f} % | {r.error:.1f} | "
        f"{r.wrong:.1f} | {r.undecided:.1f} | {r.coverage_prompts:.1f} | {r.coverage_population:.1f} | {r.median_width:.3f} | {r.stops} |"
        for r in frame.itertuples()
    ]
    missed = goal_failures(frame)
    tail = [
        "",
        "Goal (issue 30) on the default plan: " + ("met." if not missed else "MISSED: " + "; ".join(missed) + "."),
        "",
        f"Several models ({made['ranking_replicates']:,} replicates per row): ratings until the full order is decided, at a "
        "Bonferroni alpha / pairs per pair.",
        "",
        "| models | adjacent preference | design | ratings (mean) | fewer than fixed | right order % | wrong order % | no order % "
        "| all pair intervals cover % |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    tail += [
        f"| {r.models} | {r.adjacent:g} | {r.design} | {r.mean_ratings:,.0f} | {r.savings:.0f} % | {r.right_order:.1f} | "
        f"{r.wrong_order:.1f} | {r.no_order:.1f} | {r.coverage_all_pairs:.1f} |"
        for r in ranking.itertuples()
    ]
    return "\n".join(head + rows + tail) + "\n"

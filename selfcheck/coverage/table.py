"""The coverage results as the markdown of docs/intervals.md: one table per family."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _per_image(frame: pd.DataFrame) -> list[str]:
    part = frame[frame["family"] == "per-image mean"]
    if part.empty:
        return []
    part = part.assign(p=part["scenario"].str.split("=").str[1])
    simulated = part[part["replicates"] != "exact"]["replicates"]
    out = [
        "## Per-image means over prompts (coverage %, 95 % nominal)",
        "",
        f"Binary (one 0/1 image per prompt): exact. Other kinds: {int(simulated.iloc[0]):,} simulated replicates per cell. Rows: kind "
        "of values and number of prompts P; columns: the true mean (p; for continuous 10 + 30 p on [0, 100]). **Bold**: outside 93.5-96.5 % "
        "or misses more than 2:1 to one side; †: no non-randomised interval can reach 93.5-96.5 % there (the binomial's "
        "outcomes are too coarse).",
        "",
    ]
    for method, sub in part.groupby("method", sort=False):
        cov = {(r.metric, r.n, r.p): r for r in sub.itertuples()}
        rows = list(dict.fromkeys((r.metric, r.n) for r in sub.itertuples()))
        cols = list(dict.fromkeys(sub["p"]))
        out += [
            f"### {method}",
            "",
            "| values | P | " + " | ".join(f"p = {c}" for c in cols) + " |",
            "|---|---:|" + "---:|" * len(cols),
        ]
        for metric, n in rows:
            cells = []
            for c in cols:
                r = cov.get((metric, n, c))
                if r is None:
                    cells.append("")
                    continue
                text = f"{r.coverage:.1f}" if r.pass_ else f"**{r.coverage:.1f}**"
                attainable = getattr(
                    r, "attainable", True
                )  # True / False for exact binary cells, nan (or absent) otherwise
                cells.append(text + ("†" if isinstance(attainable, (bool, np.bool_)) and not attainable else ""))
            out.append(f"| {metric} | {n} | " + " | ".join(cells) + " |")
        oor = sub["out_of_range"].max()
        out += ["", f"Largest share of intervals reaching outside [0, 1]: {oor:.1f} %.", ""]
    return out


def _coverage_rows(part: pd.DataFrame, scenario: str, out_of_range: bool) -> list[str]:
    """One markdown row per coverage cell of the set-metric families (`scenario`: its column's title)."""
    rng = " out of range % |" if out_of_range else ""
    out = [
        f"| metric | {scenario} | method | N | truth | replicates | coverage | truth above / below |{rng} median width | pass |",
        "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|" if out_of_range else "") + "---:|---|",
    ]
    for r in part.itertuples():
        cell = f" {r.out_of_range:.1f} |" if out_of_range else ""
        out.append(
            f"| {r.metric} | {r.scenario} | {r.method} | {r.n} | {r.truth:.4g} | {r.replicates} | {r.coverage:.1f} | "
            f"{r.miss_truth_above} / {r.miss_truth_below} |{cell} {r.median_width:.3g} | {'yes' if r.pass_ else 'no'} |"
        )
    return out + [""]


def _sets(frame: pd.DataFrame) -> list[str]:
    part = frame[frame["family"] == "set metric"]
    if part.empty:
        return []
    head = ["## Set metrics on Gaussian features, conditional on the reference (coverage %, 95 % nominal)", ""]
    return head + _coverage_rows(part, "scenario", out_of_range=True)


def _paired(frame: pd.DataFrame) -> list[str]:
    part = frame[frame["family"] == "paired set metric"]
    if part.empty:
        return []
    head = [
        "## Paired set-metric comparisons: two entries on the same prompts (coverage of A - B %, 95 % nominal)",
        "",
        "Where A and B follow one scenario the truth is exactly 0 and 100 - coverage is the test's type I error.",
        "",
    ]
    return head + _coverage_rows(part, "A - B", out_of_range=False)


def _ranks(frame: pd.DataFrame) -> list[str]:
    part = frame[frame["family"] == "ranks"]
    if part.empty:
        return []
    out = [
        "## Ranks among identical entries",
        "",
        "| method | scenario | prompts | tables | tables with a false separation % | pass |",
        "|---|---|---:|---:|---:|---|",
    ]
    out += [
        f"| {r.method} | {r.scenario} | {r.n} | {r.replicates} | {r.false_separation:.1f} | {'yes' if r.pass_ else 'no'} |"
        for r in part.itertuples()
    ]
    return out + [""]


def _crossed(frame: pd.DataFrame) -> list[str]:
    part = frame[frame["family"] == "crossed human ratings"]
    if part.empty:
        return []
    rows = part.to_dict("records")
    first = rows[0]

    def pm(r: dict, key: str) -> str:
        return f"{r[key]:.2f} ± {r[key + ' se']:.2f}"

    out = [
        "### Crossed human-rating interval: misses in the tail (%, two-sided)",
        "",
        f"{int(first['replicates']):,} simulated studies per row, {int(first['resamples']):,} bootstrap resamples; ± one Monte "
        "Carlo SE. Nominal misses: 5 / 1 / 0.83 %. Sides: truth above / below the interval. pass: misses at 95 % "
        "and 99.17 % (and at p = 0.5 the type I error at 0.05 and 0.01) at most 2 SE above nominal, and the sides at "
        "95 % within 2:1.",
        "",
        "| design | answers | true p | method | median df | 95 % | 99 % | 99.17 % | sides at 95 % | sides at 99.17 % | pass |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    out += [
        f"| {r['design']} | {r['answers']} | {r['truth']:g} | {r['method']} | {r['median df']:.1f} | {pm(r, 'miss 95')} | "
        f"{pm(r, 'miss 99')} | {pm(r, 'miss 99.17')} | {r['above 95']:.2f} / {r['below 95']:.2f} | "
        f"{r['above 99.17']:.2f} / {r['below 99.17']:.2f} | "
        f"{'yes' if r['pass_'] else 'no'} |"
        for r in rows
    ]
    null = [r for r in rows if r["truth"] == 0.5]
    if null:
        out += [
            "",
            "### Crossed human-rating interval: type I error % of the p-value of no preference (true p = 0.5)",
            "",
            "The p-value is dual to the interval (p < 0.05 exactly when the 95 % interval excludes 1/2), so the first two "
            "columns repeat the misses at 95 % and 99 % of the rows at p = 0.5.",
            "",
            "| design | answers | method | at 0.05 | at 0.01 | at 0.001 |",
            "|---|---|---|---:|---:|---:|",
        ]
        out += [
            f"| {r['design']} | {r['answers']} | {r['method']} | {pm(r, 'type I 0.05')} | {pm(r, 'type I 0.01')} | "
            f"{pm(r, 'type I 0.001')} |"
            for r in null
        ]
    return out + [""]


def markdown(frame: pd.DataFrame, made: dict) -> str:
    frame = frame.rename(columns={"pass": "pass_"}).assign(**{"pass": lambda f: f["pass_"]})
    head = [
        f"Made by `imagen-bench coverage{' --quick' if made['quick'] else ''}` (imagen-bench {made['package_version']}, seed "
        f"{made['seed']}, {made['seconds']:.0f} s on {made['machine']['cpu']}).",
        "",
    ]
    return "\n".join(head + _per_image(frame) + _sets(frame) + _paired(frame) + _ranks(frame) + _crossed(frame)) + "\n"

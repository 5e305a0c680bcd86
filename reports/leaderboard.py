"""A leaderboard across runs: every cell of every run folder (an entry: a model at its sampling
settings) x every metric, each value with its interval, N and how it was made. Reads only what
the sweeps wrote (contract 1); recomputes nothing.

    value     per-image metrics (metrics_image.parquet: CLIP score, OCR, shapes verifier, ...): the
              mean over images with a 95 % interval from resampling prompts (the samples of one
              prompt stay together; mean +- t x bootstrap SE, paired.prompt_bootstrap). Set metrics
              (metrics_cell only: FID, KID, precision / recall / density / coverage): the value as
              written, with the interval the metric recorded (FID with bootstrap = B: ci_low /
              ci_high) and none otherwise: a run folder keeps no features to resample. FID-N is
              biased upward as N shrinks, so such numbers compare only at equal N (enforced below).
    rank      per-image metrics with a known direction: 1 + the number of entries that beat this
              one in a paired comparison on their shared (prompt set, prompt, sample) images (the
              prompt-bootstrap interval of the mean difference excludes 0). Entries no comparison
              separates share a rank. Set metrics are ordered by value but not ranked.
    refusal   a metric made differently in two entries (another resize, N, reference, feature
              weights or precision: any key of its details but the package version) is refused,
              naming the key and both values; choose the metrics to compare with `metrics`.
    default   every metric of the runs but per-category breakdowns (details category other than
              "overall", e.g. shapes_accuracy/Colors): those are the report's per-category tables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from .paired import DEFAULT_RESAMPLES, PAIR_KEYS, paired_difference, prompt_bootstrap
from .runs import read_run_metrics

# Which way is better, by metric name (the part after "label/" when a spec labels a metric).
# A metric named in neither set (kid_std, a test metric) is shown but never ranked.
LOWER_IS_BETTER = frozenset({"fid", "kid_mean", "cmmd", "fd_dinov2", "fd_clip"})
HIGHER_IS_BETTER = frozenset({"clip_score", "vqascore", "vqa_question_score", "vqa_all_questions", "ocr_score", "shapes_accuracy",
                              "shapes_correct", "shapes_claim_accuracy", "precision", "recall", "density", "coverage"})


@dataclass(frozen=True)
class LeaderboardOptions:
    metrics: tuple[str, ...] | None = None  # None: every metric of the runs
    leave_out_mixed: bool = False  # True: a metric made differently is left out (and named) instead of refused
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100 for a percentile interval, got {self.resamples}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def method(self) -> str:
        return (f"{self.level:.0%} interval: mean +- t x bootstrap SE from {self.resamples} resamples of prompts (seed {self.seed}); "
                f"ranks from paired prompt-bootstrap differences on shared images")


def direction(metric: str) -> str | None:
    base = metric.rsplit("/", 1)[-1]
    return "lower" if base in LOWER_IS_BETTER else "higher" if base in HIGHER_IS_BETTER else None


def _details(text) -> dict:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return {}
    try:
        parsed = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return {"details": str(text)}
    return parsed if isinstance(parsed, dict) else {"details": parsed}


def entries(runs: list[str | Path]) -> pd.DataFrame:
    """One row per (entry, metric): run, cell_id, entry label, model, metric, value, n, details (dict)."""
    rows = []
    names = [Path(r).resolve().name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"two run folders share a name ({', '.join(names)}); entries are labelled RUN/CELL, rename one")
    for run in runs:
        rm = read_run_metrics(run)
        metrics = pd.read_parquet(Path(run) / "metrics_cell.parquet")
        cells = rm.cells.set_index("cell_id", drop=False)
        label = cells["name"] if "name" in cells.columns else cells["cell_id"]
        model = cells["model"] if "model" in cells.columns else label
        for m in metrics.itertuples(index=False):
            rows.append({"run": str(Path(run)), "cell_id": m.cell_id, "entry": f"{rm.name}/{label[m.cell_id]}", "model": model[m.cell_id],
                         "metric": m.metric, "value": pd.to_numeric(m.value, errors="coerce"), "n": m.n, "details": _details(m.details)})
    return pd.DataFrame(rows, columns=["run", "cell_id", "entry", "model", "metric", "value", "n", "details"])


# recorded with a number but not part of how it was made: provenance, and a set metric's own interval
NOT_HOW = frozenset({"package_version", "ci_low", "ci_high", "bootstrap_shift"})


def made_differently(frame: pd.DataFrame) -> dict[str, str]:
    """metric -> the first difference in how two entries made it (the details key and both values),
    for every metric whose details differ between entries (unavailable entries aside)."""
    out = {}
    for metric, group in frame.groupby("metric", sort=True):
        made = [(r.entry, r.details) for r in group.itertuples() if not r.details.get("unavailable")]
        for (a, da), (b, db) in zip(made, made[1:]):
            keys = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k) and k not in NOT_HOW)
            if keys:
                k = keys[0]
                out[metric] = f"{metric} was made differently for {a} and {b} ({k}: {da.get(k)!r} vs {db.get(k)!r})"
                break
    return out


def _per_image(runs: list[str | Path]) -> pd.DataFrame:
    frames = []
    for run in runs:
        path = Path(run) / "metrics_image.parquet"
        if path.is_file():
            frames.append(pd.read_parquet(path).assign(run=str(Path(run))))
    cols = ["run", "cell_id", "metric", *PAIR_KEYS, "value"]
    return pd.concat(frames, ignore_index=True)[cols].dropna(subset=["value"]) if frames else pd.DataFrame(columns=cols)


def leaderboard(runs: list[str | Path], options: LeaderboardOptions = LeaderboardOptions()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(board: one row per (metric, entry) with value, interval, n, rank, how; pairs: one row per
    compared pair of entries and per-image metric, with the difference, its interval and McNemar's
    p for 0/1 metrics). board.attrs["left_out"]: metric -> why, with options.leave_out_mixed."""
    frame = entries(runs)
    if frame.empty:
        raise ValueError("leaderboard: the runs hold no metrics (metrics_cell.parquet is empty); add [[metrics]] to the specs")
    if options.metrics is not None:
        unknown = sorted(set(options.metrics) - set(frame["metric"]))
        if unknown:
            raise ValueError(f"leaderboard: no metric {unknown} in these runs; metrics: {', '.join(sorted(frame['metric'].unique()))}")
        frame = frame[frame["metric"].isin(options.metrics)]
    else:
        breakdown = {m for m, d in zip(frame["metric"], frame["details"]) if d.get("category", "overall") != "overall"}
        frame = frame[~frame["metric"].isin(breakdown)]
    mixed = made_differently(frame)
    if mixed and not options.leave_out_mixed:
        metric, why = next(iter(mixed.items()))
        raise ValueError(f"leaderboard: {why}; only numbers made the same way stand side by side: leave {metric} out with --metrics")
    frame = frame[~frame["metric"].isin(mixed)]
    images = _per_image(runs)
    board, pairs = [], []
    for metric, group in frame.groupby("metric", sort=True):
        # the per-image values this cell metric is the mean of: the same name, or the one its details name
        image_metric = next((d["per_image_metric"] for d in group["details"] if "per_image_metric" in d), metric)
        per = images[images["metric"] == image_metric].set_index(["run", "cell_id"])
        rows = []
        for r in group.itertuples():
            row = {"metric": metric, "entry": r.entry, "model": r.model, "value": r.value, "CI low": np.nan, "CI high": np.nan,
                   "n": r.n, "rank": np.nan,
                   "how": "; ".join(f"{k}={v}" for k, v in sorted(r.details.items()) if k not in NOT_HOW | {"unavailable"}),
                   "unavailable": r.details.get("unavailable", ""), "run": r.run, "cell_id": r.cell_id}
            key = (r.run, r.cell_id)
            if "ci_low" in r.details:  # a set metric's own interval (FID with bootstrap = B)
                row["CI low"], row["CI high"] = float(r.details["ci_low"]), float(r.details["ci_high"])
            elif key in per.index and np.isfinite(r.value):
                cell = per.loc[[key]]
                mean, low, high = prompt_bootstrap(cell["prompt_id"].astype(str).to_numpy(), cell["value"].to_numpy(),
                                                   options.resamples, options.seed, options.level)
                if np.isclose(mean, r.value, rtol=1e-9, atol=1e-12):  # else the cell value is not that mean (claim-weighted, ...)
                    row["CI low"], row["CI high"] = low, high
            rows.append(row)
        way = direction(metric)
        measured = [row for row in rows if np.isfinite(row["value"])]
        if way is not None and not per.empty and measured and any(np.isfinite(row["CI low"]) for row in measured):
            beaten = {row["entry"]: 0 for row in measured}
            for a, b in combinations(measured, 2):
                result = _pair(per, a, b, metric, options)
                if result is None:
                    continue
                pairs.append(result)
                above, below = result["CI low"] > 0, result["CI high"] < 0  # mean(a - b) is clearly > 0 / < 0
                if (above and way == "higher") or (below and way == "lower"):
                    beaten[b["entry"]] += 1
                elif (below and way == "higher") or (above and way == "lower"):
                    beaten[a["entry"]] += 1
            if any(p["metric"] == metric for p in pairs):
                for row in measured:
                    row["rank"] = 1 + beaten[row["entry"]]
        reverse = way != "lower"
        board += sorted(rows, key=lambda row: (not np.isfinite(row["value"]), -row["value"] if reverse else row["value"]))
    board = pd.DataFrame(board)
    board.attrs["left_out"] = mixed
    return board, pd.DataFrame(pairs)


def _pair(per: pd.DataFrame, a: dict, b: dict, metric: str, options: LeaderboardOptions) -> dict | None:
    """Entry a minus entry b on their shared images (`per`: the per-image values behind `metric`);
    None when they share none (other prompts)."""
    keys = list(PAIR_KEYS)
    try:
        ya = per.loc[[(a["run"], a["cell_id"])]].set_index(keys)["value"]
        yb = per.loc[[(b["run"], b["cell_id"])]].set_index(keys)["value"]
    except KeyError:
        return None
    joined = pd.concat({"a": ya, "b": yb}, axis=1, join="inner").dropna()
    if joined.empty:
        return None
    prompt = joined.index.get_level_values("prompt_id").astype(str).to_numpy()
    stats = paired_difference(prompt, joined["a"].to_numpy(), joined["b"].to_numpy(), options.resamples, options.seed, options.level)
    stats = {("value A" if k == "value" else "value B" if k == "baseline" else k): v for k, v in stats.items()}
    return {"metric": metric, "A": a["entry"], "B": b["entry"], **stats}


def wide(board: pd.DataFrame, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Entries x metrics as text, "value [low, high] #rank" (the console and HTML view); `labels`
    renames entries (the report's short E1, E2, ... with the full names in a legend)."""
    def cell(r: dict) -> str:
        if not np.isfinite(r["value"]):
            return r["unavailable"] or "-"
        text = f"{r['value']:.4g}"
        if np.isfinite(r["CI low"]) and np.isfinite(r["CI high"]):
            text += f" [{r['CI low']:.4g}, {r['CI high']:.4g}]"
        if np.isfinite(r["rank"]):
            text += f" #{int(r['rank'])}"
        return text

    shown = board.assign(text=[cell(r) for r in board.to_dict("records")])
    order = list(dict.fromkeys(board["entry"]))
    table = shown.pivot_table(index="entry", columns="metric", values="text", aggfunc="first").reindex(order).reset_index()
    if labels:
        table["entry"] = table["entry"].map(labels)
    return table.rename_axis(columns=None)


def by_category(runs: list[str | Path], options: LeaderboardOptions = LeaderboardOptions()) -> pd.DataFrame:
    """Per-image metrics broken down by prompt category (the manifest's: DrawBench, PartiPrompts and
    GenEval categories / tags): one row per (metric, category, entry) with the mean, its
    prompt-bootstrap interval and N images. Empty when the runs have no per-image values."""
    images = _per_image(runs)
    if images.empty:
        return pd.DataFrame()
    frames = []
    for run in runs:
        if not (Path(run) / "manifest.parquet").is_file():
            continue  # a run folder without its manifest: no categories to break down by
        manifest = pd.read_parquet(Path(run) / "manifest.parquet", columns=["cell_id", *PAIR_KEYS, "category"])
        cells = pd.read_parquet(Path(run) / "cells.parquet")
        names = dict(zip(cells["cell_id"], cells["name"] if "name" in cells.columns else cells["cell_id"]))
        part = images[images["run"] == str(Path(run))].merge(manifest, on=["cell_id", *PAIR_KEYS], how="left")
        frames.append(part.assign(entry=[f"{Path(run).resolve().name}/{names.get(c, c)}" for c in part["cell_id"]]))
    if not frames:
        return pd.DataFrame()
    joined = pd.concat(frames, ignore_index=True)
    if options.metrics is not None:
        joined = joined[joined["metric"].isin(options.metrics)]
    rows = []
    for (metric, category, entry), g in joined.groupby(["metric", "category", "entry"], sort=True):
        mean, low, high = prompt_bootstrap(g["prompt_id"].astype(str).to_numpy(), g["value"].to_numpy(), options.resamples,
                                           options.seed, options.level)
        rows.append({"metric": metric, "category": category, "entry": entry, "value": mean, "CI low": low, "CI high": high, "n": len(g)})
    return pd.DataFrame(rows)

"""A leaderboard across runs: every cell of every run folder (an entry: a model at its sampling
settings on one prompt set) x every metric, each value with its interval, N and how it was made.
Reads only what the sweeps wrote (contract 1); recomputes no metric.

What a number means comes from the result itself: each metric records its MetricMeta in
details["meta"] (bench.metrics.base: direction, range, interval method, min_n). A result without
one (a run made before it was recorded) is shown without interval or rank, and says so.

    value     per-image metrics (metrics_image.parquet: CLIP score, OCR, shapes verifier, ...): the
              mean over images with a 95 % interval over prompts kept in the metric's range
              (reports.intervals.bounded_mean: Wilson at the prompt-cluster effective size for
              proportions, t for continuous values). Set metrics (metrics_cell only): the value as
              written with the interval the metric recorded (blocks = G: ci_low / ci_high), none
              otherwise: a run folder keeps no features to resample.
    small N   a metric with min_n (FID / FD: 2,048) below it is marked "N < 2,048: not comparable",
              never ordered or ranked.
    rank      within one prompt set: 1 + the number of entries that beat this one in a paired
              comparison on their shared images (per-image metrics: the prompt-bootstrap t test;
              set metrics with blocks: the t test on the block-by-block pseudo-value differences),
              a pair separated when its Holm-adjusted p (over all pairs of the metric and prompt
              set) is below 1 - level. Entries no comparison separates share a rank.
    refusal   within one prompt set, a metric made differently in two entries (another resize, N,
              reference, feature weights or precision: any key of its details but provenance and
              the interval's own numbers) is refused, naming the key and both values; choose the
              metrics to compare with `metrics`. Different prompt sets are never compared.
    default   every metric of the runs but per-category breakdowns (details category other than
              "overall", e.g. shapes_accuracy/Colors): those are the report's per-category tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import RESAMPLES_RANGE
from .intervals import bounded_mean, holm
from .paired import (
    DEFAULT_RESAMPLES,
    PAIR_KEYS,
    PROMPT_BOOTSTRAP_TEST,
    SECOND_ORDER_MIN_BLOCKS,
    block_difference,
    paired_difference,
)
from .runs import image_metric_meta, meta_of, parse_details, read_run_metrics


@dataclass(frozen=True)
class LeaderboardOptions:
    metrics: tuple[str, ...] | None = None  # None: every metric of the runs
    leave_out_mixed: bool = False  # True: a metric made differently is left out (and named) instead of refused
    resamples: int = DEFAULT_RESAMPLES  # paired comparisons of per-image metrics (prompt bootstrap)
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        if not RESAMPLES_RANGE[0] <= self.resamples <= RESAMPLES_RANGE[1]:
            raise ValueError(
                f"resamples must be in [{RESAMPLES_RANGE[0]}, {RESAMPLES_RANGE[1]}], got {self.resamples}"
            )
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def method(self) -> str:
        return (
            f"{self.level:.0%} intervals: per-image means over prompts kept in the metric's range (Wilson at the prompt-cluster "
            f"effective size, or t for continuous metrics); set metrics as each recorded (blocks = G); ranks within a prompt set "
            f"from paired comparisons on shared images ({self.resamples} prompt resamples, seed {self.seed}; block differences for "
            f"set metrics, KID's and CMMD's variance less its second-order excess from {SECOND_ORDER_MIN_BLOCKS} blocks; each "
            f"pair's test in its row), Holm-corrected over each table's pairs"
        )


def direction(details: dict) -> str | None:
    way = meta_of(details).get("direction")
    return way if way in ("higher", "lower") else None


def entries(runs: list[str | Path]) -> pd.DataFrame:
    """One row per (entry, metric): run, cell_id, entry label, model, prompt_set, metric, value, n, details (dict)."""
    rows = []
    names = [Path(r).resolve().name for r in runs]
    same = [r for r, n in zip(runs, names) if names.count(n) > 1]
    if same:
        raise ValueError(
            f"run folders {', '.join(map(str, same[:3]))} share the name {Path(same[0]).resolve().name!r}; "
            f"entries are labelled RUN/CELL: rename one"
        )
    for run in runs:
        rm = read_run_metrics(run)
        metrics = pd.read_parquet(Path(run) / "metrics_cell.parquet")
        cells = rm.cells.set_index("cell_id", drop=False)
        label = cells["name"] if "name" in cells.columns else cells["cell_id"]
        model = cells["model"] if "model" in cells.columns else label
        prompt_set = (
            cells["prompt_set"].astype(str) if "prompt_set" in cells.columns else pd.Series("", index=cells.index)
        )
        for m in metrics.itertuples(index=False):
            rows.append(
                {
                    "run": str(Path(run)),
                    "cell_id": m.cell_id,
                    "entry": f"{rm.name}/{label[m.cell_id]}",
                    "model": model[m.cell_id],
                    "prompt_set": prompt_set[m.cell_id],
                    "metric": m.metric,
                    "value": pd.to_numeric(m.value, errors="coerce"),
                    "n": m.n,
                    "details": parse_details(m.details),
                }
            )
    return pd.DataFrame(
        rows, columns=["run", "cell_id", "entry", "model", "prompt_set", "metric", "value", "n", "details"]
    )


# recorded with a number but not part of how it was made: provenance, and a set metric's own interval
# (se_jackknife: KID's block jackknife SE before its second-order correction; bootstrap_t: KID's
# bootstrap-t quantiles, units and usable draws; second_order: KID's and CMMD's block-pair kernel sums
# for paired comparisons; per-cell numbers, bench.metrics.fid.interval_details)
NOT_HOW = frozenset(
    {
        "package_version",
        "ci_low",
        "ci_high",
        "se",
        "se_jackknife",
        "bootstrap_t",
        "ci_method",
        "blocks",
        "block_values",
        "block_key",
        "second_order",
        "meta",
    }
)


def made_differently(frame: pd.DataFrame) -> dict[str, str]:
    """metric -> the first difference in how two entries on the same prompt set made it (the details
    key and both values), for every metric whose details differ so (unavailable entries aside)."""
    out = {}
    for (metric, _), group in frame.groupby(["metric", "prompt_set"], sort=True):
        if metric in out:
            continue
        made = [(r.entry, r.details) for r in group.itertuples() if not r.details.get("unavailable")]
        for (a, da), (b, db) in zip(made, made[1:]):
            keys = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k) and k not in NOT_HOW)
            if keys:
                out[metric] = _difference(metric, a, b, keys, da, db)
                break
    return out


# a refusal is read on one terminal line: entry names and values are clipped to these many characters
ENTRY_CHARS, VALUE_CHARS = 36, 16


def clip(text: str, n: int) -> str:
    """`text` in at most n characters: its head and tail (a run name and a cell's hash) around "..."."""
    return text if len(text) <= n else f"{text[: n - 3 - n // 3]}...{text[-(n // 3) :]}"


def _difference(metric: str, a: str, b: str, keys: list[str], da: dict, db: dict) -> str:
    """The first differing key with both values, and how many more keys differ: ~200 characters at most."""
    k = keys[0]
    more = f" and {len(keys) - 1} more key{'s' if len(keys) > 2 else ''}" if len(keys) > 1 else ""
    return (
        f"{metric} was made differently for {clip(a, ENTRY_CHARS)} and {clip(b, ENTRY_CHARS)} ({clip(k, VALUE_CHARS)}: "
        f"{clip(repr(da.get(k)), VALUE_CHARS)} vs {clip(repr(db.get(k)), VALUE_CHARS)}{more})"
    )


def _per_image(runs: list[str | Path]) -> pd.DataFrame:
    frames = []
    for run in runs:
        path = Path(run) / "metrics_image.parquet"
        if path.is_file():
            frames.append(pd.read_parquet(path).assign(run=str(Path(run))))
    cols = ["run", "cell_id", "metric", *PAIR_KEYS, "value"]
    return (
        pd.concat(frames, ignore_index=True)[cols].dropna(subset=["value"]) if frames else pd.DataFrame(columns=cols)
    )


def leaderboard(
    runs: list[str | Path], options: LeaderboardOptions = LeaderboardOptions()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(board: one row per (metric, entry) with value, interval, n, rank, note, how; pairs: one row
    per compared pair of entries and metric, with the difference, its interval, p and Holm's p (and
    McNemar's p for 0/1 metrics)). board.attrs["left_out"]: metric -> why, with options.leave_out_mixed."""
    frame = entries(runs)
    if frame.empty:
        raise ValueError(
            "leaderboard: the runs hold no metrics (metrics_cell.parquet is empty); add [[metrics]] to the specs"
        )
    if options.metrics is not None:
        unknown = sorted(set(options.metrics) - set(frame["metric"]))
        if unknown:
            raise ValueError(
                f"leaderboard: no metric {unknown} in these runs; metrics: {', '.join(sorted(frame['metric'].unique()))}"
            )
        frame = frame[frame["metric"].isin(options.metrics)]
    else:
        breakdown = {m for m, d in zip(frame["metric"], frame["details"]) if d.get("category", "overall") != "overall"}
        frame = frame[~frame["metric"].isin(breakdown)]
    mixed = made_differently(frame)
    if mixed and not options.leave_out_mixed:
        metric, why = next(iter(mixed.items()))
        raise ValueError(f"{why}; not compared: leave it out with --metrics")
    frame = frame[~frame["metric"].isin(mixed)]
    images = _per_image(runs)
    board, pairs = [], []
    for (metric, prompt_set), group in frame.groupby(["metric", "prompt_set"], sort=True):
        # the per-image values this cell metric is the mean of: the same name, or the one its details name
        image_metric = next((d["per_image_metric"] for d in group["details"] if "per_image_metric" in d), metric)
        per = images[images["metric"] == image_metric].set_index(["run", "cell_id"])
        rows = [_board_row(r, metric, per, options) for r in group.itertuples()]
        way = next((direction(r.details) for r in group.itertuples() if direction(r.details)), None)
        comparable = [row for row in rows if np.isfinite(row["value"]) and not row["note"]]
        group_pairs = []
        if way is not None:
            for a, b in combinations(comparable, 2):
                result = _pair(per, a, b, options) if a["per_image"] else _pair_blocks(a, b, options.level)
                if result is not None:
                    group_pairs.append(
                        {
                            "metric": metric,
                            "prompt_set": prompt_set,
                            "direction": way,
                            "unit": "images" if a["per_image"] else "prompt blocks",
                            "A": a["entry"],
                            "B": b["entry"],
                            **result,
                        }
                    )
        if group_pairs:
            beaten = {row["entry"]: 0 for row in comparable}
            for pair, p_holm in zip(group_pairs, holm([pair["p"] for pair in group_pairs])):
                pair["p (Holm)"] = float(p_holm)
                pair["separated"] = bool(p_holm < 1 - options.level)
                if pair["separated"]:
                    a_better = (pair["difference"] > 0) == (way == "higher")
                    beaten[pair["B"] if a_better else pair["A"]] += 1
            for row in comparable:
                row["rank"] = 1 + beaten[row["entry"]]
        pairs += group_pairs
        sign = -1 if way != "lower" else 1
        board += sorted(
            rows,
            key=lambda row: (
                not np.isfinite(row["value"]),
                bool(row["note"]),
                sign * row["value"] if np.isfinite(row["value"]) else 0.0,
            ),
        )
    board = pd.DataFrame(
        [
            {
                k: v
                for k, v in row.items()
                if k not in ("per_image", "block_values", "second_order", "block_key", "range")
            }
            for row in board
        ]
    )
    board.attrs["left_out"] = mixed
    return board, pd.DataFrame(pairs)


def _board_row(r, metric: str, per: pd.DataFrame, options: LeaderboardOptions) -> dict:
    meta = meta_of(r.details)
    low, high = meta.get("range") or [None, None]
    row = {
        "metric": metric,
        "prompt_set": r.prompt_set,
        "entry": r.entry,
        "model": r.model,
        "value": r.value,
        "CI low": np.nan,
        "CI high": np.nan,
        "n": r.n,
        "rank": np.nan,
        "note": "",
        "interval": "",
        "how": "; ".join(f"{k}={v}" for k, v in sorted(r.details.items()) if k not in NOT_HOW | {"unavailable"}),
        "unavailable": r.details.get("unavailable", ""),
        "run": r.run,
        "cell_id": r.cell_id,
        "per_image": False,
        "block_values": r.details.get("block_values"),
        "second_order": r.details.get("second_order"),
        "block_key": r.details.get("block_key"),
        "range": (low, high),
    }
    if meta.get("min_n") and np.isfinite(r.value) and int(r.n) < int(meta["min_n"]):
        row["note"] = f"N < {int(meta['min_n']):,}: not comparable"
    key = (r.run, r.cell_id)
    if "ci_low" in r.details:  # a set metric's own interval (blocks = G)
        row["CI low"], row["CI high"] = float(r.details["ci_low"]), float(r.details["ci_high"])
        row["interval"] = r.details.get("ci_method", meta.get("interval", ""))
    elif meta.get("interval") in ("wilson-eff", "t") and key in per.index and np.isfinite(r.value):
        cell = per.loc[[key]]
        iv = bounded_mean(
            cell["prompt_id"].astype(str).to_numpy(),
            cell["value"].to_numpy(),
            low,
            high,
            options.level,
            meta["interval"],
        )
        if np.isclose(
            iv.mean, r.value, rtol=1e-9, atol=1e-12
        ):  # else the cell value is not that mean (claim-weighted, ...)
            row.update(
                {
                    "CI low": iv.low,
                    "CI high": iv.high,
                    "interval": f"{meta['interval']} over {iv.n_prompts} prompts",
                    "per_image": True,
                }
            )
    elif not meta and np.isfinite(r.value):
        row["interval"] = (
            "none: this run records no MetricMeta (made before it was recorded); rerun the sweep's scoring"
        )
    return row


def _pair(per: pd.DataFrame, a: dict, b: dict, options: LeaderboardOptions) -> dict | None:
    """Entry a minus entry b on their shared images (`per`: the per-image values behind the
    metric), the interval kept inside +-(high - low); None when they share no image."""
    keys = list(PAIR_KEYS)
    try:
        ya = per.loc[[(a["run"], a["cell_id"])]].set_index(keys)["value"]
        yb = per.loc[[(b["run"], b["cell_id"])]].set_index(keys)["value"]
    except KeyError:
        return None
    joined = pd.concat({"a": ya, "b": yb}, axis=1, join="inner").dropna()
    if joined.empty or not b["per_image"]:
        return None
    prompt = joined.index.get_level_values("prompt_id").astype(str).to_numpy()
    stats = paired_difference(
        prompt, joined["a"].to_numpy(), joined["b"].to_numpy(), options.resamples, options.seed, options.level
    )
    stats = _within_range(stats, a["range"])
    renamed = {("value A" if k == "value" else "value B" if k == "baseline" else k): v for k, v in stats.items()}
    return {**renamed, "test": PROMPT_BOOTSTRAP_TEST}


def _within_range(stats: dict, value_range: tuple) -> dict:
    """A difference's interval kept inside +-(high - low) of the metric's range (unbounded: as is)."""
    lo, hi = value_range
    width = np.inf if lo is None or hi is None else float(hi) - float(lo)  # a difference lies in +-width
    return {**stats, "CI low": max(stats["CI low"], -width), "CI high": min(stats["CI high"], width)}


def _pair_blocks(a: dict, b: dict, level: float) -> dict | None:
    """Entry a minus entry b for a set metric with blocks on the same prompts (equal block_key):
    block_difference on their G block values (KID, CMMD: with their recorded second-order parts), its
    interval inside +-(high - low) of the range."""
    if not (a["block_values"] and b["block_values"] and a["block_key"] and a["block_key"] == b["block_key"]):
        return None
    second = (a["second_order"], b["second_order"]) if a["second_order"] and b["second_order"] else None
    row = _within_range(block_difference(a["block_values"], b["block_values"], level, second), a["range"])
    return {"N pairs": row.pop("N pairs"), "value A": a["value"], "value B": b["value"], **row}


def wide(board: pd.DataFrame, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Entries x metrics as text, "value [low, high] #rank" (the console and HTML view); `labels`
    renames entries (the report's short E1, E2, ... with the full names in a legend)."""

    def cell(r: dict) -> str:
        if not np.isfinite(r["value"]):
            return r["unavailable"] or "-"
        text = f"{r['value']:.4g}"
        if r.get("note"):
            return f"{text} ({r['note']})"
        if np.isfinite(r["CI low"]) and np.isfinite(r["CI high"]):
            text += f" [{r['CI low']:.4g}, {r['CI high']:.4g}]"
        if np.isfinite(r["rank"]):
            text += f" #{int(r['rank'])}"
        return text

    shown = board.assign(text=[cell(r) for r in board.to_dict("records")])
    order = list(dict.fromkeys(board["entry"]))
    table = (
        shown.pivot_table(index="entry", columns="metric", values="text", aggfunc="first").reindex(order).reset_index()
    )
    if labels:
        table["entry"] = table["entry"].map(labels)
    return table.rename_axis(columns=None)


def by_category(runs: list[str | Path], options: LeaderboardOptions = LeaderboardOptions()) -> pd.DataFrame:
    """Per-image metrics broken down by prompt category (the manifest's: DrawBench, PartiPrompts and
    GenEval categories / tags): one row per (metric, category, entry) with the mean, its interval
    over the category's prompts (intervals.bounded_mean with the metric's recorded range and method;
    none when the run records no MetricMeta) and N images. Empty when the runs have no per-image values."""
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
    metas = image_metric_meta(runs)
    rows = []
    for (metric, category, entry), g in joined.groupby(["metric", "category", "entry"], sort=True):
        meta = metas.get(metric, {})
        prompt, y = g["prompt_id"].astype(str).to_numpy(), g["value"].to_numpy()
        if meta.get("interval") in ("wilson-eff", "t"):
            iv = bounded_mean(prompt, y, meta["range"][0], meta["range"][1], options.level, meta["interval"])
            mean, low, high = iv.mean, iv.low, iv.high
        else:
            mean, low, high = float(y.mean()), float("nan"), float("nan")
        rows.append(
            {
                "metric": metric,
                "category": category,
                "entry": entry,
                "value": mean,
                "CI low": low,
                "CI high": high,
                "n": len(g),
            }
        )
    return pd.DataFrame(rows)

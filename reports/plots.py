"""The paper's figures as matplotlib figures. A figure whose data the inputs lack raises SkipPlot
with a one-line reason; the report prints that reason where the figure would be.

Every plot function returns (figure, points): `points` has one row per plotted point (POINT_COLUMNS:
panel, series label, x and y with their names, the interval where one is drawn, the point's
annotation), which the report writes beside the picture as tables/<figure>.csv."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only; no display on the machines that build reports
# Labels are user text (model names, categories): "$5 and $10" is money, not mathtext. Matplotlib
# would parse text between dollar signs as TeX (garbling it, or failing on a multi-line error).
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .preference import ALL  # noqa: E402
from .runs import RunMetrics  # noqa: E402

POINT_COLUMNS = ["panel", "series", "x_name", "x", "y_name", "y", "low", "high", "label"]
Plotted = tuple[Figure, pd.DataFrame]


class SkipPlot(Exception):
    """The inputs lack what this figure needs; the message says what."""


def _points(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


def preference_bars(table: pd.DataFrame, model_a: str, model_b: str, ci_text: str) -> Plotted:
    """Imagen Fig. 3 / A.15: per category, rate of preferring model A (ties half) with CI bars."""
    pair = table[(table.model_a == model_a) & (table.model_b == model_b)]
    questions = sorted(pair.question.unique())
    fig, axes = plt.subplots(1, len(questions), figsize=(6.5 * len(questions), 4.2), squeeze=False, sharey=True)
    points = []
    for ax, question in zip(axes[0], questions):
        rows = pair[pair.question == question]
        rows = pd.concat([rows[rows.category == ALL], rows[rows.category != ALL]])
        points += [
            {
                "panel": question,
                "series": f"prefer {model_a} over {model_b}",
                "x_name": "category",
                "x": r.category,
                "y_name": "preference rate (ties = 1/2)",
                "y": r.pref_A,
                "low": r.pref_A_low,
                "high": r.pref_A_high,
                "label": "",
            }
            for r in rows.itertuples()
        ]
        x = np.arange(len(rows))
        err = np.vstack([rows.pref_A - rows.pref_A_low, rows.pref_A_high - rows.pref_A])
        colors = ["#444444" if c == ALL else "#4C72B0" for c in rows.category]
        ax.bar(x, rows.pref_A, yerr=err, capsize=3, color=colors)
        ax.axhline(0.5, color="red", lw=1, ls="--")
        ax.set_xticks(x, rows.category, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{question}: prefer {model_a} over {model_b}")
        ax.set_ylabel("preference rate (ties = 1/2)")
    # wrapped to the figure's width (~17 characters an inch at 7 pt): one long line was cut at both edges
    fig.suptitle(textwrap.fill(ci_text, int(fig.get_figwidth() * 17)), fontsize=7)
    fig.tight_layout()
    return fig, _points(points)


def ranking_plot(table: pd.DataFrame) -> Plotted:
    if table.empty:
        raise SkipPlot("Bradley-Terry ranking needs side-by-side answers comparing three or more models")
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(table) + 1.5))
    y = np.arange(len(table))[::-1]
    err = np.vstack([table.log_strength - table.log_strength_low, table.log_strength_high - table.log_strength])
    ax.errorbar(table.log_strength, y, xerr=err, fmt="o", capsize=3)
    ax.set_yticks(y, table.model)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Bradley-Terry log strength (0 = average model)")
    ax.set_title(f"{table.question.iloc[0]}: {table.resamples.iloc[0]} two-way bootstrap resamples")
    fig.tight_layout()
    points = [
        {
            "panel": r.question,
            "series": "Bradley-Terry",
            "x_name": "model",
            "x": r.model,
            "y_name": "log strength",
            "y": r.log_strength,
            "low": r.log_strength_low,
            "high": r.log_strength_high,
            "label": "",
        }
        for r in table.itertuples()
    ]
    return fig, _points(points)


def _role_metrics(run: RunMetrics, role: str) -> list[str]:
    """The run's overall (not per-category) metrics that declare `role` (MetricMeta.role, recorded
    with every result) and have values, in the order the spec lists them."""
    rows = run.long[(run.long["role"] == role) & run.long["value"].notna() & ~run.long["metric"].str.contains("/")]
    return list(dict.fromkeys(rows["metric"]))


def _alignment_metric(run: RunMetrics) -> str:
    found = _role_metrics(run, "alignment")
    if not found:
        raise SkipPlot(
            "no alignment metric with values in this run (a metric declaring role='alignment': clip_score, vqascore, "
            "shapes_verifier, ...)"
        )
    return found[0]


def fidelity_metric(run: RunMetrics) -> str:
    """The figures' fidelity axis: the first fidelity metric (FID, KID, CMMD, ...) whose every value is
    at a comparable N (>= its min_n: FID's 2,048), so KID stands in for FID-N below 2,048; else the
    first one with values, its axis marked not comparable (fid_label)."""
    found = _role_metrics(run, "fidelity")
    if not found:
        raise SkipPlot("the run has no fidelity metric with values (FID, KID, CMMD, ...: role='fidelity')")
    for metric in found:
        rows = run.long[(run.long["metric"] == metric) & run.long["value"].notna()]
        if (rows["n"] >= rows["min_n"]).all():
            return metric
    return found[0]


def fid_label(run: RunMetrics, metric: str) -> str:
    """The fidelity axis label, with N; FID / FD below its min_n (2,048) marked as not comparable
    (the covariance is rank-deficient and FID-N's 1/N bias dominates); KID says why it stands in."""
    rows = run.long[(run.long["metric"] == metric) & run.long["value"].notna()]
    sizes = "/".join(str(int(v)) for v in sorted(rows["n"].unique()))
    if metric == "kid_mean":
        fid = run.long[(run.long["metric"] == "fid") & run.long["value"].notna()]
        why = (
            f"; FID at N = {'/'.join(str(int(v)) for v in sorted(fid['n'].unique()))} < 2,048 is not comparable"
            if not fid.empty
            else ""
        )
        return f"KID at N = {sizes} images (lower is better{why})"
    note = ", N < 2,048: not comparable to other N" if (rows["n"] < rows["min_n"]).any() else ""
    return f"FID at N = {sizes} images (lower is better{note})"


def _curves(run: RunMetrics, along: str) -> tuple[pd.DataFrame, str, list[str], str]:
    """(cells sorted along `along`, the alignment metric, the axes one curve each, the fidelity metric)."""
    y_metric = fidelity_metric(run)
    wide = run.wide()
    if along not in wide.columns or wide[along].nunique() < 2:
        raise SkipPlot(f"the run has fewer than two values of {along!r}; a curve needs at least two")
    x_metric = _alignment_metric(run)
    group_by = [c for c in run.varying() if c != along]  # cell axes only: one curve per setting, not per cell
    return wide.sort_values(along), x_metric, group_by, y_metric


def _bounds(run: RunMetrics, metric: str, cells) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a set metric's recorded interval per cell (nan where none was recorded)."""
    rows = run.long[run.long["metric"] == metric].drop_duplicates("cell_id").set_index("cell_id")
    return rows["ci_low"].reindex(cells).to_numpy(float), rows["ci_high"].reindex(cells).to_numpy(float)


def _series(wide: pd.DataFrame, group_by: list[str], needs: tuple[str, ...] = ()):
    """(label, rows) per curve; a setting absent from some cells (percentile of none / static
    thresholding) is a value of its own, not a dropped group. Rows lacking any of `needs` (a prompt
    set the metric was not computed on) are dropped, and a curve left with no rows is not drawn."""
    wide = wide.dropna(subset=list(needs)) if needs else wide
    if not group_by:
        if not wide.empty:
            yield "all cells", wide
        return
    for keys, rows in wide.groupby(group_by, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        yield ", ".join(f"{n}={k}" for n, k in zip(group_by, keys) if not pd.isna(k)), rows


def pareto_plot(run: RunMetrics) -> Plotted:
    """Imagen Fig. A.8: fidelity (FID, or KID where FID's N is too small) vs alignment across
    guidance weights, one curve per thresholding mode (and per any other cell axis that varies in
    the run), with the recorded interval of the fidelity metric as bars."""
    wide, x_metric, group_by, y_metric = _curves(run, "guidance")
    if "thresholding" not in wide.columns:
        raise SkipPlot("cells.parquet has no 'thresholding' column")
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    points = []
    for label, rows in _series(wide, group_by, (x_metric, y_metric)):
        low, high = _bounds(run, y_metric, rows["cell_id"])
        line = ax.plot(rows[x_metric], rows[y_metric], "o-", label=label)[0]
        if np.isfinite(low).any():
            ax.errorbar(
                rows[x_metric],
                rows[y_metric],
                yerr=np.vstack([rows[y_metric] - low, high - rows[y_metric]]),
                fmt="none",
                capsize=3,
                color=line.get_color(),
            )
        for (_, r), lo, hi in zip(rows.iterrows(), low, high):
            ax.annotate(
                f"w={r['guidance']:g}",
                (r[x_metric], r[y_metric]),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
            points.append(
                {
                    "panel": "",
                    "series": label,
                    "x_name": x_metric,
                    "x": r[x_metric],
                    "y_name": y_metric,
                    "y": r[y_metric],
                    "low": lo if np.isfinite(lo) else None,
                    "high": hi if np.isfinite(hi) else None,
                    "label": f"w={r['guidance']:g}",
                }
            )
    ax.set_xlabel(x_metric)
    ax.set_ylabel(fid_label(run, y_metric), fontsize=7)
    ax.set_title(f"{run.name}: {y_metric} vs {x_metric} over guidance weight")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, _points(points)


def aug_level_plot(run: RunMetrics) -> Plotted:
    """Imagen Fig. A.11: fidelity (as pareto_plot) and alignment over the super-resolution
    noise-augmentation level, one curve per guidance weight (and other varying cell axes)."""
    wide, x_metric, group_by, y_metric = _curves(run, "aug_level")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    points = []
    for label, rows in _series(wide, group_by, (x_metric, y_metric)):
        for ax, metric in zip(axes, (y_metric, x_metric)):
            ax.plot(rows["aug_level"], rows[metric], "o-", label=label)
            points += [
                {
                    "panel": metric,
                    "series": label,
                    "x_name": "aug_level",
                    "x": r["aug_level"],
                    "y_name": metric,
                    "y": r[metric],
                    "low": None,
                    "high": None,
                    "label": "",
                }
                for _, r in rows.iterrows()
            ]
    for ax, metric in zip(axes, (fid_label(run, y_metric), x_metric)):
        ax.set_xlabel("SR noise augmentation level")
        ax.set_ylabel(metric, fontsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(f"{run.name}: metrics over SR aug level")
    fig.tight_layout()
    return fig, _points(points)


def _panels(n: int, width: float = 4.2, height: float = 3.4):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def interval_plot(
    board: pd.DataFrame, labels: dict[str, str], metrics: list[str], directions: dict[str, str]
) -> Plotted:
    """The leaderboard as a picture: one panel per metric, each entry's value with its interval
    (where one was computed) as a horizontal bar, one row per entry (in the order of `labels`), one
    colour per prompt set; `directions`: metric -> "higher" / "lower" (is better) where recorded."""
    rows = board[board["metric"].isin(metrics) & np.isfinite(board["value"].astype(float))]
    if rows.empty:
        raise SkipPlot("no metric values to draw")
    order = list(dict.fromkeys(e for e in labels if e in set(rows["entry"])))
    sets = sorted(rows["prompt_set"].unique())
    present = [m for m in metrics if m in set(rows["metric"])]
    fig, axes = _panels(len(present), height=0.35 * len(order) + 1.6)
    points = []
    for ax, metric in zip(axes, present):
        part = rows[rows["metric"] == metric]
        for k, prompt_set in enumerate(sets):
            sub = part[part["prompt_set"] == prompt_set]
            if sub.empty:
                continue
            y = np.array([len(order) - 1 - order.index(e) for e in sub["entry"]]) + (k - (len(sets) - 1) / 2) * 0.18
            low, high = sub["CI low"].to_numpy(float), sub["CI high"].to_numpy(float)
            v = sub["value"].to_numpy(float)
            err = np.vstack([np.where(np.isfinite(low), v - low, 0), np.where(np.isfinite(high), high - v, 0)])
            ax.errorbar(v, y, xerr=err, fmt="o", capsize=3, ms=4, label=prompt_set if len(sets) > 1 else None)
            points += [
                {
                    "panel": metric,
                    "series": prompt_set,
                    "x_name": metric,
                    "x": r["value"],
                    "y_name": "entry",
                    "y": labels.get(r["entry"], r["entry"]),
                    "low": r["CI low"],
                    "high": r["CI high"],
                    "label": r["note"] or "",
                }
                for r in sub.to_dict("records")
            ]
        ax.set_yticks(range(len(order))[::-1], [labels.get(e, e) for e in order], fontsize=8)
        note = " (not comparable)" if (part["note"] != "").any() else ""
        ax.set_title(f"{metric}{note}", fontsize=9)
        if metric in directions:
            ax.set_xlabel(f"{directions[metric]} is better", fontsize=7)
        ax.grid(axis="x", alpha=0.3)
        if len(sets) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, _points(points)


def category_plot(categories: pd.DataFrame, labels: dict[str, str], metric: str) -> Plotted:
    """Per-category bars with their intervals for one per-image metric: categories along x, one bar
    per entry (in the order of `labels`)."""
    rows = categories[categories["metric"] == metric]
    if rows.empty or rows["category"].nunique() < 2:
        raise SkipPlot(f"{metric} has fewer than two prompt categories")
    cats = sorted(rows["category"].unique())
    order = [e for e in labels if e in set(rows["entry"])]
    width = 0.8 / max(len(order), 1)
    fig, ax = plt.subplots(figsize=(min(10, 2 + 0.9 * len(cats) * max(1, len(order) / 4)), 3.4))
    points = []
    for k, entry in enumerate(order):
        sub = rows[rows["entry"] == entry].set_index("category").reindex(cats)
        v, low, high = (sub[c].to_numpy(float) for c in ("value", "CI low", "CI high"))
        err = np.vstack([np.where(np.isfinite(low), v - low, 0), np.where(np.isfinite(high), high - v, 0)])
        ax.bar(
            np.arange(len(cats)) + (k - (len(order) - 1) / 2) * width,
            v,
            width,
            yerr=err,
            capsize=2,
            label=labels.get(entry, entry),
        )
        points += [
            {
                "panel": metric,
                "series": labels.get(entry, entry),
                "x_name": "category",
                "x": c,
                "y_name": metric,
                "y": val,
                "low": lo,
                "high": hi,
                "label": "",
            }
            for c, val, lo, hi in zip(cats, v, low, high)
        ]
    ax.set_xticks(np.arange(len(cats)), cats, fontsize=8)
    ax.set_ylabel(metric)
    # two lines: one line was cut off at the figure's width (the caption below repeats it in full)
    ax.set_title(f"{metric} per prompt category\n(bars: 95 % intervals over the category's prompts)", fontsize=9)
    ax.legend(fontsize=7, ncols=min(4, len(order)))
    fig.tight_layout()
    return fig, _points(points)


def power_plot(curve: pd.DataFrame, vary: str, effect: float, target: float) -> Plotted:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(curve[vary], curve["power"], yerr=1.96 * curve["mc_se"], fmt="o-", capsize=3)
    ax.axhline(target, color="red", ls="--", lw=1)
    ax.set_xlabel(vary)
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"power for preference 0.5 + {effect:g}, {int(curve['studies'].iloc[0])} simulated studies per point",
        fontsize=9,
    )
    fig.tight_layout()
    points = [
        {
            "panel": "",
            "series": f"effect {effect:g}",
            "x_name": vary,
            "x": r[vary],
            "y_name": "power",
            "y": r["power"],
            "low": r["power"] - 1.96 * r["mc_se"],
            "high": r["power"] + 1.96 * r["mc_se"],
            "label": "",
        }
        for _, r in curve.iterrows()
    ]
    return fig, _points(points)


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The paper's figures as matplotlib figures. A figure whose data the inputs lack raises SkipPlot
with a one-line reason; the report prints that reason where the figure would be.

Every plot function returns (figure, points): `points` has one row per plotted point (POINT_COLUMNS:
panel, series label, x and y with their names, the interval where one is drawn, the point's
annotation), which the report writes beside the picture as tables/<figure>.csv."""
from __future__ import annotations

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

ALIGNMENT_METRICS = ("clip_score", "shapes_accuracy")  # x axis of the Pareto curves, first available wins


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
        points += [{"panel": question, "series": f"prefer {model_a} over {model_b}", "x_name": "category", "x": r.category,
                    "y_name": "preference rate (ties = 1/2)", "y": r.pref_A, "low": r.pref_A_low, "high": r.pref_A_high,
                    "label": ""} for r in rows.itertuples()]
        x = np.arange(len(rows))
        err = np.vstack([rows.pref_A - rows.pref_A_low, rows.pref_A_high - rows.pref_A])
        colors = ["#444444" if c == ALL else "#4C72B0" for c in rows.category]
        ax.bar(x, rows.pref_A, yerr=err, capsize=3, color=colors)
        ax.axhline(0.5, color="red", lw=1, ls="--")
        ax.set_xticks(x, rows.category, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{question}: prefer {model_a} over {model_b}")
        ax.set_ylabel("preference rate (ties = 1/2)")
    fig.suptitle(ci_text, fontsize=7)
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
    points = [{"panel": r.question, "series": "Bradley-Terry", "x_name": "model", "x": r.model, "y_name": "log strength",
               "y": r.log_strength, "low": r.log_strength_low, "high": r.log_strength_high, "label": ""} for r in table.itertuples()]
    return fig, _points(points)


def _alignment_metric(wide: pd.DataFrame) -> str:
    for metric in ALIGNMENT_METRICS:
        if metric in wide.columns and wide[metric].notna().any():
            return metric
    raise SkipPlot(f"no alignment metric with values ({' or '.join(ALIGNMENT_METRICS)}) in this run")


def _curves(run: RunMetrics, along: str) -> tuple[pd.DataFrame, str, list[str]]:
    wide = run.wide()
    if "fid" not in wide.columns or wide["fid"].isna().all():
        raise SkipPlot("the run has no FID values (metric 'fid' in metrics_cell.parquet)")
    if along not in wide.columns or wide[along].nunique() < 2:
        raise SkipPlot(f"the run has fewer than two values of {along!r}; a curve needs at least two")
    x_metric = _alignment_metric(wide)
    group_by = [c for c in run.varying() if c != along]  # cell axes only: one curve per setting, not per cell
    return wide.sort_values(along), x_metric, group_by


def _series(wide: pd.DataFrame, group_by: list[str]):
    """(label, rows) per curve; a setting absent from some cells (percentile of none / static
    thresholding) is a value of its own, not a dropped group."""
    if not group_by:
        yield "all cells", wide
        return
    for keys, rows in wide.groupby(group_by, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        yield ", ".join(f"{n}={k}" for n, k in zip(group_by, keys) if not pd.isna(k)), rows


def pareto_plot(run: RunMetrics) -> Plotted:
    """Imagen Fig. A.8: FID vs alignment across guidance weights, one curve per thresholding mode
    (and per any other cell axis that varies in the run)."""
    wide, x_metric, group_by = _curves(run, "guidance")
    if "thresholding" not in wide.columns:
        raise SkipPlot("cells.parquet has no 'thresholding' column")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    points = []
    for label, rows in _series(wide, group_by):
        ax.plot(rows[x_metric], rows["fid"], "o-", label=label)
        for _, r in rows.iterrows():
            ax.annotate(f"w={r['guidance']:g}", (r[x_metric], r["fid"]), fontsize=7, textcoords="offset points", xytext=(3, 3))
            points.append({"panel": "", "series": label, "x_name": x_metric, "x": r[x_metric], "y_name": "fid", "y": r["fid"],
                           "low": None, "high": None, "label": f"w={r['guidance']:g}"})
    ax.set_xlabel(x_metric)
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"{run.name}: FID vs {x_metric} over guidance weight")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, _points(points)


def aug_level_plot(run: RunMetrics) -> Plotted:
    """Imagen Fig. A.11: FID and alignment over the super-resolution noise-augmentation level,
    one curve per guidance weight (and other varying cell axes)."""
    wide, x_metric, group_by = _curves(run, "aug_level")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    points = []
    for label, rows in _series(wide, group_by):
        for ax, metric in zip(axes, ("fid", x_metric)):
            ax.plot(rows["aug_level"], rows[metric], "o-", label=label)
            points += [{"panel": metric, "series": label, "x_name": "aug_level", "x": r["aug_level"], "y_name": metric,
                        "y": r[metric], "low": None, "high": None, "label": ""} for _, r in rows.iterrows()]
    for ax, metric in zip(axes, ("FID (lower is better)", x_metric)):
        ax.set_xlabel("SR noise augmentation level")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"{run.name}: metrics over SR aug level")
    fig.tight_layout()
    return fig, _points(points)


def power_plot(curve: pd.DataFrame, vary: str, effect: float, target: float) -> Plotted:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(curve[vary], curve["power"], yerr=1.96 * curve["mc_se"], fmt="o-", capsize=3)
    ax.axhline(target, color="red", ls="--", lw=1)
    ax.set_xlabel(vary)
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"power for preference 0.5 + {effect:g}, {int(curve['studies'].iloc[0])} simulated studies per point", fontsize=9)
    fig.tight_layout()
    points = [{"panel": "", "series": f"effect {effect:g}", "x_name": vary, "x": r[vary], "y_name": "power", "y": r["power"],
               "low": r["power"] - 1.96 * r["mc_se"], "high": r["power"] + 1.96 * r["mc_se"], "label": ""}
              for _, r in curve.iterrows()]
    return fig, _points(points)


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The report's opening for run folders: what the runs found in words (reports/findings.py) with
the figures that show it (the leaderboard's values and intervals, each run's Pareto curve), sample
grids (prompts x the compared entries, thumbnails linking to the full images), then the leaderboard
of every cell of every run (entries named by what differs between them; labels, models and cell ids
in a collapsed legend at the end)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.imagestore import read_run
from common.tables import to_csv

from . import plots
from .findings import findings, short_labels
from .html import Bullets, Figures, Grid, Image, Paragraph, Section, Table, file_slug, natural_key
from .human_sections import figure_block, thumbnail
from .leaderboard import LeaderboardOptions, by_category, leaderboard, wide
from .runs import RunMetrics

THUMBNAIL = 128  # px, the long side of a sample thumbnail
GALLERY_PROMPTS = 4  # prompts per prompt set in the sample grid, the first ones every entry has
FIGURE_METRICS = 3  # panels of the leaderboard figure (one row at laptop width)


@dataclass
class Overview:
    summary: Section  # findings and figures: the first screen
    samples: list[Section] = field(default_factory=list)
    body: list[Section] = field(default_factory=list)  # the leaderboard tables
    details: list[Section] = field(default_factory=list)  # labels, models and cell ids (collapsed)
    labels: dict[str, str] = field(default_factory=dict)  # entry ("run/cell name") -> its short label
    skipped: dict[str, Paragraph] = field(default_factory=dict)  # run name -> why its Pareto figure was skipped


DEFAULT_OPTIONS = LeaderboardOptions()  # a frozen default, shared


def overview(runs: list[RunMetrics], stage: Path, options: LeaderboardOptions = DEFAULT_OPTIONS) -> Overview:
    """The opening of a report of run folders; `options` (resamples, seed, level) are the report's."""
    folders = [r.run for r in runs]
    figures, skipped = [], {}
    for run in [r for r in runs if "guidance" in r.varying()]:  # a Pareto curve is over guidance weights
        block = figure_block(
            stage,
            f"pareto_{file_slug(run.name)}",
            lambda r=run: plots.pareto_plot(r),
            f"{run.name}: fidelity vs alignment over guidance weights, one curve per thresholding mode "
            "(Imagen Fig. 4 / A.8); bars: each cell's recorded interval.",
        )
        if isinstance(block, Image):
            figures.append(block)
        else:
            skipped[run.name] = block
    if all(pd.read_parquet(Path(r) / "metrics_cell.parquet").empty for r in folders):
        labels = _entry_names(folders)
        return Overview(
            Section(
                "What the run found",
                [
                    Paragraph(
                        "No metrics in these runs ([[metrics]] in the spec): nothing to "
                        "rank; the sample images are below.",
                        kind="note",
                    )
                ],
            ),
            _samples(folders, stage, labels),
            labels=labels,
            skipped=skipped,
        )
    board, pairs = leaderboard(folders, dataclasses.replace(options, leave_out_mixed=True))
    labels = short_labels(folders, board)  # entries named by what differs between them
    labels = dict(sorted(labels.items(), key=lambda kv: natural_key(kv[1])))  # E2 before E10, w=5 before w=10
    rank = {e: i for i, e in enumerate(labels)}
    board = board.sort_values(
        ["metric", "prompt_set", "entry"], key=lambda c: c.map(rank) if c.name == "entry" else c, kind="stable"
    ).reset_index(drop=True)
    found = findings(board, pairs, labels, options.level)
    directions = dict(zip(pairs["metric"], pairs["direction"])) if not pairs.empty else {}
    board_figure = figure_block(
        stage,
        "leaderboard",
        lambda: plots.interval_plot(board, labels, _figure_metrics(board, pairs), directions),
        f"The leaderboard's headline metrics: each entry's value with its {options.level:.0%} interval "
        "(where one was computed).",
    )
    summary = Section(
        "What the run found",
        [
            Bullets(tuple(found)) if found else Paragraph("No paired comparison and no note.", kind="note"),
            Figures(tuple(b for b in [board_figure, *figures] if isinstance(b, Image))),
        ],
    )
    legend = board.drop_duplicates("entry")[["entry", "model", "run", "cell_id"]].assign(
        label=lambda f: f["entry"].map(labels)
    )
    # the one unavailable message per metric is in the summary; the table's cells just say so
    shown = board.assign(unavailable=np.where(board["unavailable"] != "", "unavailable (see the summary)", ""))
    blocks = [
        Table(
            "leaderboard",
            wide(shown, labels),
            "Every cell of every run: value [95 % interval] #rank. Per-image metrics: the mean, its interval over prompts "
            "inside the metric's range (Wilson at the prompt-cluster effective size; t for CLIP score). Set metrics: the "
            "interval each recorded (blocks = G: disjoint prompt blocks), none otherwise. A rank counts the entries on the "
            "same prompt set that beat this one in a paired comparison on the same images, Holm-corrected over the "
            "table's pairs; tied ranks were not separated. FID / FD below 2,048 images is marked not comparable and never "
            "ranked. Full numbers and how each was made: tables/leaderboard_long.csv; labels: 'Labels and cell ids' below.",
        )
    ]
    long = board.drop(columns=["run"])  # too wide for the page: a file only (one row per metric and entry, with how)
    to_csv(long, stage / "tables" / "leaderboard_long.csv")
    long.to_parquet(stage / "tables" / "leaderboard_long.parquet", index=False)
    categories = by_category(folders, options)
    if not categories.empty and categories["category"].nunique() > 1:
        bars = []
        for metric in sorted(categories["metric"].unique()):
            bars.append(
                figure_block(
                    stage,
                    f"by_category_{file_slug(metric)}",
                    lambda m=metric: plots.category_plot(categories, labels, m),
                    f"{metric} per prompt category, each entry's mean with its interval over the category's prompts.",
                )
            )
        blocks += [
            Figures(tuple(b for b in bars if isinstance(b, Image))),
            *(b for b in bars if not isinstance(b, Image)),
        ]
        shown = categories.assign(
            entry=categories["entry"].map(labels).fillna(categories["entry"]),
            text=[
                f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else f"{v:.3g}"
                for v, lo, hi in zip(categories["value"], categories["CI low"], categories["CI high"])
            ],
        )
        table = shown.pivot_table(
            index=["metric", "category"], columns="entry", values="text", aggfunc="first"
        ).reset_index()
        order = ["metric", "category"] + sorted(
            (c for c in table.columns if c not in ("metric", "category")), key=natural_key
        )
        blocks.append(
            Table(
                "leaderboard_by_category",
                table[order].rename_axis(columns=None),
                "Per-image metrics per prompt category (DrawBench categories, PartiPrompts categories, GenEval tags, ...): "
                "mean [interval over the category's prompts, as above, inside the metric's range]. Few prompts per "
                "category give wide intervals.",
            )
        )
    for why in board.attrs.get("left_out", {}).values():
        blocks.append(Paragraph(f"Left out of the leaderboard: {why}.", kind="note"))
    details = [
        Section(
            "Labels and cell ids",
            [
                Table(
                    "leaderboard_legend",
                    legend[["label", "entry", "model", "cell_id", "run"]],
                    "What each label stands for.",
                )
            ],
            details=True,
        )
    ]
    return Overview(
        summary, _samples(folders, stage, labels), [Section("Leaderboard", blocks)], details, labels, skipped
    )


def _figure_metrics(board: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    """The leaderboard figure's panels: metrics with a separated comparison first, then those compared,
    then any with values; per-image before set metrics; never more than FIGURE_METRICS."""
    compared = set(pairs["metric"]) if not pairs.empty else set()
    separated = set(pairs.loc[pairs["separated"], "metric"]) if not pairs.empty else set()
    per_image = set(pairs.loc[pairs["unit"] == "images", "metric"]) if not pairs.empty else set()
    valued = board[np.isfinite(board["value"].astype(float))]
    with_interval = set(valued.loc[np.isfinite(valued["CI low"].astype(float)), "metric"])
    candidates = sorted(
        compared | with_interval,
        key=lambda m: (
            m not in separated,
            m not in compared,
            m not in per_image,
            bool((valued.loc[valued["metric"] == m, "note"] != "").any()),
            m,
        ),
    )
    return candidates[:FIGURE_METRICS]


def _entry_names(runs: list[Path]) -> dict[str, str]:
    names = []
    for run in runs:
        cells = pd.read_parquet(Path(run) / "cells.parquet")
        label = cells["name"] if "name" in cells.columns else cells["cell_id"]
        names += [f"{Path(run).resolve().name}/{x}" for x in label]
    return {n: n for n in sorted(names, key=natural_key)}


def _samples(runs: list[Path], stage: Path, labels: dict[str, str]) -> list[Section]:
    """Per prompt set, a grid of the first GALLERY_PROMPTS prompts every entry on that set has (first
    sample): one row per prompt, one column per entry in label order (the swept axis: guidance,
    thresholding, model, ...). Cells on another prompt set get a grid of their own, so a run over
    several prompt sets still shows every one. Thumbnails link to a copy of the full image."""
    if not all((Path(r) / "manifest.parquet").is_file() for r in runs):
        return []
    records = [(f"{Path(run).resolve().name}/", r) for run in runs for r in read_run(run) if r.ref.sample == 0]
    if not records:
        return []
    cells = pd.concat(
        [pd.read_parquet(Path(run) / "cells.parquet").assign(prefix=f"{Path(run).resolve().name}/") for run in runs]
    )
    names = {
        (row.prefix, row.cell_id): row.prefix + str(getattr(row, "name", row.cell_id)) for row in cells.itertuples()
    }
    by_set: dict[str, dict[str, dict[str, object]]] = {}  # prompt set -> entry -> prompt id -> record
    for prefix, r in records:
        by_set.setdefault(r.ref.prompt_set, {}).setdefault(names.get((prefix, r.model), prefix + r.model), {})[
            r.ref.prompt_id
        ] = r
    rank = {e: i for i, e in enumerate(labels)}
    grids = []
    for prompt_set, by_entry in sorted(by_set.items()):
        shared = set.intersection(*(set(v) for v in by_entry.values()))
        chosen = sorted(shared, key=natural_key)[:GALLERY_PROMPTS]
        if not chosen:
            continue
        entries = sorted(by_entry, key=lambda e: (rank.get(e, len(rank)), natural_key(e)))
        rows = []
        for key in chosen:
            first = by_entry[entries[0]][key]
            row = tuple(
                thumbnail(
                    stage,
                    by_entry[e][key].path,
                    f"overview-{file_slug(e)}-{file_slug(prompt_set)}-{file_slug(key)}",
                    f"{labels.get(e, e)}, {prompt_set} #{key}",
                    THUMBNAIL,
                )
                for e in entries
            )
            rows.append((f"#{key} ({first.ref.category}): {first.ref.prompt}", row))
        grids.append(Grid(tuple(labels.get(e, e) for e in entries), tuple(rows), THUMBNAIL))
        grids.append(
            Paragraph(
                f"{prompt_set}: the first {len(chosen)} prompts every entry has, first sample of each; "
                "click an image for the full size.",
                kind="how",
            )
        )
    return [Section("Sample images: the same prompts in every entry", grids)] if grids else []

"""The report's opening for run folders: what the runs found in words (reports/findings.py), the
leaderboard of every cell of every run (entries named by what differs between them, full names in
a legend) and a gallery of the same prompts across cells, so a reader sees what the numbers mean."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image as PILImage

from common.imagestore import read_run
from common.tables import to_csv

from .findings import findings, short_labels
from .html import Gallery, Image, Paragraph, Section, Table, file_slug
from .leaderboard import LeaderboardOptions, by_category, leaderboard, wide

THUMBNAIL = 128  # px: a row of 6 cells fits 1200 px
GALLERY_PROMPTS = 4  # prompts shown, the first ones every cell has


def overview_sections(runs: list[Path], stage: Path, options: LeaderboardOptions = LeaderboardOptions()) -> list[Section]:
    """The opening of a report of run folders; `options` (resamples, seed, level) are the report's."""
    gallery = _gallery(runs, stage) if all((Path(r) / "manifest.parquet").is_file() for r in runs) else None
    if all(pd.read_parquet(Path(r) / "metrics_cell.parquet").empty for r in runs):
        return [Section("Leaderboard", [Paragraph("No metrics in these runs ([[metrics]] in the spec): nothing to rank.", kind="note")])] \
            + ([gallery] if gallery else [])
    board, pairs = leaderboard(runs, dataclasses.replace(options, leave_out_mixed=True))
    labels = short_labels(runs, board)  # entries named by what differs between them
    legend = board.drop_duplicates("entry")[["entry", "model", "run", "cell_id"]].assign(label=lambda f: f["entry"].map(labels))
    found = findings(board, pairs, labels, options.level)
    blocks = [Paragraph("What the run found:" if found else "What the run found: no paired comparison and no note.", kind="plain"),
              *[Paragraph(f"• {line}", kind="plain") for line in found],
              Table("leaderboard", wide(board, labels),
                    "Every cell of every run: value [95 % interval] #rank. Per-image metrics: the mean, its interval over prompts "
                    "inside the metric's range (Wilson at the prompt-cluster effective size; t for CLIP score). Set metrics: the "
                    "interval each recorded (blocks = G: disjoint prompt blocks), none otherwise. A rank counts the entries on the "
                    "same prompt set that beat this one in a paired comparison on the same images, Holm-corrected over the "
                    "table's pairs; tied ranks were not separated. FID / FD below 2,048 images is marked not comparable and never "
                    "ranked. Full numbers and how each was made: tables/leaderboard_long.csv."),
              Table("leaderboard_legend", legend[["label", "entry", "model", "cell_id", "run"]], "What each label stands for.")]
    long = board.drop(columns=["run"])  # too wide for the page: a file only (one row per metric and entry, with how)
    to_csv(long, stage / "tables" / "leaderboard_long.csv")
    long.to_parquet(stage / "tables" / "leaderboard_long.parquet", index=False)
    categories = by_category(runs, options)
    if not categories.empty and categories["category"].nunique() > 1:
        shown = categories.assign(entry=categories["entry"].map(labels).fillna(categories["entry"]),
                                  text=[f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else f"{v:.3g}"
                                        for v, lo, hi in zip(categories["value"], categories["CI low"], categories["CI high"])])
        table = shown.pivot_table(index=["metric", "category"], columns="entry", values="text", aggfunc="first").reset_index()
        blocks.append(Table("leaderboard_by_category", table.rename_axis(columns=None),
                            "Per-image metrics per prompt category (DrawBench categories, PartiPrompts categories, GenEval tags, ...): "
                            "mean [interval over the category's prompts, as above, inside the metric's range]. Few prompts per "
                            "category give wide intervals."))
    for metric, why in board.attrs.get("left_out", {}).items():
        blocks.append(Paragraph(f"Left out of the leaderboard: {why}.", kind="note"))
    return [Section("Leaderboard", blocks)] + ([gallery] if gallery else [])


def _gallery(runs: list[Path], stage: Path) -> Section | None:
    """The first GALLERY_PROMPTS prompts of each prompt set, in every cell that has them (first
    sample): cells on another prompt set have their own rows, so a run over several prompt sets
    still gets a gallery."""
    records = [(f"{Path(run).resolve().name}/", r) for run in runs for r in read_run(run) if r.ref.sample == 0]
    if not records:
        return None
    cells = pd.concat([pd.read_parquet(Path(run) / "cells.parquet").assign(prefix=f"{Path(run).resolve().name}/") for run in runs])
    names = {(row.prefix, row.cell_id): row.prefix + str(getattr(row, "name", row.cell_id)) for row in cells.itertuples()}
    by_set: dict[str, dict[str, dict[str, object]]] = {}  # prompt set -> entry -> prompt id -> record
    for prefix, r in records:
        by_set.setdefault(r.ref.prompt_set, {}).setdefault(names.get((prefix, r.model), prefix + r.model), {})[r.ref.prompt_id] = r
    (stage / "images").mkdir(exist_ok=True)
    shown, sets = [], []
    for prompt_set, by_cell in sorted(by_set.items()):
        shared = set.intersection(*(set(v) for v in by_cell.values()))
        chosen = sorted(shared, key=lambda k: (0, int(k)) if k.isdigit() else (1, k))[:GALLERY_PROMPTS]
        if not chosen:
            continue
        sets.append(f"{prompt_set}: {len(chosen)}")
        for key in chosen:
            for entry, recs in by_cell.items():
                rec = recs[key]
                name = f"images/overview-{file_slug(entry)}-{file_slug(prompt_set)}-{file_slug(key)}.png"
                with PILImage.open(rec.path) as im:
                    im.convert("RGB").resize((THUMBNAIL, THUMBNAIL)).save(stage / name)
                shown.append(Image(name, f"{entry} {prompt_set} #{rec.ref.prompt_id}: {rec.ref.prompt[:50]}"))
    if not shown:
        return None
    return Section(f"The same prompts in every cell (first sample; {', '.join(sets)} prompts)", [Gallery(tuple(shown))])

"""The report's opening for run folders: the leaderboard of every cell of every run (short labels
E1, E2, ... with the full names in a legend, so the table fits a laptop screen) and a gallery of the
same prompts across cells, so a reader sees what the numbers mean."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image as PILImage

from common.imagestore import read_run
from common.tables import to_csv

from .html import Gallery, Image, Paragraph, Section, Table, file_slug
from .leaderboard import LeaderboardOptions, by_category, leaderboard, wide

THUMBNAIL = 128  # px: a row of 6 cells fits 1200 px
GALLERY_PROMPTS = 4  # prompts shown, the first ones every cell has


def overview_sections(runs: list[Path], stage: Path, level: float = 0.95) -> list[Section]:
    gallery = _gallery(runs, stage) if all((Path(r) / "manifest.parquet").is_file() for r in runs) else None
    if all(pd.read_parquet(Path(r) / "metrics_cell.parquet").empty for r in runs):
        return [Section("Leaderboard", [Paragraph("No metrics in these runs ([[metrics]] in the spec): nothing to rank.", kind="note")])] \
            + ([gallery] if gallery else [])
    board, _ = leaderboard(runs, LeaderboardOptions(leave_out_mixed=True, level=level))
    entries = list(dict.fromkeys(board["entry"]))
    labels = {e: f"E{i}" for i, e in enumerate(entries, start=1)}
    legend = board.drop_duplicates("entry")[["entry", "model", "run", "cell_id"]].assign(label=lambda f: f["entry"].map(labels))
    blocks = [Table("leaderboard", wide(board, labels),
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
    categories = by_category(runs, LeaderboardOptions(level=level))
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
    records = [(f"{Path(run).resolve().name}/", r) for run in runs for r in read_run(run) if r.ref.sample == 0]
    if not records:
        return None
    cells = pd.concat([pd.read_parquet(Path(run) / "cells.parquet").assign(prefix=f"{Path(run).resolve().name}/") for run in runs])
    names = {(row.prefix, row.cell_id): row.prefix + str(getattr(row, "name", row.cell_id)) for row in cells.itertuples()}
    by_cell: dict[str, dict[tuple[str, str], object]] = {}
    for prefix, r in records:
        by_cell.setdefault(names.get((prefix, r.model), prefix + r.model), {})[(r.ref.prompt_set, r.ref.prompt_id)] = r
    shared = set.intersection(*(set(v) for v in by_cell.values()))
    chosen = sorted(shared, key=lambda k: (k[0], (0, int(k[1])) if k[1].isdigit() else (1, k[1])))[:GALLERY_PROMPTS]
    if not chosen:
        return None
    (stage / "images").mkdir(exist_ok=True)
    shown = []
    for key in chosen:
        for entry, recs in by_cell.items():
            rec = recs[key]
            name = f"images/overview-{file_slug(entry)}-{file_slug(key[1])}.png"
            with PILImage.open(rec.path) as im:
                im.convert("RGB").resize((THUMBNAIL, THUMBNAIL)).save(stage / name)
            shown.append(Image(name, f"{entry} #{rec.ref.prompt_id}: {rec.ref.prompt[:50]}"))
    return Section(f"The same {len(chosen)} prompts in every cell (first sample)", [Gallery(tuple(shown))])

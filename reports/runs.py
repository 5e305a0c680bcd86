"""Automated-metric tables from a run folder (contract 1): RUN/cells.parquet joined with
RUN/metrics_cell.parquet. Reads only what the sweep wrote; recomputes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common.files import read_json_object
from common.runs import CELL_AXES, PROMPT_REF_COLUMNS

METRIC_COLUMNS = ("cell_id", "metric", "value", "n", "details")
MANIFEST_NEEDS = ("cell_id", *PROMPT_REF_COLUMNS, "path", "seed")  # read by the gallery and the per-category tables
SHAPES_PREFIX = "shapes_accuracy/"
SHA_CHARS = 12  # enough of a sha256 to identify weights in a table
# details not shown as "how": the unavailable text (its own column), the metric's meaning (MetricMeta,
# shown as the interval method) and the per-block numbers behind an interval (read by paired comparisons)
HIDDEN_DETAILS = frozenset({"unavailable", "meta", "block_values", "block_key", "second_order"})


@dataclass(frozen=True)
class RunMetrics:
    run: Path
    name: str
    cells: pd.DataFrame
    long: (
        pd.DataFrame
    )  # one row per (cell, metric): cell parameters, metric, value, n, how, unavailable, min_n, ci_low, ci_high

    def wide(self) -> pd.DataFrame:
        """Cells x metrics, numeric (nan where a metric was unavailable)."""
        values = self.long.pivot_table(
            index="cell_id", columns="metric", values="value", aggfunc="first", dropna=False
        )
        return self.cells.merge(values.reset_index(), on="cell_id", how="left")

    def varying(self) -> list[str]:
        """The cell axes (bench.sweep.cells.CELL_AXES: model, prompt set, sampling settings, seed) that
        take more than one value in this run; per-cell bookkeeping columns (name, descriptions) never."""
        return [c for c in CELL_AXES if c in self.cells.columns and self.cells[c].astype(str).nunique() > 1]


def is_run_folder(path: Path) -> bool:
    return (path / "cells.parquet").is_file() or (path / "manifest.parquet").is_file()


def read_run_metrics(run_dir: str | Path) -> RunMetrics:
    run = Path(run_dir)
    cells_path, metrics_path = run / "cells.parquet", run / "metrics_cell.parquet"
    for p in (cells_path, metrics_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{run} lacks {p.name}: run `imagen-bench sweep` to completion before reporting it"
            )
    cells, metrics = pd.read_parquet(cells_path), pd.read_parquet(metrics_path)
    for frame, need, path in ((cells, ("cell_id",), cells_path), (metrics, METRIC_COLUMNS, metrics_path)):
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; contract 1 needs {', '.join(need)}")
    check_manifest(run)
    unknown_cells = sorted(set(metrics["cell_id"]) - set(cells["cell_id"]))
    if unknown_cells:
        raise ValueError(f"{metrics_path}: cells {unknown_cells[:5]} are not in cells.parquet")
    described = [describe_details(d) for d in metrics["details"]]
    long = metrics[["cell_id", "metric", "value", "n"]].copy()
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long["how"] = [how for how, _ in described]
    long["unavailable"] = [u for _, u in described]
    parsed = [parse_details(d) for d in metrics["details"]]
    long["min_n"] = [
        int(meta_of(d).get("min_n") or 0) for d in parsed
    ]  # below it the value is not comparable (FID: 2,048)
    long["role"] = [str(meta_of(d).get("role") or "") for d in parsed]  # alignment | fidelity | "" (the figures' axes)
    long["ci_low"] = [float(d["ci_low"]) if "ci_low" in d else np.nan for d in parsed]  # a set metric's own interval
    long["ci_high"] = [float(d["ci_high"]) if "ci_high" in d else np.nan for d in parsed]
    long = cells.merge(long, on="cell_id", how="right")
    return RunMetrics(run=run, name=run.name, cells=cells.reset_index(drop=True), long=long)


def spec_sha256(run_dir: str | Path) -> str | None:
    """The sha256 of the spec a run was made from, as RUN/run.json records it (None: a run without
    run.json, or one that records none). A run.json that is not a JSON object is refused, naming it."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return None
    sha = read_json_object(path, "restore the sweep's run.json or leave the run out").get("spec_sha256")
    if sha is not None and not isinstance(sha, str):
        raise ValueError(f"{path}: spec_sha256 must be text, got {sha!r:.60}")
    return sha


def check_manifest(run: Path) -> None:
    """RUN/manifest.parquet, where there is one, has the columns the report's gallery and per-category
    tables read (contract 1: every sweep has written them); else one line naming the file and what is missing."""
    path = run / "manifest.parquet"
    if not path.is_file():
        return
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{path} is not a readable parquet file ({str(e)[:120]})") from None
    missing = [c for c in MANIFEST_NEEDS if c not in names]
    if missing:
        raise ValueError(
            f"{path}: missing columns {missing}; contract 1 needs {', '.join(MANIFEST_NEEDS)} (edited or damaged: restore it)"
        )


def parse_details(text) -> dict:
    """A metrics_cell details JSON string as a dict (non-dict JSON under "details")."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return {}
    try:
        parsed = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return {"details": str(text)}
    return parsed if isinstance(parsed, dict) else {"details": parsed}


def meta_of(details: dict) -> dict:
    """The MetricMeta record of a result ({} when the run predates it)."""
    meta = details.get("meta")
    return meta if isinstance(meta, dict) else {}


def image_metric_meta(runs: list[str | Path]) -> dict[str, dict]:
    """per-image metric name (as in metrics_image.parquet) -> the MetricMeta record of the cell
    metric that is its mean (the same name, or the one whose details name it as per_image_metric)."""
    out: dict[str, dict] = {}
    for run in runs:
        cells = pd.read_parquet(Path(run) / "metrics_cell.parquet", columns=["metric", "details"])
        for metric, text in zip(cells["metric"], cells["details"]):
            details = parse_details(text)
            if meta_of(details) and details.get("category", "overall") == "overall":
                out.setdefault(details.get("per_image_metric", metric), meta_of(details))
    return out


def describe_details(details: object) -> tuple[str, str]:
    """(how the number was made, "unavailable: ..." text or ""), from the details JSON string."""
    if details is None or (isinstance(details, float) and np.isnan(details)):
        return "", ""
    try:
        parsed = json.loads(details) if isinstance(details, str) else details
    except json.JSONDecodeError:
        parsed = str(details)
    if isinstance(parsed, str):
        return ("", parsed) if parsed.startswith("unavailable") else (parsed, "")
    if not isinstance(parsed, dict):
        return json.dumps(parsed), ""
    unavailable = parsed.get("unavailable", "")
    if unavailable and not str(unavailable).startswith("unavailable"):
        unavailable = f"unavailable: {unavailable}"
    parts = []
    for key, value in parsed.items():
        if key in HIDDEN_DETAILS:
            continue
        if isinstance(value, str) and "sha256" in key:
            value = value[:SHA_CHARS]
        parts.append(f"{key}={json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value}")
    return "; ".join(parts), str(unavailable)


def headline_table(run: RunMetrics) -> pd.DataFrame:
    """Per cell: parameters that vary, then each headline metric as 'value' plus its N and how it
    was made (FID / KID with N, resize mode and reference; CLIP score or why it is unavailable)."""
    long = run.long[~run.long["metric"].str.startswith(SHAPES_PREFIX)]
    keep = ["cell_id"] + run.varying()
    out = run.cells[keep].copy()
    for metric, group in long.groupby("metric", sort=True):
        g = group.set_index("cell_id")
        out[metric] = out["cell_id"].map(g["value"])
        out[f"{metric} N"] = out["cell_id"].map(g["n"])
        text = np.where(g["unavailable"] != "", g["unavailable"], g["how"])
        out[f"{metric} how"] = out["cell_id"].map(pd.Series(text, index=g.index))
    return out


def split_how(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """headline_table -> (values and N per cell, one row per distinct (metric, how) with the cells
    it applies to). The 'how' text is usually the same for every cell of a metric, so the HTML
    shows it once instead of in every row; nothing is dropped."""
    how_cols = [c for c in table.columns if c.endswith(" how")]
    rows = []
    for col in how_cols:
        for how, group in table.groupby(col, sort=False):  # NaN = metric not measured for those cells: no row
            rows.append(
                {
                    "metric": col[: -len(" how")],
                    "how it was computed": how,
                    "cells": "all" if len(group) == len(table) else ", ".join(group["cell_id"]),
                }
            )
    return table.drop(columns=how_cols), pd.DataFrame(rows, columns=["metric", "how it was computed", "cells"])


def shapes_table(run: RunMetrics) -> pd.DataFrame:
    """Shapes-verifier accuracy per category (columns) per cell (rows); empty if not measured."""
    long = run.long[run.long["metric"].str.startswith(SHAPES_PREFIX)]
    if long.empty:
        return pd.DataFrame()
    table = long.assign(category=long["metric"].str[len(SHAPES_PREFIX) :]).pivot_table(
        index="cell_id", columns="category", values="value", aggfunc="first"
    )
    n = long.groupby("cell_id")["n"].max().rename("N images")
    return (
        run.cells[["cell_id"] + run.varying()]
        .merge(table.reset_index(), on="cell_id")
        .merge(n.reset_index(), on="cell_id")
    )

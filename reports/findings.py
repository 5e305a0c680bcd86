"""What a set of runs found, in words: generated from the leaderboard (board + pairs), never
written by hand. Each sentence carries its interval and whether the paired comparison separates
it after Holm's correction; what is not comparable or unavailable is said once per metric.

Entries are named by what differs between them (the cell axes that vary: "w=5, dynamic"), not by
an opaque E1, E2, ...: short_labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.runs import CELL_AXES

AXIS_NAMES = {
    "guidance": "w",
    "thresholding": "",
    "prompt_set": "",
    "model": "",
    "aug_level": "aug",
    "steps": "steps",
    "sampler": "",
    "percentile": "p",
    "seed": "seed",
}


def short_labels(runs: list[Path], board: pd.DataFrame) -> dict[str, str]:
    """entry -> the values of the cell axes that vary among the entries ("w=5, dynamic"), with the
    run's name in front when there are several runs; the full entry name when nothing varies."""
    frames = []
    for run in runs:
        cells = pd.read_parquet(Path(run) / "cells.parquet")
        label = cells["name"] if "name" in cells.columns else cells["cell_id"]
        frames.append(
            cells.assign(entry=[f"{Path(run).resolve().name}/{x}" for x in label], run=Path(run).resolve().name)
        )
    cells = pd.concat(frames, ignore_index=True)
    cells = cells[cells["entry"].isin(set(board["entry"]))]
    varying = [c for c in CELL_AXES if c in cells.columns and cells[c].astype(str).nunique() > 1]
    # the percentile of dynamic thresholding goes with its mode ("dynamic99.5" -> "dynamic")
    varying = [c for c in varying if c != "percentile" or "thresholding" not in varying]
    several = cells["run"].nunique() > 1
    out = {}
    for row in cells.to_dict("records"):
        parts = [
            f"{AXIS_NAMES.get(c, c)}={_fmt(row[c])}" if AXIS_NAMES.get(c, c) else _fmt(row[c])
            for c in varying
            if not pd.isna(row[c])
        ]
        text = ", ".join(parts) or row["entry"]
        out[row["entry"]] = f"{row['run']}: {text}" if several else text
    if len(set(out.values())) < len(out):  # two entries alike in every axis (two runs of one spec): keep them apart
        return {e: e for e in out}
    return out


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _num(metric: str, v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def _lead(pair: dict, lower: bool, metric: str) -> tuple[str, str, str]:
    """(better entry, worse entry, "d [lo, hi]"): the pair's difference A - B and its interval turned
    to the better entry's lead in the metric's direction (positive d; a bound below 0 when the
    interval crosses it, i.e. the pair is not separated)."""
    d, lo, hi = pair["difference"], pair["CI low"], pair["CI high"]
    a_better = (d < 0) if lower else (d > 0)
    if a_better == lower:  # lead = B - A
        d, lo, hi = -d, -hi, -lo
    better, worse = (pair["A"], pair["B"]) if a_better else (pair["B"], pair["A"])
    return (
        better,
        worse,
        f"{_num(metric, abs(d))} [{_num(metric, lo)}, {_num(metric, hi)}]",
    )  # abs: a tie reads 0, not -0


def findings(board: pd.DataFrame, pairs: pd.DataFrame, labels: dict[str, str], level: float = 0.95) -> list[str]:
    """Sentences, headline first: what was compared; for each metric (per-image metrics first) every
    separated pair, better first, largest difference first; how many comparisons were not
    separated (none separated: the largest difference with its interval, so a small run still
    says how sure it is); then what is not comparable or unavailable, once per metric."""
    name = {e: labels.get(e, e) for e in board["entry"]}
    out = []
    for prompt_set, group in board.groupby("prompt_set", sort=True):
        entries = list(dict.fromkeys(group["entry"]))
        n = int(group["n"].max())
        out.append(
            f"Compared: {len(entries)} entries ({'; '.join(name[e] for e in entries)}) on {prompt_set}, up to {n} images each."
        )
    if not pairs.empty:
        order = pairs.assign(_set=pairs["unit"] != "images").groupby(["_set", "metric", "prompt_set"], sort=True)
        for (_, metric, prompt_set), group in order:
            n, unit = int(group["N pairs"].max()), group["unit"].iloc[0]
            lower = group["direction"].iloc[0] == "lower"
            way = "lower" if lower else "higher"
            separated = sorted(group[group["separated"]].to_dict("records"), key=lambda r: -abs(r["difference"]))
            for p in separated:
                better, worse, lead = _lead(p, lower, metric)
                out.append(
                    f"{metric} on {prompt_set}: {name[better]} beats {name[worse]}, {way} by {lead} ({level:.0%} interval; "
                    f"{n} paired {unit}), Holm-adjusted p = {p['p (Holm)']:.2g}."
                )
            rest = group[~group["separated"]]
            if len(rest) and separated:
                out.append(
                    f"{metric} on {prompt_set}: {len(rest)} of {len(group)} comparisons not separated after Holm's correction."
                )
            elif len(
                rest
            ):  # nothing separated: the largest difference still stated, with its interval (how sure the run is)
                p = max(rest.to_dict("records"), key=lambda r: abs(r["difference"]))
                better, worse, lead = _lead(p, lower, metric)
                which = "largest difference" if len(rest) > 1 else "difference"
                out.append(
                    f"{metric} on {prompt_set}: {len(rest)} of {len(group)} comparisons not separated after Holm's correction; "
                    f"{which}: {name[better]} over {name[worse]}, {way} by {lead} ({level:.0%} interval; {n} paired "
                    f"{unit}), Holm-adjusted p = {p['p (Holm)']:.2g}."
                )
    if "note" in board.columns:
        for metric, group in board[board["note"] != ""].groupby("metric", sort=True):
            out.append(
                f"{metric}: {group['note'].iloc[0]} (N = {', '.join(str(int(n)) for n in sorted(set(group['n'])))}): shown, "
                f"never ordered or ranked."
            )
    for metric, group in board[board["unavailable"] != ""].groupby("metric", sort=True):
        out.append(f"{metric}: {group['unavailable'].iloc[0]}")
    return out

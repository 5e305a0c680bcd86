"""Ratings out of the database, in the shape reports read (docs/ARCHITECTURE.md, contract 2).

    answers_frame(study_dir_or_db_url)      one row per answer, side-by-side answers de-randomised
    control_accuracy(frame, threshold)      per rater: control answers, correct, accuracy, flagged
    reliable_answers(frame, threshold)      ordinary answers of raters not flagged
    write_answers(source, out)              CSV or parquet + a sidecar <out>.meta.json saying what made it
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .store import Store, is_postgres_url
from .study import load_study

COLUMNS = ["study", "protocol", "task_id", "rater", "question", "answer", "model_a", "model_b", "prompt_id",
           "category", "is_control", "control_correct", "response_ms", "answered_at"]
DEFAULT_THRESHOLD = 0.8
EXPORT_FORMATS = (".csv", ".parquet")


def _store(source: str | Path) -> Store:
    """A study directory (its own study), a SQLite file or a PostgreSQL URL (every study in it)."""
    s = str(source)
    if is_postgres_url(s):
        return Store(s, None)
    path = Path(s[len("sqlite:///"):] if s.startswith("sqlite:///") else s)
    if path.is_dir():
        return load_study(path).store()
    if path.is_file():
        return Store(path, None)
    raise FileNotFoundError(f"{source} is neither a study directory, a SQLite ratings file nor a postgresql:// URL")


def answers_frame(study_dir_or_db_url: str | Path) -> pd.DataFrame:
    store = _store(study_dir_or_db_url)
    try:
        rows = store.answer_rows()
    finally:
        store.close()
    raw = pd.DataFrame(rows, columns=[c if c != "control_correct" else "expected" for c in COLUMNS])
    expected = [json.loads(e).get(q) for e, q in zip(raw["expected"], raw["question"])]
    # A control question with no right answer (the quality question of an alignment control) is
    # neither data nor evidence: it stays in the database but not in the frame, so every control
    # row has control_correct True/False as contract 2 says.
    scored = pd.Series([not c or e is not None for c, e in zip(raw["is_control"].astype(bool), expected)],
                       index=raw.index, dtype=bool)
    raw, expected = raw[scored].reset_index(drop=True), [e for e, k in zip(expected, scored) if k]
    correct = [pd.NA if exp is None else ans == exp for exp, ans in zip(expected, raw["answer"])]  # NA: ordinary rows
    df = raw.drop(columns="expected").assign(
        is_control=raw["is_control"].astype(bool),
        control_correct=pd.array(correct, dtype="boolean"),
        response_ms=raw["response_ms"].astype("int64"),
        answered_at=pd.to_datetime(raw["answered_at"], utc=True, format="ISO8601"),
    )
    for c in COLUMNS:
        if c not in ("is_control", "control_correct", "response_ms", "answered_at"):
            df[c] = df[c].astype(str)
    return df[COLUMNS].reset_index(drop=True)


def control_accuracy(frame: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Per (study, rater): scored control answers, how many right, accuracy, and `flagged`
    (accuracy below `threshold`). Raters with no scored control answer yet have accuracy NaN
    and are not flagged."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    scored = frame[frame["is_control"] & frame["control_correct"].notna()]
    raters = frame[["study", "rater"]].drop_duplicates()
    g = scored.groupby(["study", "rater"])["control_correct"]
    stats = pd.DataFrame({"n_control": g.size(), "n_correct": g.sum().astype("int64")}).reset_index()
    out = raters.merge(stats, on=["study", "rater"], how="left").fillna({"n_control": 0, "n_correct": 0})
    out = out.astype({"n_control": "int64", "n_correct": "int64"})
    out["accuracy"] = (out["n_correct"] / out["n_control"].where(out["n_control"] > 0)).astype("float64")
    out["flagged"] = out["accuracy"] < threshold
    return out.sort_values(["study", "rater"]).reset_index(drop=True)


def reliable_answers(frame: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Ordinary (non-control) answers from raters whose control accuracy is not below `threshold`."""
    acc = control_accuracy(frame, threshold)
    bad = set(zip(acc.loc[acc["flagged"], "study"], acc.loc[acc["flagged"], "rater"]))
    keep = ~frame["is_control"] & ~pd.Series([k in bad for k in zip(frame["study"], frame["rater"])], index=frame.index, dtype=bool)
    return frame[keep].reset_index(drop=True)


def write_answers(source: str | Path, out: str | Path) -> pd.DataFrame:
    """Write answers_frame(source) to `out` (.csv or .parquet) and `<out>.meta.json`. Refuses to
    overwrite an existing file."""
    from imagen import __version__

    out = Path(out)
    if out.suffix not in EXPORT_FORMATS:
        raise ValueError(f"export file must end in {' or '.join(EXPORT_FORMATS)}, got {out.name!r}")
    if out.exists():
        raise ValueError(f"{out} already exists; refusing to overwrite it (choose another --out)")
    df = answers_frame(source)
    meta = {"package_version": __version__, "source": str(source) if not is_postgres_url(str(source)) else "postgresql",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": len(df),
            "contract": "docs/ARCHITECTURE.md contract 2", "answer_rule": "first answer wins"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False) if out.suffix == ".csv" else df.to_parquet(tmp, index=False)
    tmp.replace(out)
    Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return df

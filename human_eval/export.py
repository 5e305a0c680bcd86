"""Ratings out of the database, in the shape reports read (docs/ARCHITECTURE.md, contract 2).

    answers_frame(study_dir_or_db_url)      one row per answer, side-by-side answers de-randomised
    study_settings(study_dir_or_db_url)     study -> its recorded settings (control threshold, fast-answer time)
    write_answers(source, out)              CSV or parquet + a sidecar <out>.meta.json saying what made it
(the frame's validation and the exclusion rule, check_answers / apply_controls by (study, rater), are contract.py's;
a sequential study's stopping state, sequential_state, is sequential.py's; a ranking's, ranking_state, ranking.py's)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.files import atomic_path, write_json_atomic
from common.imagestore import ImageRecord
from common.runs import PromptRef
from common.tables import to_csv
from common.version import __version__

from .contract import COLUMNS as CONTRACT_COLUMNS
from .ranking import DESIGN as RANKING_DESIGN  # noqa: F401  (a sequential ranking's stop, for the report)
from .ranking import state as ranking_state  # noqa: F401
from .sequential import state as sequential_state  # noqa: F401  (a sequential study's stop, for the report)
from .store import Store, is_postgres_url
from .study import load_study

COLUMNS = list(CONTRACT_COLUMNS)
EXPORT_FORMATS = (".csv", ".parquet")


def _store(source: str | Path) -> Store:
    """A study directory (its own study), a SQLite file or a PostgreSQL URL (every study in it)."""
    s = str(source)
    if is_postgres_url(s):
        return Store(s, None)
    path = Path(s[len("sqlite:///") :] if s.startswith("sqlite:///") else s)
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
    scored = pd.Series(
        [not c or e is not None for c, e in zip(raw["is_control"].astype(bool), expected)], index=raw.index, dtype=bool
    )
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


def study_settings(study_dir_or_db_url: str | Path) -> dict[str, dict]:
    """study -> the settings it was created with (every study in a database): control threshold,
    fast-answer time, ..."""
    store = _store(study_dir_or_db_url)
    try:
        return store.study_settings()
    finally:
        store.close()


def write_answers(source: str | Path, out: str | Path) -> pd.DataFrame:
    """Write answers_frame(source) to `out` (.csv or .parquet) and `<out>.meta.json`. Refuses to
    overwrite an existing file."""
    out = Path(out)
    if out.suffix not in EXPORT_FORMATS:
        raise ValueError(f"export file must end in {' or '.join(EXPORT_FORMATS)}, got {out.name!r}")
    if out.exists():
        raise ValueError(f"{out} already exists; refusing to overwrite it (choose another --out)")
    df = answers_frame(source)
    meta = {
        "package_version": __version__,
        "source": str(source) if not is_postgres_url(str(source)) else "postgresql",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": len(df),
        "contract": "docs/ARCHITECTURE.md contract 2",
        "answer_rule": "first answer wins",
        "study_settings": study_settings(source),
    }
    sidecar = Path(f"{out}.meta.json")
    if sidecar.exists():
        raise ValueError(f"{sidecar} already exists; refusing to overwrite it (choose another --out)")
    with atomic_path(out) as tmp:  # nothing left behind when the disk is full or read-only
        to_csv(df, tmp) if out.suffix == ".csv" else df.to_parquet(tmp, index=False)
    write_json_atomic(sidecar, meta)
    return df


def study_images(sources: list[str], labels: dict[tuple[str, str], str] | None = None) -> dict[str, list[ImageRecord]]:
    """model -> the images a study showed its raters (ordinary tasks, first image of each set, the
    study's own copies), for every source that is a study folder (each folder once, however it is
    written); {} for ratings files or databases. `labels`: (study key, model) -> the report's name
    for that model (reports.studies.combine_answers), so two studies' models never share a key."""
    out: dict[str, dict[str, ImageRecord]] = {}
    for root in dict.fromkeys(Path(s).resolve() for s in sources):
        if not (root / "study.json").is_file():
            continue
        study = load_study(root)
        store = study.store()
        try:
            raters = [r for r, _, _ in store.progress()]
            tasks = [t for r in raters for t in store.tasks(r) if not t.is_control]
        finally:
            store.close()
        for t in tasks:
            for model, ids in ((t.model_a, t.images_a), (t.model_b, t.images_b)):
                name = (labels or {}).get((study.key, model), model)
                if model and ids and t.prompt_id not in out.setdefault(name, {}):
                    ref = PromptRef(
                        prompt_set=study.name, prompt_id=t.prompt_id, category=t.category, prompt=t.caption, sample=0
                    )
                    out[name][t.prompt_id] = ImageRecord(name, ref, study.image_path(ids[0]))
    return {m: list(recs.values()) for m, recs in out.items()}

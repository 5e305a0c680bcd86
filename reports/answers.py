"""The ratings frame (contract 2, human_eval/contract.py): load it, validate it, and drop raters
who fail the controls.

A rater is (study, rater). Their control accuracy is (correct control answers) / (control answers);
raters below their study's threshold (the one recorded when the study was created, unless the
report is given one for all) are excluded with all their answers; raters who answered no control
are kept and counted separately (there is nothing to judge them by). Control rows never enter the
analysis.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from human_eval.contract import (  # noqa: F401  (the contract's names, re-exported for the report)
    ANSWERS,
    COLUMNS,
    DEFAULT_CONTROL_THRESHOLD,
    DEFAULT_FAST_ANSWER_MS,
    Thresholds,
    control_accuracy,
)

RATINGS_FILE_SUFFIXES = (".parquet", ".csv")


def load_answers(source: str | Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """(ratings, study -> its recorded settings: control threshold, fast-answer time) from a ratings
    table file (.parquet / .csv with the contract-2 columns; settings from its `<file>.meta.json` when
    `study export` wrote one) or from anything `human_eval.export.answers_frame` accepts (a study
    folder or a database URL)."""
    path = Path(source)
    if path.suffix in RATINGS_FILE_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"ratings file {path} does not exist")
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"prompt_id": str, "rater": str})
        meta = Path(f"{path}.meta.json")
        settings = json.loads(meta.read_text()).get("study_settings", {}) if meta.is_file() else {}
    else:
        from human_eval.export import answers_frame, study_settings

        df, settings = answers_frame(str(source)), study_settings(str(source))
    return check_answers(df, str(source)), {str(k): dict(v) for k, v in settings.items()}


TRUE, FALSE = ("true", "1", "1.0"), ("false", "0", "0.0")


def _flags(col: pd.Series, name: str, source: str, missing) -> pd.Series:
    """A True/False column as booleans, whether it was read from parquet (bool) or CSV (text): the text
    "False" is False (a plain astype(bool) makes every non-empty string True); anything else is refused.
    Empty cells become `missing` (False for is_control; NA for control_correct, empty on ordinary rows)."""
    def one(v):
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA or (isinstance(v, str) and v.strip() == ""):
            return missing
        if isinstance(v, (bool, int)) and not isinstance(v, str) and v in (0, 1):
            return bool(v)
        text = str(v).strip().lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise ValueError(f"{source}: {name} value {v!r} is not a truth value; allowed: True, False (or 1, 0)")
    values = [one(v) for v in col.tolist()]
    return pd.Series(values, index=col.index, dtype="boolean" if missing is None else bool)


def check_answers(df: pd.DataFrame, source: str = "ratings") -> pd.DataFrame:
    """Validate contract 2; returns a copy with prompt_id/rater as str and is_control as bool."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: ratings frame lacks columns {missing}; contract 2 needs {', '.join(COLUMNS)}")
    df = df.copy()
    df["prompt_id"], df["rater"] = df["prompt_id"].astype(str), df["rater"].astype(str)
    empty = df["prompt_id"].str.strip().isin(["", "nan", "<NA>", "None"])
    if empty.any():
        raise ValueError(f"{source}: {int(empty.sum())} rows have no prompt_id (first: row {int(empty.idxmax())})")
    df["is_control"] = _flags(df["is_control"], "is_control", source, missing=False)
    df["control_correct"] = _flags(df["control_correct"], "control_correct", source, missing=None)
    bad_protocol = sorted(set(df["protocol"].unique()) - set(ANSWERS))
    if bad_protocol:
        raise ValueError(f"{source}: unknown protocol(s) {bad_protocol}; allowed: {', '.join(ANSWERS)}")
    for (protocol, question), group in df.groupby(["protocol", "question"]):
        allowed = ANSWERS[protocol].get(question)
        if allowed is None:
            raise ValueError(f"{source}: protocol {protocol} has no question {question!r}; allowed: {', '.join(ANSWERS[protocol])}")
        bad = sorted(set(group.loc[~group["is_control"], "answer"].astype(str).unique()) - set(allowed))
        if bad:
            raise ValueError(f"{source}: {protocol}/{question} answers {bad} not allowed; allowed: {', '.join(allowed)}")
    return df


@dataclass(frozen=True)
class Exclusion:
    thresholds: dict[str, float]  # study -> the threshold applied to its raters
    raters_total: int  # (study, rater) pairs
    raters_excluded: tuple[tuple[str, str], ...]  # (study, rater)
    raters_without_controls: int
    answers_dropped: int  # non-control answers of excluded raters
    control_answers: int
    accuracy: pd.DataFrame  # study, rater, n_control, n_correct, accuracy, threshold, flagged, n_fast
    fast_answers: int = 0  # answers faster than their study's fast-answer time (flagged, not dropped)

    def threshold_text(self) -> str:
        values = sorted(set(self.thresholds.values()))
        if len(values) == 1:
            return f"{values[0]:.0%}"
        return "per study: " + ", ".join(f"{s} {t:.0%}" for s, t in sorted(self.thresholds.items()))

    def describe(self) -> str:
        return (f"Control-accuracy threshold {self.threshold_text()} (raters are (study, rater)): {len(self.raters_excluded)} of "
                f"{self.raters_total} raters excluded ({self.answers_dropped} answers dropped); {self.raters_without_controls} "
                f"raters had no control answers and were kept; {self.control_answers} control answers used only for this; "
                f"{self.fast_answers} answers were faster than their study's fast-answer time (flagged per rater as n_fast, not dropped).")


def apply_controls(df: pd.DataFrame, thresholds: Thresholds = DEFAULT_CONTROL_THRESHOLD,
                   fast_ms: float | dict[str, float] = DEFAULT_FAST_ANSWER_MS) -> tuple[pd.DataFrame, Exclusion]:
    """(non-control answers of raters at or above their study's threshold, what was excluded).
    `thresholds` / `fast_ms`: one value for every study, or study -> value (studies absent: the default)."""
    acc = control_accuracy(df, thresholds, fast_ms)
    excluded = tuple(sorted(zip(acc.loc[acc["flagged"], "study"], acc.loc[acc["flagged"], "rater"])))
    answers = df[~df["is_control"]]
    bad = set(excluded)
    keep = pd.Series([k not in bad for k in zip(answers["study"], answers["rater"])], index=answers.index, dtype=bool)
    return answers[keep].reset_index(drop=True), Exclusion(
        thresholds=dict(zip(acc["study"], acc["threshold"])), raters_total=len(acc), raters_excluded=excluded,
        raters_without_controls=int((acc["n_control"] == 0).sum()), answers_dropped=int((~keep).sum()),
        control_answers=int(df["is_control"].sum()), accuracy=acc, fast_answers=int(acc["n_fast"].sum()))

"""The ratings contract (docs/ARCHITECTURE.md, contract 2), defined once: the columns of a ratings
frame, the answers each protocol's questions allow, the control threshold, the frame's validation
(check_answers) and the one exclusion rule (apply_controls).
The app, the store's export and the report all use these; nothing here imports more than pandas
and human_eval.protocols (a leaf: tests/test_architecture.py RULES_INSIDE).

Rater identity is (study, rater): rater names (r01, r02, ...) restart in every study, so r01 of one
study is another person than r01 of the next, and is judged by that study's own threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .protocols import PROTOCOLS, derandomise

COLUMNS = (
    "study",
    "protocol",
    "task_id",
    "rater",
    "question",
    "answer",
    "model_a",
    "model_b",
    "prompt_id",
    "category",
    "is_control",
    "control_correct",
    "response_ms",
    "answered_at",
)
RATER = ["study", "rater"]  # who answered

# protocol -> question -> allowed answers, as exported (shown sides de-randomised to A / tie / B)
ANSWERS = {
    name: {q.key: tuple(dict.fromkeys(derandomise(o.value, a_on_left=True) for o in q.options)) for q in p.questions}
    for name, p in PROTOCOLS.items()
}

# 80 %: the paper does not publish its threshold; 80 % on easy controls separates attentive raters
# (>= 95 % in practice) from random clicking (33-50 %) with a wide margin. Each study records the
# threshold it was created with (study.json settings.control_threshold); reports apply that one.
DEFAULT_CONTROL_THRESHOLD = 0.8

Thresholds = float | Mapping[str, float]  # one for every study, or study -> its own

# Answers faster than this are flagged (counted per rater, shown on the admin page and in the
# report; not excluded by themselves): reading a caption and comparing two sets of images takes a
# person seconds; a scripted submit took 79 ms. Recorded per study (settings.fast_answer_ms).
DEFAULT_FAST_ANSWER_MS = 1000


def check_threshold(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"control threshold must be in [0, 1], got {value}")
    return value


def threshold_of(thresholds: Thresholds, study: str) -> float:
    if isinstance(thresholds, Mapping):
        return check_threshold(thresholds.get(study, DEFAULT_CONTROL_THRESHOLD))
    return check_threshold(thresholds)


def settings_of(settings: Mapping[str, Mapping], key: str, default: float) -> dict[str, float]:
    """study -> settings[study][key] (the default where a study did not record it)."""
    return {str(study): float(values.get(key, default)) for study, values in settings.items()}


def control_accuracy(
    frame: pd.DataFrame,
    thresholds: Thresholds = DEFAULT_CONTROL_THRESHOLD,
    fast_ms: float | Mapping[str, float] = DEFAULT_FAST_ANSWER_MS,
) -> pd.DataFrame:
    """Per (study, rater): scored control answers, how many right, accuracy, the study's threshold
    and `flagged` (accuracy below it); answers faster than the study's fast-answer time (`n_fast`).
    Raters with no scored control answer have accuracy NaN and are not flagged (there is nothing to
    judge them by)."""
    scored = frame[frame["is_control"].astype(bool) & frame["control_correct"].notna()]
    raters = frame[RATER].drop_duplicates()
    g = scored.groupby(RATER)["control_correct"]
    stats = pd.DataFrame({"n_control": g.size(), "n_correct": g.sum().astype("int64")}).reset_index()
    out = raters.merge(stats, on=RATER, how="left").fillna({"n_control": 0, "n_correct": 0})
    out = out.astype({"n_control": "int64", "n_correct": "int64"})
    out["accuracy"] = (out["n_correct"] / out["n_control"].where(out["n_control"] > 0)).astype("float64")
    out["threshold"] = [threshold_of(thresholds, s) for s in out["study"]]
    out["flagged"] = out["accuracy"] < out["threshold"]
    limit = pd.Series(
        [
            fast_ms.get(st, DEFAULT_FAST_ANSWER_MS) if isinstance(fast_ms, Mapping) else fast_ms
            for st in frame["study"]
        ],
        index=frame.index,
        dtype=float,
    )
    fast = (
        (pd.to_numeric(frame["response_ms"], errors="coerce") < limit).groupby([frame["study"], frame["rater"]]).sum()
    )
    out["n_fast"] = [int(fast.get((st, r), 0)) for st, r in zip(out["study"], out["rater"])]
    return out.sort_values(RATER).reset_index(drop=True)


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
            raise ValueError(
                f"{source}: protocol {protocol} has no question {question!r}; allowed: {', '.join(ANSWERS[protocol])}"
            )
        bad = sorted(set(group.loc[~group["is_control"], "answer"].astype(str).unique()) - set(allowed))
        if bad:
            raise ValueError(
                f"{source}: {protocol}/{question} answers {bad} not allowed; allowed: {', '.join(allowed)}"
            )
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
        return (
            f"Control-accuracy threshold {self.threshold_text()} (raters are (study, rater)): {len(self.raters_excluded)} of "
            f"{self.raters_total} raters excluded ({self.answers_dropped} answers dropped); {self.raters_without_controls} "
            f"raters had no control answers and were kept; {self.control_answers} control answers used only for this; "
            f"{self.fast_answers} answers were faster than their study's fast-answer time (flagged per rater as n_fast, not dropped)."
        )


def apply_controls(
    df: pd.DataFrame,
    thresholds: Thresholds = DEFAULT_CONTROL_THRESHOLD,
    fast_ms: float | dict[str, float] = DEFAULT_FAST_ANSWER_MS,
) -> tuple[pd.DataFrame, Exclusion]:
    """(non-control answers of raters at or above their study's threshold, what was excluded).
    `thresholds` / `fast_ms`: one value for every study, or study -> value (studies absent: the default)."""
    acc = control_accuracy(df, thresholds, fast_ms)
    excluded = tuple(sorted(zip(acc.loc[acc["flagged"], "study"], acc.loc[acc["flagged"], "rater"])))
    answers = df[~df["is_control"]]
    bad = set(excluded)
    keep = pd.Series([k not in bad for k in zip(answers["study"], answers["rater"])], index=answers.index, dtype=bool)
    return answers[keep].reset_index(drop=True), Exclusion(
        thresholds=dict(zip(acc["study"], acc["threshold"])),
        raters_total=len(acc),
        raters_excluded=excluded,
        raters_without_controls=int((acc["n_control"] == 0).sum()),
        answers_dropped=int((~keep).sum()),
        control_answers=int(df["is_control"].sum()),
        accuracy=acc,
        fast_answers=int(acc["n_fast"].sum()),
    )

"""The ratings contract (docs/ARCHITECTURE.md, contract 2), defined once: the columns of a ratings
frame, the answers each protocol's questions allow, the control threshold and the exclusion rule.
The app, the store's export and the report all use these; nothing here imports more than pandas
and human_eval.protocols (a leaf: tests/test_architecture.py RULES_INSIDE).

Rater identity is (study, rater): rater names (r01, r02, ...) restart in every study, so r01 of one
study is another person than r01 of the next, and is judged by that study's own threshold.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from .protocols import PROTOCOLS, derandomise

COLUMNS = ("study", "protocol", "task_id", "rater", "question", "answer", "model_a", "model_b", "prompt_id",
           "category", "is_control", "control_correct", "response_ms", "answered_at")
RATER = ["study", "rater"]  # who answered

# protocol -> question -> allowed answers, as exported (shown sides de-randomised to A / tie / B)
ANSWERS = {name: {q.key: tuple(dict.fromkeys(derandomise(o.value, a_on_left=True) for o in q.options)) for q in p.questions}
           for name, p in PROTOCOLS.items()}

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


def control_accuracy(frame: pd.DataFrame, thresholds: Thresholds = DEFAULT_CONTROL_THRESHOLD,
                     fast_ms: float | Mapping[str, float] = DEFAULT_FAST_ANSWER_MS) -> pd.DataFrame:
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
    limit = pd.Series([fast_ms.get(st, DEFAULT_FAST_ANSWER_MS) if isinstance(fast_ms, Mapping) else fast_ms
                       for st in frame["study"]], index=frame.index, dtype=float)
    fast = (pd.to_numeric(frame["response_ms"], errors="coerce") < limit).groupby([frame["study"], frame["rater"]]).sum()
    out["n_fast"] = [int(fast.get((st, r), 0)) for st, r in zip(out["study"], out["rater"])]
    return out.sort_values(RATER).reset_index(drop=True)


def flagged_raters(frame: pd.DataFrame, thresholds: Thresholds = DEFAULT_CONTROL_THRESHOLD) -> set[tuple[str, str]]:
    acc = control_accuracy(frame, thresholds)
    return set(zip(acc.loc[acc["flagged"], "study"], acc.loc[acc["flagged"], "rater"]))


def reliable_answers(frame: pd.DataFrame, thresholds: Thresholds = DEFAULT_CONTROL_THRESHOLD) -> pd.DataFrame:
    """Ordinary (non-control) answers of raters whose control accuracy is not below their study's threshold."""
    bad = flagged_raters(frame, thresholds)
    flagged = pd.Series([k in bad for k in zip(frame["study"], frame["rater"])], index=frame.index, dtype=bool)
    return frame[~frame["is_control"].astype(bool) & ~flagged].reset_index(drop=True)

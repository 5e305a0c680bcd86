"""The ratings frame (contract 2): load it, validate it, and drop raters who fail the controls.

A rater's control accuracy is (correct control answers) / (control answers). Raters below the
threshold are excluded with all their answers; raters who answered no control are kept and
counted separately (there is nothing to judge them by). Control rows never enter the analysis.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

COLUMNS = ("study", "protocol", "task_id", "rater", "question", "answer", "model_a", "model_b", "prompt_id",
           "category", "is_control", "control_correct", "response_ms", "answered_at")
# protocol -> question -> allowed answers (contract 2)
ANSWERS = {
    "drawbench_sbs": {"quality": ("A", "tie", "B"), "alignment": ("A", "tie", "B")},
    "coco_realism": {"realism": ("A", "B")},
    "coco_alignment": {"caption": ("yes", "somewhat", "no")},
}
# 80 %: the paper does not publish its threshold; 80 % on easy controls separates attentive raters
# (>= 95 % in practice) from random clicking (33-50 %) with a wide margin.
DEFAULT_CONTROL_THRESHOLD = 0.8
RATINGS_FILE_SUFFIXES = (".parquet", ".csv")


def load_answers(source: str | Path) -> pd.DataFrame:
    """A ratings table file (.parquet / .csv with the contract-2 columns), or anything
    `human_eval.export.answers_frame` accepts (a study folder or a database URL)."""
    path = Path(source)
    if path.suffix in RATINGS_FILE_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"ratings file {path} does not exist")
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"prompt_id": str, "rater": str})
    else:
        try:
            from human_eval.export import answers_frame  # lazy: human_eval is optional for metric-only reports
        except ImportError as e:
            raise ValueError(f"{source}: reading a study needs human_eval.export.answers_frame ({e}); "
                             f"or pass a ratings file ({', '.join(RATINGS_FILE_SUFFIXES)})") from e
        df = answers_frame(str(source))
    return check_answers(df, str(source))


def check_answers(df: pd.DataFrame, source: str = "ratings") -> pd.DataFrame:
    """Validate contract 2; returns a copy with prompt_id/rater as str and is_control as bool."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: ratings frame lacks columns {missing}; contract 2 needs {', '.join(COLUMNS)}")
    df = df.copy()
    df["prompt_id"], df["rater"] = df["prompt_id"].astype(str), df["rater"].astype(str)
    df["is_control"] = df["is_control"].fillna(False).astype(bool)
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
    threshold: float
    raters_total: int
    raters_excluded: tuple[str, ...]
    raters_without_controls: int
    answers_dropped: int  # non-control answers of excluded raters
    control_answers: int
    accuracy: pd.DataFrame  # rater, controls, correct, accuracy, excluded

    def describe(self) -> str:
        return (f"Control-accuracy threshold {self.threshold:.0%}: {len(self.raters_excluded)} of {self.raters_total} raters "
                f"excluded ({self.answers_dropped} answers dropped); {self.raters_without_controls} raters had no "
                f"control answers and were kept; {self.control_answers} control answers used only for this.")


def apply_controls(df: pd.DataFrame, threshold: float = DEFAULT_CONTROL_THRESHOLD) -> tuple[pd.DataFrame, Exclusion]:
    """(non-control answers of raters at or above the threshold, what was excluded)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"control threshold must be in [0, 1], got {threshold}")
    controls = df[df["is_control"]]
    correct = controls["control_correct"].astype("boolean").fillna(False).astype(bool)
    per_rater = correct.groupby(controls["rater"]).agg(controls="size", correct="sum")
    per_rater["accuracy"] = per_rater["correct"] / per_rater["controls"]
    per_rater["excluded"] = per_rater["accuracy"] < threshold
    excluded = tuple(sorted(per_rater.index[per_rater["excluded"]]))
    answers = df[~df["is_control"]]
    keep = ~answers["rater"].isin(excluded)
    all_raters = set(df["rater"].unique())
    return answers[keep].reset_index(drop=True), Exclusion(
        threshold=threshold, raters_total=len(all_raters), raters_excluded=excluded,
        raters_without_controls=len(all_raters - set(per_rater.index)), answers_dropped=int((~keep).sum()),
        control_answers=len(controls), accuracy=per_rater.reset_index())

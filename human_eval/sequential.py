"""The sequential design of an A-vs-B study (issue 30 item 4): the study stops when it knows.

Unit: the rater-batch. Each rater of a sequential study rates exactly one batch (human_eval.
sequential_deal: prompts dealt in passes, each pass every prompt once, stratified by category), and
the batch's observation is the mean of its ordinary answers to the plan's question, A = 1, tie = 1/2,
B = 0: a number in [0, 1] whatever the raters and prompts are like. Assumption (stated in the report):
raters arrive exchangeably and answer independently of each other, so the batch means are
independent bounded observations whose conditional means average to the preference rate over the
study's prompts; judgments inside a batch share a rater and are never treated as independent.

After each look (every `look_every` counted batches) the confidence sequence (confseq.py) of the
batch means is updated. Only batches of raters the control filter keeps count (the filter reads
control answers only, never the A/B answers, so it cannot steer the rule). The study stops at the
first look, after one full pass (every prompt of the study rated in a counted batch), where
    decided   the interval excludes 1/2 (A or B preferred),
    precise   its half-width is at most `half_width`, or
    cap       every planned batch (the cap: one per rater of the pool) is in.
The interval at the stop keeps its 1 - alpha coverage under this optional stopping (anytime
validity), which a fixed-sample interval would not.

The plan is recorded in the database with the tasks at creation (and in study.json); the rule reads
the database's copy, so editing study.json afterwards changes nothing (and is refused, plan_of).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from .confseq import METHODS, check_method, sequence
from .contract import control_accuracy

REASONS = ("decided", "precise", "cap")
SCORES = {"A": 1.0, "tie": 0.5, "B": 0.0}


@dataclass(frozen=True)
class SequentialPlan:
    alpha: float = 0.05  # 1 - alpha: the coverage of the interval at the stop
    half_width: float = 0.03  # stop once the interval is this narrow on each side (the pre-registered precision)
    look_every: int = 1  # counted batches between looks
    method: str = "betting"  # confseq.METHODS
    question: str | None = None  # the question the rule watches; None: the protocol's first

    def __post_init__(self):
        if not 0 < self.alpha <= 0.5:
            raise ValueError(f"sequential alpha must be in (0, 0.5], got {self.alpha}")
        if not 0 < self.half_width < 0.5:
            raise ValueError(f"sequential half width must be in (0, 0.5), got {self.half_width}")
        if not 1 <= self.look_every <= 1000:
            raise ValueError(f"sequential look interval must be 1..1000 batches, got {self.look_every}")
        check_method(self.method)


@dataclass(frozen=True)
class Recorded:
    """The plan as recorded at creation, with what the deal fixed."""

    plan: SequentialPlan
    question: str
    cap_batches: int  # one batch per rater of the pool
    tasks_per_batch: int  # ordinary + control tasks of every batch
    n_prompts: int  # prompts of the study: one full pass rates each once


def record(plan: SequentialPlan, question: str, cap_batches: int, tasks_per_batch: int, n_prompts: int) -> dict:
    return asdict(plan) | {
        "question": question,
        "cap_batches": cap_batches,
        "tasks_per_batch": tasks_per_batch,
        "n_prompts": n_prompts,
    }


def recorded_plan(seq: dict) -> Recorded:
    """The Recorded of a study's settings.plan.sequential (KeyError: a field is missing)."""
    names = {f.name for f in fields(SequentialPlan)}
    return Recorded(
        SequentialPlan(**{k: v for k, v in seq.items() if k in names}),
        str(seq["question"]),
        int(seq["cap_batches"]),
        int(seq["tasks_per_batch"]),
        int(seq["n_prompts"]),
    )


def recorded(settings: dict) -> Recorded | None:
    """The recorded plan of a study's settings (None: not a sequential A-vs-B study)."""
    plan = settings.get("plan", {})
    if plan.get("design") != "sequential":
        return None
    try:
        return recorded_plan(dict(plan.get("sequential") or {}))
    except KeyError as e:
        raise ValueError(
            f"the study's sequential plan lacks {e}; it was not written by `study create --design sequential`"
        ) from None


def stops(
    low: np.ndarray, high: np.ndarray, covered: np.ndarray, plan: SequentialPlan, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """(t, reason) per row of (R, T) interval arrays: the first look t (1-based; 0: not stopped
    yet) where the rule fires and its reason's index in REASONS (-1 if not stopped). covered[r, t-1]:
    one full pass is in after t batches."""
    if low.shape[1] == 0:  # no batch counted yet
        return np.zeros(low.shape[0], int), np.full(low.shape[0], -1)
    t = np.arange(1, low.shape[1] + 1)
    look = covered & ((t % plan.look_every == 0) | (t == cap))
    with np.errstate(invalid="ignore"):  # nan: an empty interval (every mean rejected) decides nothing
        decided, precise = (low > 0.5) | (high < 0.5), (high - low) <= 2 * plan.half_width + 1e-12
    reason = np.select([decided, precise, np.broadcast_to(t == cap, low.shape)], [0, 1, 2], -1)
    fire = look & (reason >= 0)
    hit = fire.any(axis=1)
    first = np.argmax(fire, axis=1)
    return np.where(hit, first + 1, 0), np.where(hit, reason[np.arange(len(first)), first], -1)


@dataclass(frozen=True)
class State:
    """Where a sequential study stands: the counted batches in arrival order and the interval after each."""

    recorded: Recorded
    batches: pd.DataFrame  # rater, done_at, mean, answers, counted (False: flagged by the control filter), look
    low: np.ndarray  # the interval after each counted batch
    high: np.ndarray
    covered: np.ndarray  # one full pass in after each counted batch
    stop_at: int  # counted batches at the stop; 0: still running
    reason: str | None  # REASONS, or None while running

    @property
    def estimate(self) -> float:
        """Mean of the counted batch means up to the stop (or up to now)."""
        means = self.batches.loc[self.batches["counted"], "mean"].to_numpy()
        n = self.stop_at or len(means)
        return float(means[:n].mean()) if n else float("nan")

    def interval(self) -> tuple[float, float]:
        n = self.stop_at or len(self.low)
        return (float(self.low[n - 1]), float(self.high[n - 1])) if n else (0.0, 1.0)

    def finding(self) -> str:
        """Where the study stands, in one sentence without the plan (the report's summary line)."""
        return f"{self._status()}."

    def _status(self) -> str:
        r, n = self.recorded, self.stop_at or len(self.low)
        low, high = self.interval()
        if self.reason is None:
            return f"Still running after {n} counted batches: interval [{low:.3f}, {high:.3f}]"
        why = {
            "decided": f"the interval excludes 1/2 ({'A' if low > 0.5 else 'B'} preferred)",
            "precise": f"the interval's half-width reached {r.plan.half_width:g} without excluding 1/2",
            "cap": "the cap was reached",
        }[self.reason]
        return (
            f"Stopped after {n} counted batches because {why}: preference for A {self.estimate:.3f}, interval at the stop "
            f"[{low:.3f}, {high:.3f}]"
        )

    def describe(self) -> str:
        """finding() with the plan that produced it."""
        r = self.recorded
        plan = (
            f"sequential design: {r.plan.method} confidence sequence at {1 - r.plan.alpha:.0%} on question {r.question!r}, "
            f"stop when it excludes 1/2 or its half-width reaches {r.plan.half_width:g}, or at the cap of {r.cap_batches} batches, "
            f"after one full pass over the {r.n_prompts} prompts; looks every {r.plan.look_every} batch(es)"
        )
        return f"{self._status()} ({plan})."


def batch_table(frame: pd.DataFrame, rec: Recorded, threshold: float) -> pd.DataFrame:
    """One row per rater with a complete batch (every task answered), oldest completion first."""
    frame = frame.assign(
        answered_at=pd.to_datetime(frame["answered_at"], utc=True, format="ISO8601")
    )  # a CSV export holds text
    done = frame.groupby("rater").agg(tasks=("task_id", "nunique"), done_at=("answered_at", "max")).reset_index()
    done = done[done["tasks"] == rec.tasks_per_batch]
    ordinary = frame[~frame["is_control"].astype(bool) & (frame["question"] == rec.question)]
    scored = ordinary.assign(score=ordinary["answer"].map(SCORES).astype(float))
    if scored["score"].isna().any():
        raise ValueError(f"answers to {rec.question!r} must be A, tie or B for a sequential study")
    means = (
        scored.groupby("rater")
        .agg(mean=("score", "mean"), answers=("score", "size"), prompts=("prompt_id", frozenset))
        .reset_index()
    )
    acc = control_accuracy(frame, threshold).set_index("rater")["flagged"]
    out = done.merge(means, on="rater", how="inner")
    out["counted"] = ~out["rater"].map(acc).fillna(False).astype(bool)
    return out.sort_values(["done_at", "rater"]).reset_index(drop=True)


def state(frame: pd.DataFrame, settings: dict, threshold: float) -> State:
    """The sequential state of one study from its contract-2 answers (controls included) and its
    recorded settings (human_eval.export.study_settings)."""
    rec = recorded(settings)
    if rec is None:
        raise ValueError("not a sequential study (its plan's design is not 'sequential')")
    table = batch_table(frame, rec, threshold)
    counted = table[table["counted"]]
    seen: set[str] = set()
    covered = []
    for prompts in counted["prompts"]:
        seen |= prompts
        covered.append(len(seen) >= rec.n_prompts)
    x = counted["mean"].to_numpy()[None, :]
    low, high = sequence(x, rec.plan.alpha, rec.plan.method) if x.size else (np.empty((1, 0)), np.empty((1, 0)))
    t, reason = stops(low, high, np.array(covered, bool)[None, :], rec.plan, rec.cap_batches)
    stop_at, why = int(t[0]), REASONS[reason[0]] if reason[0] >= 0 else None
    if why is None and len(table) == rec.cap_batches:  # every planned batch is in (some flagged): the cap,
        stop_at, why = len(counted), "cap"  # at the last one, never moved back to an earlier look
    table["look"] = 0
    table.loc[table["counted"], "look"] = np.arange(1, len(counted) + 1)
    return State(rec, table.drop(columns="prompts"), low[0], high[0], np.array(covered, bool), stop_at, why)


__all__ = [
    "METHODS",
    "REASONS",
    "Recorded",
    "SequentialPlan",
    "State",
    "batch_table",
    "record",
    "recorded",
    "recorded_plan",
    "state",
    "stops",
]

"""The report's account of a sequential A-vs-B study (human_eval.sequential): why and when it
stopped, and the interval at the stop, recomputed from the answers and the plan the study
recorded at creation (the rule reads no state that the answers and the plan do not fix)."""

from __future__ import annotations

import pandas as pd

from human_eval.contract import DEFAULT_CONTROL_THRESHOLD
from human_eval.export import sequential_state

from .html import Paragraph, Section, Table


def sequential_sections(answers: pd.DataFrame, settings: dict[str, dict]) -> list[Section]:
    """One section per sequential study among `answers` (contract 2, controls included)."""
    out = []
    for study in sorted(set(answers["study"].astype(str))):
        recorded = settings.get(study, {})
        if recorded.get("plan", {}).get("design") != "sequential":
            continue
        threshold = float(recorded.get("control_threshold", DEFAULT_CONTROL_THRESHOLD))
        state = sequential_state(answers[answers["study"].astype(str) == study], recorded, threshold)
        looks = state.batches.assign(low=float("nan"), high=float("nan"))
        counted = looks["counted"].to_numpy()
        looks.loc[counted, "low"], looks.loc[counted, "high"] = state.low, state.high
        looks["after_stop"] = counted & (looks["look"] > state.stop_at) & (state.stop_at > 0)
        looks["done_at"] = looks["done_at"].astype(str)
        out.append(
            Section(
                f"Sequential design: {study}",
                [
                    Paragraph(state.describe(), kind="plain"),
                    Paragraph(
                        f"Assumption: raters arrive exchangeably and answer independently of each other, so each rater's batch mean "
                        f"(A = 1, tie = 1/2, B = 0 on {state.recorded.question!r}) is one bounded observation; answers inside a batch "
                        f"share a rater and are not treated as independent. Batches of raters below the control threshold "
                        f"({threshold:.0%}, the study's) do not count. The interval holds the preference over the study's prompts with "
                        f"{1 - state.recorded.plan.alpha:.0%} probability at every look at once, so stopping by the rule keeps it valid."
                    ),
                    Table(
                        f"sequential_looks_{len(out) + 1}",
                        looks[["look", "rater", "done_at", "answers", "mean", "counted", "low", "high", "after_stop"]],
                        "One row per complete batch in the order it was completed: its rater, mean score, whether it counts (the control "
                        "filter), and the confidence sequence after it (low, high); rows after the stop did not enter the rule.",
                    ),
                ],
            )
        )
    return out

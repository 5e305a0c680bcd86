"""The report's account of a sequential study: an A-vs-B study (human_eval.sequential), why and when
it stopped and the interval at the stop; a ranking of several models (human_eval.ranking), why and
when it stopped and the Bradley-Terry ranking with its intervals at the stop. Recomputed from the
answers and the plan the study recorded at creation (the rule reads no state that the answers and
the plan do not fix)."""

from __future__ import annotations

import pandas as pd

from human_eval.contract import DEFAULT_CONTROL_THRESHOLD
from human_eval.export import RANKING_DESIGN, ranking_state, sequential_state

from .html import Paragraph, Section, Table


def sequential_sections(answers: pd.DataFrame, settings: dict[str, dict]) -> tuple[list[str], list[Section]]:
    """(findings, sections): per sequential study among `answers` (contract 2, controls included) the
    sentence the report's summary leads with (why and when it stopped, what it found) and its section."""
    found, out = [], []
    for study in sorted(set(answers["study"].astype(str))):
        recorded = settings.get(study, {})
        if recorded.get("plan", {}).get("design") == RANKING_DESIGN:
            line, section = _ranking_section(
                study, answers[answers["study"].astype(str) == study], recorded, len(out) + 1
            )
            found.append(line)
            out.append(section)
            continue
        if recorded.get("plan", {}).get("design") != "sequential":
            continue
        threshold = float(recorded.get("control_threshold", DEFAULT_CONTROL_THRESHOLD))
        state = sequential_state(answers[answers["study"].astype(str) == study], recorded, threshold)
        looks = state.batches.assign(low=float("nan"), high=float("nan"))
        counted = looks["counted"].to_numpy()
        looks.loc[counted, "low"], looks.loc[counted, "high"] = state.low, state.high
        looks["after_stop"] = counted & (looks["look"] > state.stop_at) & (state.stop_at > 0)
        looks["done_at"] = looks["done_at"].astype(str)
        found.append(f"Sequential study {study} (question {state.recorded.question!r}): {state.finding()}")
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
    return found, out


def _ranking_section(study: str, answers: pd.DataFrame, recorded: dict, n: int) -> tuple[str, Section]:
    threshold = float(recorded.get("control_threshold", DEFAULT_CONTROL_THRESHOLD))
    state = ranking_state(answers, recorded, threshold)
    rec = state.recorded
    batches = state.batches.assign(pair=[rec.pair_label(p) for p in state.batches["pair"]])
    batches["after_stop"] = batches["counted"] & (batches["look"] > state.stop_at) & (state.stop_at > 0)
    batches["done_at"] = batches["done_at"].astype(str)
    line = (
        f"Sequential ranking {study} of {len(rec.models)} models (question {rec.base.question!r}): {state.finding()}"
    )
    return line, Section(
        f"Sequential ranking: {study}",
        [
            Paragraph(state.describe(), kind="plain"),
            Paragraph(
                f"Assumption: raters arrive exchangeably and answer independently of each other, so each rater's batch mean "
                f"(A = 1, tie = 1/2, B = 0 on {rec.base.question!r}, A the pair's first model) is one bounded observation of its "
                f"pair; answers inside a batch share a rater and are not treated as independent. Batches of raters below the "
                f"control threshold ({threshold:.0%}) do not count. Each pair's interval holds its preference over the study's "
                f"prompts with {1 - rec.pair_alpha:.2%} probability at every look, all {len(state.pair_table())} together with "
                f"{1 - rec.plan.alpha:.0%} (Bonferroni), whichever pairs the allocation chose, so stopping by the rule keeps them "
                f"valid. Strengths: Bradley-Terry log strengths fitted to the counted answers up to the stop (0 = the average "
                f"model); a difference's interval is the logit of its pair's interval, the Bradley-Terry reading of a preference."
            ),
            Table(
                f"sequential_ranking_{n}",
                state.estimates(),
                "The models in the fitted order at the stop: log strength, and against the next model the preference interval "
                "and the strength difference's interval (simultaneous at 1 - alpha), with the verdict.",
            ),
            Table(
                f"sequential_ranking_pairs_{n}",
                state.pair_table(),
                "Every pair: counted batches up to the stop, its interval, whether one full pass over the prompts is in, its status.",
            ),
            Table(
                f"sequential_ranking_batches_{n}",
                batches[["look", "rater", "pair", "done_at", "answers", "mean", "counted", "after_stop"]],
                "One row per complete batch in the order it was completed: its rater, pair, mean score (for the pair's first "
                "model) and whether it counts; rows after the stop did not enter the rule.",
            ),
        ],
    )

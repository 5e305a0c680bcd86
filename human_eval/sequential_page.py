"""A sequential study in the app: the admin page's live confidence sequence (an A-vs-B study,
human_eval.sequential) or live ranking (several models, human_eval.ranking), and the rater page's
"this study has ended" once the rule has stopped it."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from . import ranking
from .export import answers_frame
from .sequential import State, recorded, state
from .store import Store
from .study import Study

ENDED = "This study has collected the answers it needs and has ended. Thank you for your interest; you can close this page."


def study_state(study: Study, store: Store, frame: pd.DataFrame) -> State | ranking.RankingState | None:
    """The study's sequential state (None: not a sequential study), by the plan recorded in the
    database at creation. A study.json whose plan differs from it was edited afterwards: refused."""
    settings = store.study_settings()[store.study]
    if recorded(settings) is None and ranking.recorded(settings) is None:
        return None
    meta = json.loads((study.root / "study.json").read_text())
    if meta.get("settings", {}).get("plan", {}).get("sequential") != settings["plan"]["sequential"]:
        raise ValueError(
            "study.json's sequential plan differs from the one the database recorded at creation; a plan cannot "
            "change once made (the database's is the one in force): restore study.json from a backup"
        )
    threshold = float(settings["control_threshold"])
    if ranking.recorded(settings) is not None:
        return ranking.state(frame, settings, threshold)
    return state(frame, settings, threshold)


def ended(study: Study, store: Store) -> bool:
    """True when a sequential study has stopped by its rule (the rater page then turns away raters who
    have not begun their batch; one who has may finish it, and the report lists it after the stop)."""
    settings = store.study_settings()[store.study]
    if recorded(settings) is None and ranking.recorded(settings) is None:
        return False  # other designs never end early (and read no answers here)
    return study_state(study, store, answers_frame(study.root)).reason is not None


def render(current: State | ranking.RankingState) -> None:
    """The admin page's section: the rule's verdict so far, the sequence after every counted batch."""
    if isinstance(current, ranking.RankingState):
        render_ranking(current)
        return
    st.subheader("Sequential design: the live confidence sequence")
    (st.success if current.reason else st.info)(current.describe())
    counted = current.batches[current.batches["counted"]]
    if len(counted):
        n = len(current.low)
        means = counted["mean"].to_numpy()
        chart = pd.DataFrame(
            {"low": current.low, "high": current.high, "running mean": means.cumsum() / range(1, n + 1), "1/2": 0.5},
            index=pd.RangeIndex(1, n + 1, name="counted batches"),
        )
        st.line_chart(chart)
    st.dataframe(current.batches, hide_index=True)
    excluded = int((~current.batches["counted"]).sum())
    st.caption(
        f"A batch counts once its rater has answered every task and passed the check questions ({excluded} batch(es) of flagged "
        f"raters do not count). The interval holds the preference with {1 - current.recorded.plan.alpha:.0%} probability at "
        "every look at once, so the study may stop whenever the rule says so."
    )


def render_ranking(current: ranking.RankingState) -> None:
    """A ranking study's section: the verdict so far, the models in the fitted order with their
    Bradley-Terry strengths and the interval of each adjacent difference, every pair's interval."""
    rec = current.recorded
    st.subheader("Sequential ranking: the live Bradley-Terry ranking")
    (st.success if current.reason else st.info)(current.describe())
    st.dataframe(current.estimates(), hide_index=True)
    st.dataframe(current.pair_table(), hide_index=True)
    st.dataframe(current.batches.assign(pair=[rec.pair_label(p) for p in current.batches["pair"]]), hide_index=True)
    excluded = int((~current.batches["counted"]).sum())
    st.caption(
        f"Each rater rates one batch of one pair of models, chosen when they start by the information it adds to the "
        f"ranking. A batch counts once its rater has answered every task and passed the check questions ({excluded} "
        f"batch(es) of flagged raters do not count). Every pair's interval holds its preference with "
        f"{1 - rec.pair_alpha:.2%} probability at every look, all {len(current.pair_table())} together with "
        f"{1 - rec.plan.alpha:.0%} (Bonferroni), so the study may stop whenever the rule says so."
    )

"""A sequential study in the app: the admin page's live confidence sequence, and the rater page's
"this study has ended" once the rule has stopped it (human_eval.sequential)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from .export import answers_frame
from .sequential import State, recorded, state
from .store import Store
from .study import Study

ENDED = "This study has collected the answers it needs and has ended. Thank you for your interest; you can close this page."


def study_state(study: Study, store: Store, frame: pd.DataFrame) -> State | None:
    """The study's sequential state (None: not a sequential study), by the plan recorded in the
    database at creation. A study.json whose plan differs from it was edited afterwards: refused."""
    settings = store.study_settings()[store.study]
    if recorded(settings) is None:
        return None
    meta = json.loads((study.root / "study.json").read_text())
    if meta.get("settings", {}).get("plan", {}).get("sequential") != settings["plan"]["sequential"]:
        raise ValueError(
            "study.json's sequential plan differs from the one the database recorded at creation; a plan cannot "
            "change once made (the database's is the one in force): restore study.json from a backup"
        )
    return state(frame, settings, float(settings["control_threshold"]))


def ended(study: Study, store: Store) -> bool:
    """True when a sequential study has stopped by its rule (the rater page then turns away raters who
    have not begun their batch; one who has may finish it, and the report lists it after the stop)."""
    if (
        recorded(store.study_settings()[store.study]) is None
    ):  # other designs never end early (and read no answers here)
        return False
    return study_state(study, store, answers_frame(study.root)).reason is not None


def render(current: State) -> None:
    """The admin page's section: the rule's verdict so far, the sequence after every counted batch."""
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

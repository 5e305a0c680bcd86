"""A crowd participant's page (issue 30 item 3): `/?e=<entry token>&<the platform's ids>` takes
the participant's rater slot (human_eval.participants) and shows that slot's queue with the rater
page; when the queue is done, or when no slot is left, the browser goes back to the platform with
the completed / screened-out code (platforms.Platform.finish_url)."""

from __future__ import annotations

import json

import streamlit as st

from . import participants, rater_page
from .sequential_page import ENDED, ended
from .store import Store
from .study import Study

NO_CODE = "Please return your submission on {label} (this study has no code for it); you will not be penalised."


def finish(study: Study, outcome: str, text: str) -> None:
    """Say why, then send the browser to the platform's completion URL for `outcome`: at once by
    script, with a button for a browser that blocks the script. Without a code for it, ask the
    participant to return the submission instead."""
    platform = study.platform
    url = platform.finish_url(outcome)
    if url is None:
        st.info(f"{text} {NO_CODE.format(label=platform.label)}")
        return
    st.success(f"{text} Taking you back to {platform.label}...")
    st.link_button(f"Back to {platform.label}", url, type="primary")
    target = json.dumps(url).replace("<", "\\u003c")  # a URL checked at creation; never closes the script tag
    st.html(f"<script>window.location.replace({target});</script>", unsafe_allow_javascript=True)


def render(study: Study, store: Store, params) -> None:
    if not participants.entry_ok(store, params.get("e")):
        st.error(f"This link is not valid. Please open the study from {study.platform.label}'s study page.")
        return
    platform = study.platform
    try:
        ids = platform.read_ids(params)
        rater = participants.bind(store, platform, ids, take=False)
        if (rater is None or not store.answered(rater)) and ended(
            study, store
        ):  # a stopped sequential study: no one new
            finish(study, "screened_out", ENDED)
            return
        rater = rater or participants.bind(store, platform, ids)
    except ValueError as e:  # missing / malformed ids, or a participant id recorded with another session
        st.error(str(e))
        return
    if rater is None:
        finish(study, "screened_out", "Every place in this study is taken.")
        return
    rater_page.render(
        study, store, rater, finished=lambda: finish(study, "completed", "You have finished every task. Thank you!")
    )

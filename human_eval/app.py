"""The Streamlit rating app: `imagen-bench rate STUDY` runs `streamlit run` on this file with the
study directory in $HUMAN_EVAL_STUDY.

    /?t=<invite token>       a rater's page (their own tasks and answers only)
    /?admin=<admin token>    the admin page
    /?e=<entry token>&<ids>  a crowd platform's participant (a platform study's only way in: human_eval.crowd_page)
Without a valid token nothing of the study is shown. Errors are shown as one line, never a traceback.
"""

from __future__ import annotations

import logging
import os

import streamlit as st

from human_eval import admin_page, crowd_page, rater_page
from human_eval.store import Store
from human_eval.study import Study, load_study

STUDY_ENV = "HUMAN_EVAL_STUDY"
log = logging.getLogger("human_eval.app")


@st.cache_resource(show_spinner=False)
def _open(path: str) -> tuple[Study, Store]:
    study = load_study(path)
    return study, study.store()


def main() -> None:
    st.set_page_config(page_title="Image rating", layout="wide", initial_sidebar_state="collapsed")
    path = os.environ.get(STUDY_ENV)
    if not path:
        st.error(f"No study configured: start the app with `imagen-bench rate STUDY` (it sets ${STUDY_ENV}).")
        return
    try:
        study, store = _open(path)
        params = st.query_params
        if "admin" in params:
            if store.is_admin(params.get("admin")):
                admin_page.render(study, store)
            else:
                st.error("This admin link is not valid.")
            return
        if study.platform is not None:  # invite links are not a way into a crowd study
            crowd_page.render(study, store, params)
            return
        rater = store.rater_for_token(params.get("t"))
        if rater is None:
            st.error("This link is not valid. Please open the exact invite link you were given.")
            return
        rater_page.render(study, store, rater)
    except (FileNotFoundError, ValueError) as e:
        st.error(str(e))
    except Exception:
        log.exception("rating app error")
        st.error(
            "Something went wrong on the server. Your earlier answers are saved; please reload the page in a minute."
        )


main()

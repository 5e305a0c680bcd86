"""The rating app's surfaces under streamlit.testing.v1.AppTest (the security trial's `app` check):
what a request with a forged / truncated / foreign token, or with another rater's ids in the query
and session state, gets to see and to store. `page(at)` is also what tests/test_human_eval_app.py
uses to read a rendered page."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

DATA_URL = re.compile(r"data:[\w/.+-]+;base64,[A-Za-z0-9+/=]*")  # an image sent inline (human_eval.serving.served_url)
BARE_MODE_LOGGER = "streamlit.runtime.scriptrunner_utils.script_run_context"  # "missing ScriptRunContext" warnings
APP = Path(__file__).resolve().parents[2] / "human_eval" / "app.py"


def walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from walk(child)


def page(at) -> tuple[list[str], list[str]]:
    """(element types in page order, every visible text and image URL) of a rendered AppTest."""
    elements = list(walk(at.main))
    texts = [str(getattr(e, "value", "")) for e in elements] + [getattr(e, "label", "") or "" for e in elements]
    urls = [img.url for e in elements if type(e).__name__ == "Image" for img in e.proto.imgs]
    return [type(e).__name__ for e in elements], texts + urls


@contextlib.contextmanager
def serving(study_root: Path):
    """$HUMAN_EVAL_STUDY set to the study (as `imagen-bench rate` sets it) for the block; Streamlit's
    bare-mode warnings silenced."""
    old = os.environ.get("HUMAN_EVAL_STUDY")
    os.environ["HUMAN_EVAL_STUDY"] = str(study_root)
    import streamlit.testing.v1  # noqa: F401  (creates streamlit's loggers)

    names = {n for n in logging.root.manager.loggerDict if n.startswith("streamlit")} | {BARE_MODE_LOGGER}
    quiet = [logging.getLogger(n) for n in sorted(names)]
    was = [q.disabled for q in quiet]
    for q in quiet:
        q.disabled = True
    try:
        yield
    finally:
        for q, disabled in zip(quiet, was):
            q.disabled = disabled
        if old is None:
            os.environ.pop("HUMAN_EVAL_STUDY", None)
        else:
            os.environ["HUMAN_EVAL_STUDY"] = old


def open_app(state: dict | None = None, **params):
    """A first run of the app (inside `serving`) with these query parameters and session state."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    for k, v in (state or {}).items():
        at.session_state[k] = v
    return at.run()


def shows_nothing(at) -> list[str]:
    """Problems if the page shows anything of the study (it must show one 'not valid' error only)."""
    types, _ = page(at)
    problems = []
    if not (len(at.error) == 1 and "not valid" in at.error[0].value):
        problems.append(f"errors shown: {[e.value for e in at.error]}")
    if "Image" in types or at.radio or at.get("download_button") or at.get("arrow_data_frame") or at.exception:
        problems.append(f"study content shown: {sorted(set(types))}")
    return problems


def check_app(s, study_root: Path, details: dict) -> list[str]:
    with serving(study_root):
        return _check_app(study_root, details)


def _check_app(study_root: Path, details: dict) -> list[str]:
    from human_eval.study import load_study, read_secrets

    keys = read_secrets(study_root)
    r01, admin = keys["raters"]["r01"], keys["admin"]
    refused = {
        "no token": {},
        "forged rater token": {"t": "forged-" + r01[7:]},
        "truncated rater token": {"t": r01[:-1]},
        "padded rater token": {"t": r01 + "A"},
        "traversal as token": {"t": "../../secrets.json"},
        "admin token as rater": {"t": admin},
        "forged admin token": {"admin": "forged-" + admin[7:]},
        "truncated admin token": {"admin": admin[:-1]},
        "rater token as admin": {"admin": r01},
        "rater token as admin, own token too": {"admin": r01, "t": r01},
    }
    problems = []
    for name, params in refused.items():
        problems += [f"{name}: {p}" for p in shows_nothing(open_app(**params))]
    # a rater's own token with another rater's ids in the query and session state
    study = load_study(study_root)
    store = study.store()
    own, other = store.tasks("r01"), store.tasks("r02")
    before_other = store.answered("r02")
    at = open_app(
        state={"rater": "r02", "task_id": other[0].task_id},
        t=r01,
        rater="r02",
        task=other[0].task_id,
        task_id=other[0].task_id,
    )
    types, texts = page(at)
    # the images' data: URLs left out wherever they sit (an image element's value is a list of them): their
    # base64, random padding included, holds any 3 characters by chance (one render in ~100 held "r02")
    shown = {DATA_URL.sub("", t) for t in texts}
    if at.exception or at.error:
        problems.append(f"own token with foreign ids: error {[e.value for e in at.error]}")
    if other[0].caption != own[0].caption and any(other[0].caption in t for t in shown):
        problems.append("another rater's task caption was shown")
    if any(not t.startswith("/media") and "r02" in t for t in shown):
        problems.append("another rater's id appears on the page")
    if at.radio:
        for radio in at.radio:
            radio.set_value(radio.options[0])
        next(b for b in at.button if b.label == "Submit").click()
        at.run()
        mine = store.answered("r01")
        if own[0].task_id not in mine or store.answered("r02") != before_other:
            problems.append("an answer given with foreign ids in the query was not stored as the rater's own task")
    else:
        problems.append("the rater's own page did not show a question")
    # the real admin page works (so the refusals above are not a broken app)
    at = open_app(admin=admin)
    if at.exception or at.error or not at.get("download_button"):
        problems.append("the admin page with the admin token did not render")
    store.close()
    details.update(refused=sorted(refused), foreign_ids_ignored=True)
    return problems

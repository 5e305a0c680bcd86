"""The rater's page: one task at a time from the rater's own queue, a progress bar for the batch,
a break between batches, resume where they stopped. Controls are rendered by the same code as
ordinary tasks; widget keys use batch/position only (never task ids or control flags)."""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import streamlit as st

from .protocols import Protocol, get_protocol
from .ranking_deal import batch_for
from .sequential_page import ENDED, ended
from .serving import served_url
from .store import Store, SubmitResult, Task
from .study import Study


def literal(label: str, text: str = "") -> str:
    """HTML that shows `text` exactly as written: escaped, never parsed as Markdown, where `--` would
    become a dash, `:smile:` an emoji, `&lt;b&gt;` a tag and a URL a link (Markdown escaping does not
    stop those). Raters must read the prompt as written."""
    bold = f"<b>{html.escape(label)}</b> " if label else ""
    return f'<p style="white-space: pre-wrap; margin: 0.25em 0">{bold}{html.escape(text)}</p>'


MISSING_IMAGE = "This image cannot be shown right now. Please tell the study's organiser."


def _image(where, study: Study, iid: str) -> None:
    """One image as a data: URL with fresh padding (human_eval.serving: never Streamlit's
    content-hashed /media/ URL), or a neutral line when its file is gone: a rater never sees a
    server path."""
    try:
        path = study.image_path(iid)
        url = served_url(path.read_bytes(), study.served_bytes, path.suffix)
    except (OSError, ValueError):
        where.info(MISSING_IMAGE)
        return
    where.image(url, width="stretch")


def _images(study: Study, image_ids: tuple[str, ...]) -> None:
    if len(image_ids) == 1:
        _image(st, study, image_ids[0])
        return
    cols = st.columns(2)
    for i, iid in enumerate(image_ids):
        _image(cols[i % 2], study, iid)


def _show_task(study: Study, protocol: Protocol, task: Task) -> None:
    if protocol.layout == "pair":
        if protocol.name == "drawbench_sbs":
            st.html(literal("Text caption:", task.caption))
        left, right = st.columns(2, gap="large", border=True)
        for col, label, ids in ((left, "A", task.left), (right, "B", task.right)):
            with col:
                st.subheader(f"{protocol.side_label} {label}")
                _images(study, ids)
    else:
        _, mid, _ = st.columns([1, 2, 1])
        with mid:
            _images(study, task.images_a)
            st.html(literal("Caption:", task.caption))


def _form(protocol: Protocol, task: Task) -> dict[str, str] | None:
    """The rater's choices as option values once they submit with every question answered."""
    slot = f"{task.batch}-{task.position}"
    with st.form(key=f"form-{slot}"):
        chosen = {}
        for q in protocol.questions:
            question = q.text.format(caption=task.caption.rstrip(". "))
            st.html(literal("", question))  # shown literally; the radio keeps the text as its (hidden) label
            chosen[q.key] = st.radio(
                question,
                [o.label for o in q.options],
                index=None,
                horizontal=True,
                key=f"{q.key}-{slot}",
                label_visibility="collapsed",
            )
        submitted = st.form_submit_button("Submit", type="primary")
    if not submitted:
        return None
    if any(v is None for v in chosen.values()):
        st.warning("Please answer every question before submitting.")
        return None
    return {k: protocol.question(k).option_for(v).value for k, v in chosen.items()}


KEPT_NOTICE = "This task had already been answered (perhaps in another tab); your first answer was kept."


def task_to_show(tasks: list[Task], done: set[str], showing: str | None) -> Task | None:
    """The task this session shows: the one it showed last until this session submits it, even when
    another tab has answered it meanwhile (else that submit would meet a different form and vanish
    without the notice; the store keeps the first answer and says so), otherwise the first
    unanswered task; None when every task is answered."""
    shown = next((t for t in tasks if t.task_id == showing), None)
    return shown or next((t for t in tasks if t.task_id not in done), None)


def submit_notice(result: SubmitResult) -> str | None:
    """What the page tells the rater after a submit: the documented notice when the first answer stood."""
    return KEPT_NOTICE if result.kept else None


def render(study: Study, store: Store, rater: str, finished: Callable[[], None] | None = None) -> None:
    """`finished`: what ends a finished queue instead of the thank-you line (a crowd platform's redirect)."""
    protocol = get_protocol(study.protocol)
    tasks = batch_for(study, store, rater)  # a sequential ranking study deals the batch now
    answered = store.answered(rater)
    n_q = len(protocol.questions)
    done = {tid for tid, a in answered.items() if len(a) == n_q}
    task = task_to_show(tasks, done, st.session_state.get("showing"))
    st.title(protocol.title)
    if not answered and ended(study, store):  # a sequential study that has stopped takes no new raters
        st.info(ENDED)
        return
    if task is None:
        st.progress(1.0, text=f"All {len(tasks)} tasks done")
        if finished is not None:
            finished()
            return
        st.success("You have finished every task. Thank you! You can close this page.")
        return
    batch = [t for t in tasks if t.batch == task.batch]
    n_done = sum(t.task_id in done for t in batch)
    n_batches = tasks[-1].batch
    st.progress(n_done / len(batch), text=f"Batch {task.batch} of {n_batches}: {n_done} of {len(batch)} done")
    started = st.session_state.setdefault("started_batches", set())
    if n_done == 0 and task.batch > 1 and task.batch not in started:
        st.success(f"Batch {task.batch - 1} is complete. Take a break if you like; your answers are saved.")
        if st.button(f"Start batch {task.batch}", type="primary"):
            started.add(task.batch)
            st.rerun()
        return
    if st.session_state.get("notice"):
        st.info(st.session_state.pop("notice"))
    shown_at = st.session_state.setdefault("shown_at", {})
    shown_at.setdefault(task.task_id, time.monotonic())
    st.session_state["showing"] = task.task_id
    _show_task(study, protocol, task)
    choice = _form(protocol, task)
    if choice is not None:
        ms = int(round((time.monotonic() - shown_at[task.task_id]) * 1000))
        result = store.submit(rater, task.task_id, choice, ms)
        st.session_state.pop("showing")
        notice = submit_notice(result)  # answered already (another tab or a double click): the first answer stands
        if notice:
            st.session_state["notice"] = notice
        st.rerun()

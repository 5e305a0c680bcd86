"""The admin page (behind the admin secret): progress per rater, control accuracy and flags,
answer downloads (CSV / parquet in the export contract's columns)."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from common.tables import to_csv

from .contract import control_accuracy
from .export import answers_frame
from .payments import participant_table
from .sequential_page import render as render_sequence
from .sequential_page import study_state
from .store import Store
from .study import Study


def rater_table(study: Study, store: Store, frame: pd.DataFrame) -> pd.DataFrame:
    progress = pd.DataFrame(store.progress(), columns=["rater", "tasks", "done"])
    acc = control_accuracy(frame, study.control_threshold, study.fast_answer_ms).drop(columns=["study", "threshold"])
    table = progress.merge(acc, on="rater", how="left").fillna({"n_control": 0, "n_correct": 0, "flagged": False})
    table["progress"] = table["done"] / table["tasks"].where(table["tasks"] > 0)
    table = table.fillna({"n_fast": 0})
    return table[
        ["rater", "tasks", "done", "progress", "n_control", "n_correct", "accuracy", "flagged", "n_fast"]
    ].astype({"n_control": "int64", "n_correct": "int64", "flagged": bool, "n_fast": "int64"})


def category_table(store: Store) -> pd.DataFrame:
    """Ordinary tasks per prompt category: how many, how many answered, by how many raters."""
    table = pd.DataFrame(store.category_progress(), columns=["category", "tasks", "done", "raters"])
    table["progress"] = table["done"] / table["tasks"].where(table["tasks"] > 0)
    return table


def render(study: Study, store: Store) -> None:
    st.title(f"Study {study.name}: admin")
    if study.served_bytes is None:
        st.warning(
            "This study was made before every image was encoded and served the same way: a script could tell its "
            "check questions apart by their files. Recreate it before a crowd rates it."
        )
    frame = answers_frame(study.root)
    table = rater_table(study, store, frame)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("answers", len(frame))
    c2.metric("tasks done", f"{int(table['done'].sum())} / {int(table['tasks'].sum())}")
    c3.metric(
        f"raters flagged (under {study.control_threshold:.0%} of check questions right)", int(table["flagged"].sum())
    )
    c4.metric(f"answers faster than {study.fast_answer_ms:.0f} ms", int(table["n_fast"].sum()))
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "n_control": st.column_config.NumberColumn("check questions answered"),
            "n_correct": st.column_config.NumberColumn("check questions right"),
            "accuracy": st.column_config.NumberColumn("share right", format="percent"),
            "n_fast": st.column_config.NumberColumn(f"answers under {study.fast_answer_ms:.0f} ms"),
        },
    )
    sequential = study_state(study, store, frame)  # None unless the study was made with --design sequential
    if sequential is not None:
        render_sequence(sequential)
    if study.platform is not None:  # a crowd study: who took which slot, what was exported as paid
        st.subheader(f"Participants from {study.platform.label}")
        st.dataframe(participant_table(study, store), hide_index=True)
    by_category = category_table(store)
    if len(by_category) > 1:
        st.subheader("Progress per category")
        st.dataframe(
            by_category,
            hide_index=True,
            column_config={
                "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")
            },
        )
    st.caption(
        f"A rater is flagged when fewer than {study.control_threshold:.0%} of their check questions (tasks with a "
        "known right answer, mixed in among the others) were answered right; the report leaves out all answers of "
        "flagged raters. Answers are final once given: a rater's first answer to a task is the one kept."
    )
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    d1, d2 = st.columns(2)
    d1.download_button("Download answers (CSV)", to_csv(frame), file_name=f"{study.name}-answers.csv", mime="text/csv")
    d2.download_button(
        "Download answers (parquet)",
        parquet.getvalue(),
        file_name=f"{study.name}-answers.parquet",
        mime="application/octet-stream",
    )

"""Telling rating studies apart when a report reads several (issue 30): a study given twice is
counted once, two studies named alike are never pooled, and models are named by study and source.

New studies are keyed name@id (a random id made at creation: human_eval.study.study_key), so two
studies named alike have different keys; a study made before ids is keyed by its name alone."""

from __future__ import annotations

import pandas as pd

from human_eval.contract import check_answers

ANSWER_KEY = ["study", "rater", "task_id", "question"]  # one answer (first answer wins: unique in the database)


def combine_answers(
    inputs: list[tuple[str, pd.DataFrame]], settings: dict[str, dict]
) -> tuple[pd.DataFrame, dict[tuple[str, str], str]]:
    """One ratings frame from every input, and (study, model) -> the model's label in the report.

    - A study given twice (S, S/, X/../S, or its folder and its export) is counted once: answers are
      unique per (study, rater, task, question), so repeats are dropped.
    - Two inputs holding one study key with no task in common are two different studies named
      alike (made before study ids): refused, never pooled.
    - A model is its source (the image source a study recorded for it), not its name: one name with
      two sources in two studies (two folders called sd-v1-4) is two models, each named by study
      and source ("sd-v1-4 (S@id: folder:/x/sd-v1-4)"); so is one name whose source a study did not
      record (a ratings file without its export's meta.json). One source in several studies is one
      model under its own name (their answers pool, their raters stay apart)."""
    frames = [check_answers(df, src) for src, df in inputs]
    seen: dict[str, tuple[str, set]] = {}
    for (src, _), df in zip(inputs, frames):
        for study, group in df.groupby("study"):
            tasks = set(group["task_id"])
            if study in seen and not tasks & seen[study][1]:
                raise ValueError(
                    f"{seen[study][0]} and {src} both hold a study {study!r} but no task in common: two studies "
                    "with one name (made before study ids); report them separately"
                )
            seen.setdefault(str(study), (src, set()))[1].update(tasks)
    frame = pd.concat(frames, ignore_index=True).drop_duplicates(ANSWER_KEY).reset_index(drop=True)
    labels: dict[tuple[str, str], str] = {}
    where: dict[str, dict[str, str | None]] = {}  # model name -> study -> its source (None: not recorded)
    for study, group in frame.groupby("study"):
        sources = {
            m["model"]: m["source"] for m in settings.get(str(study), {}).get("study", {}).get("models", {}).values()
        }
        for model in set(group["model_a"]) | set(group["model_b"]):
            if model and not str(model).startswith("control:"):
                where.setdefault(model, {})[str(study)] = sources.get(model)
    for model, studies in where.items():
        found = set(studies.values())
        if len(studies) > 1 and (
            len(found) > 1 or None in found
        ):  # one name, two sources (or unknown ones): two models
            labels.update(
                {
                    (study, model): f"{model} ({study}: {src})" if src else f"{model} ({study})"
                    for study, src in studies.items()
                }
            )
    if labels:
        for col in ("model_a", "model_b"):
            frame[col] = [labels.get((st, m), m) for st, m in zip(frame["study"], frame[col])]
    return frame, labels

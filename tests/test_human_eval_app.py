"""The Streamlit app under streamlit.testing.v1.AppTest: every protocol's flow, controls that
look like ordinary tasks, resume, the admin page, and refusal of bad tokens."""

from __future__ import annotations

import re

import pytest
from human_eval_fixtures import APP, coco_study, sbs_study, tokens
from streamlit.testing.v1 import AppTest

from common.folder_manifest import write_manifest
from human_eval.export import answers_frame
from selfcheck.trials.security_app import page as _page  # one page reader for the tests and the security trial
from selfcheck.trials.security_app import shows_nothing


def _app(monkeypatch, study, **params) -> AppTest:
    monkeypatch.setenv("HUMAN_EVAL_STUDY", str(study.root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _answer(at: AppTest, labels: list[str]) -> AppTest:
    assert len(at.radio) == len(labels)
    for radio, label in zip(at.radio, labels):
        radio.set_value(label)
    next(b for b in at.button if b.label == "Submit").click()
    return at.run()


def test_sbs_flow_controls_and_resume(tmp_path, monkeypatch):
    study = sbs_study(tmp_path / "s", raters=2, batch_size=6, control_share=0.2)
    store = study.store()
    tasks = store.tasks("r01")
    batch1 = [t for t in tasks if t.batch == 1]
    at = _app(monkeypatch, study, t=tokens(study)["raters"]["r01"])
    assert not at.exception and not at.error
    assert [r.label for r in at.radio][0] == "Which set of images is of higher quality?"
    assert at.radio[1].label.startswith("Which set of images better represents the text caption: ")
    assert [o for o in at.radio[0].options] == ["I prefer set A", "I am indifferent", "I prefer set B"]
    layouts = {}
    for i, task in enumerate(batch1):
        types, texts = _page(at)
        assert at.get("progress")[0].proto.text == f"Batch 1 of {tasks[-1].batch}: {i} of {len(batch1)} done"
        assert sum(t == "Image" for t in types) == 2  # one SD image per set
        joined = "\n".join(texts)
        assert task.task_id not in joined and "control" not in joined.lower()
        assert not any("/media/" in u for u in texts)  # images are data: URLs with fresh padding (human_eval.serving)
        layouts.setdefault(task.is_control, set()).add(tuple(types))
        at = _answer(at, ["I prefer set A", "I prefer set B"])
        assert not at.exception
    assert layouts[True] == layouts[False]  # controls are rendered exactly like ordinary tasks
    df = answers_frame(study.root)
    assert len(df[df.rater == "r01"].drop_duplicates(["task_id"])) == len(batch1)
    for t in batch1:
        got = df[(df.task_id == t.task_id)].set_index("question")["answer"].to_dict()
        exp = {"quality": "A" if t.a_on_left else "B", "alignment": "B" if t.a_on_left else "A"}
        assert got == {k: v for k, v in exp.items() if not t.is_control or k in dict(t.expected)}
    assert any(b.label == "Start batch 2" for b in at.button)  # break between batches
    # a new session (refresh / next day) resumes: batch 1 is not shown again
    at2 = _app(monkeypatch, study, t=tokens(study)["raters"]["r01"])
    assert any(b.label == "Start batch 2" for b in at2.button)
    next(b for b in at2.button if b.label == "Start batch 2").click()
    at2.run()
    assert at2.get("progress")[0].proto.text.startswith("Batch 2 of ") and len(at2.radio) == 2
    # the other rater has their own untouched queue
    at3 = _app(monkeypatch, study, t=tokens(study)["raters"]["r02"])
    first = sum(t.batch == 1 for t in store.tasks("r02"))
    assert at3.get("progress")[0].proto.text.startswith("Batch 1 of ") and at3.get("progress")[0].proto.text.endswith(
        f": 0 of {first} done"
    )


def test_unanswered_question_is_not_submitted(tmp_path, monkeypatch):
    study = sbs_study(tmp_path / "s", raters=1, batch_size=6, control_share=0.2)
    at = _app(monkeypatch, study, t=tokens(study)["raters"]["r01"])
    at.radio[0].set_value("I prefer set A")
    next(b for b in at.button if b.label == "Submit").click()
    at.run()
    assert [w.value for w in at.warning] == ["Please answer every question before submitting."]
    assert answers_frame(study.root).empty


@pytest.mark.parametrize(
    "protocol, question, options, pick, n_images",
    [
        (
            "coco_realism",
            "Which image is more photorealistic (looks more real)?",
            ["Image A", "Image B"],
            "Image A",
            2,
        ),
        (
            "coco_alignment",
            "Does the caption accurately describe the above image?",
            ["Yes", "Somewhat", "No"],
            "Somewhat",
            1,
        ),
    ],
)
def test_coco_flows(tmp_path, monkeypatch, protocol, question, options, pick, n_images):
    study = coco_study(tmp_path, protocol, batch_size=4, control_share=0.25)
    tasks = study.store().tasks("r01")
    at = _app(monkeypatch, study, t=tokens(study)["raters"]["r01"])
    for _ in tasks:
        types, _texts = _page(at)
        assert [r.label for r in at.radio] == [question] and at.radio[0].options == options
        assert sum(t == "Image" for t in types) == n_images
        at = _answer(at, [pick])
        if any(b.label.startswith("Start batch") for b in at.button):
            next(b for b in at.button if b.label.startswith("Start batch")).click()
            at.run()
    assert "finished every task" in at.success[0].value
    df = answers_frame(study.root)
    assert len(df) == len(tasks) and df.is_control.sum() == sum(t.is_control for t in tasks) > 0
    ordinary = df[~df.is_control]
    if protocol == "coco_alignment":
        assert set(ordinary.answer) == {"somewhat"} and set(ordinary.model_b) == {""}
    else:
        exp = {t.task_id: ("A" if t.a_on_left else "B") for t in tasks}
        assert all(exp[tid] == a for tid, a in zip(ordinary.task_id, ordinary.answer))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"t": "forged-token-forged-token-forged"},
        {"t": "../../secrets.json"},
        {"admin": "not-the-admin-secret-at-all"},
        {"admin": "RATER"},
    ],
)
def test_bad_tokens_show_nothing(tmp_path_factory, monkeypatch, params):
    study = sbs_study(tmp_path_factory.mktemp("tok") / "s", raters=1, batch_size=6, control_share=0.2)
    if params.get("admin") == "RATER":
        params = {"admin": tokens(study)["raters"]["r01"]}  # a rater's token is not an admin token
    at = _app(monkeypatch, study, **params)
    assert shows_nothing(at) == []  # the security trial's criterion (selfcheck/trials/security_app.py)


def test_admin_page(tmp_path, monkeypatch):
    study = sbs_study(tmp_path / "s", raters=2, batch_size=6, control_share=0.2)
    store = study.store()
    for t in store.tasks("r02")[:6]:
        store.submit("r02", t.task_id, {"quality": "left", "alignment": "left"}, 700)
    at = _app(monkeypatch, study, admin=tokens(study)["admin"])
    assert not at.exception and not at.error
    table = at.dataframe[0].value.set_index("rater")
    assert table.loc["r02", "done"] == 6 and table.loc["r01", "done"] == 0
    assert [d.label for d in at.get("download_button")] == ["Download answers (CSV)", "Download answers (parquet)"]
    words = " ".join([at.title[0].value, *(c.value for c in at.caption), *(m.label for m in at.metric)])
    assert "check questions" in words and not re.search(r"\w+\.\w+\.\w+|_answers|\(\)", words), (
        words
    )  # no internal names


def test_captions_are_shown_exactly_as_written(tmp_path, monkeypatch):
    """'--', '->', ':smile:', '&lt;b&gt;', a URL and backslashes reach the rater literally: as escaped
    HTML text, never through Markdown (which turns them into a dash, an arrow, an emoji, a tag, a link)."""
    import html as _html

    import pandas as pd

    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study
    from selfcheck.trials.study_sources import synthetic_sources

    captions, model, _ = synthetic_sources(tmp_path / "src", n=4)
    weird = r"a cat -- on a mat -> :smile: &lt;b&gt;bold&lt;/b&gt; https://example.com/x_y \*not\* $5"
    df = pd.read_csv(captions)
    df["prompt"] = weird
    df.to_csv(captions, index=False)
    write_manifest(
        model, "captions", {str(i): weird for i in df["id"]}, force=True
    )  # the images answer the new captions
    study = create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=1, batch_size=4),
        ),
    )
    at = _app(monkeypatch, study, t=tokens(study)["raters"]["r01"])
    assert not at.exception and not at.error
    shown = [str(e.proto.body) for e in at.get("html")]
    assert any(_html.escape(weird) in body for body in shown), shown
    assert not any(weird in str(m.value) for m in at.markdown)  # nothing of it went through Markdown


def test_a_missing_image_shows_a_neutral_line_not_a_path(tmp_path, monkeypatch):
    study = coco_study(tmp_path, "coco_alignment")
    for f in (study.root / "images").iterdir():
        f.unlink()
    at = _app(monkeypatch, study, t=tokens(study)["raters"]["r01"])
    assert not at.exception
    texts = [str(e.value) for e in at.info] + [str(e.value) for e in at.error]
    assert any("cannot be shown" in t for t in texts) and not any(str(study.root) in t for t in texts)

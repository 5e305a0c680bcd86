"""A study's identity cannot collide (issue 30): a random id made at creation keys its ratings
(name@id, in study.json and the database); a report keeps two studies named alike apart, counts a
study given twice once, and names models by study and source."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pandas as pd
import pytest
from human_eval_fixtures import sd_folders

from human_eval.contract import apply_controls, control_accuracy
from human_eval.plan import PlanSettings
from human_eval.study import StudySettings, create_study, load_study
from imagen_bench.cli import main as cli
from reports.answers import load_answers
from reports.studies import combine_answers


def _study(out, a, seed=0):
    b = sd_folders()[1]
    return create_study(
        out,
        StudySettings(
            protocol="drawbench_sbs",
            a=f"folder:{a}",
            b=f"folder:{b}",
            prompts="drawbench:Colors",
            images_per_set=1,
            name="same",
            plan=PlanSettings(raters=1, batch_size=10, seed=seed),
        ),
    )


def _answer(study, controls_right: bool) -> None:
    store = study.store()
    for t in store.tasks("r01"):
        right, wrong = ("left", "right") if t.a_on_left else ("right", "left")
        pick = right if (controls_right or not t.is_control) else wrong
        store.submit("r01", t.task_id, {"quality": pick, "alignment": pick}, 2000)
    store.close()


@pytest.fixture(scope="module")
def namesakes(tmp_path_factory):
    root = tmp_path_factory.mktemp("ids")
    copy = root / "elsewhere" / "sd-v1-4"  # another folder with the same name: another model
    shutil.copytree(sd_folders()[0], copy)
    good, bad = _study(root / "one", sd_folders()[0]), _study(root / "two", copy, seed=1)
    _answer(good, True)
    _answer(bad, False)
    return root, good, bad


def test_the_id_is_made_at_creation_and_recorded_in_study_json_and_the_database(namesakes):
    _, good, bad = namesakes
    assert good.name == bad.name == "same" and good.id != bad.id and len(good.id) == 16
    assert good.key == f"same@{good.id}"
    assert json.loads((good.root / "study.json").read_text())["id"] == good.id
    con = sqlite3.connect(good.db_url)
    ((key, settings),) = con.execute("SELECT study, settings FROM studies").fetchall()
    assert {r[0] for r in con.execute("SELECT DISTINCT study FROM answers")} == {key} == {good.key}
    con.close()
    assert json.loads(settings)["study"] == {
        "name": "same",
        "id": good.id,
        "models": {
            "a": {"source": f"folder:{sd_folders()[0]}", "model": "sd-v1-4"},
            "b": {"source": f"folder:{sd_folders()[1]}", "model": "sd-v1-5"},
        },
    }


def test_two_studies_named_alike_are_kept_apart(namesakes):
    """The issue's case: a perfect rater was excluded with a failing namesake; now each is judged alone."""
    _, good, bad = namesakes
    inputs = [(str(s.root), load_answers(s.root)) for s in (good, bad)]
    frame, labels = combine_answers(
        [(src, df) for src, (df, _) in inputs], {k: v for _, (_, st) in inputs for k, v in st.items()}
    )
    acc = control_accuracy(frame, 0.8).set_index("study")
    assert acc.loc[good.key, "accuracy"] == 1.0 and not acc.loc[good.key, "flagged"]
    assert acc.loc[bad.key, "accuracy"] == 0.0 and acc.loc[bad.key, "flagged"]
    kept, _ = apply_controls(frame, 0.8)
    rated = json.loads((good.root / "study.json").read_text())["prompts"]["n"]
    assert (
        set(kept["study"]) == {good.key} and len(kept) == 2 * rated
    )  # the good rater's ordinary answers, both questions
    # two folders called sd-v1-4 are two models, named by study and source; sd-v1-5 (one folder) stays one
    a = f"sd-v1-4 ({good.key}: folder:{sd_folders()[0]})"
    assert labels[(good.key, "sd-v1-4")] == a and set(
        frame.loc[(frame.study == good.key) & ~frame.is_control, "model_a"]
    ) == {a}
    assert labels[(bad.key, "sd-v1-4")] == f"sd-v1-4 ({bad.key}: folder:{namesakes[0] / 'elsewhere' / 'sd-v1-4'})"
    assert "sd-v1-4" not in set(frame["model_a"]) | set(frame["model_b"]) and (bad.key, "sd-v1-5") not in labels
    assert set(frame.loc[~frame.is_control, "model_b"]) == {"sd-v1-5"}


def test_a_study_given_twice_is_counted_once(namesakes, tmp_path):
    root, good, _ = namesakes
    (root / "x").mkdir(exist_ok=True)
    spellings = [str(good.root), f"{good.root}/", str(root / "x" / ".." / "one")]
    single, settings = load_answers(good.root)
    export = tmp_path / "one.parquet"
    assert cli(["study", "export", str(good.root), "--out", str(export)]) == 0
    frames = [(s, load_answers(s)[0]) for s in [*spellings, str(export)]]
    frame, labels = combine_answers(frames, settings)
    assert len(frame) == len(single) and labels == {}  # one study: its models keep their own names
    out = tmp_path / "report"
    assert cli(["report", *spellings, "--out", str(out), "--resamples", "100", "--power-studies", "10"]) == 0
    acc = pd.read_csv(out / "tables" / "rater_control_accuracy.csv")
    assert len(acc) == 1 and acc.n_control.item() == control_accuracy(single, 0.8).n_control.item()


def test_namesakes_without_ids_are_refused_not_pooled(namesakes):
    _, good, bad = namesakes
    old = [
        (str(s.root), load_answers(s.root)[0].assign(study="same")) for s in (good, bad)
    ]  # keyed by name, as before ids
    with pytest.raises(ValueError, match="both hold a study 'same' but no task in common"):
        combine_answers(old, {})


def test_a_malformed_id_is_refused(namesakes, tmp_path):
    _, good, _ = namesakes
    meta = json.loads((good.root / "study.json").read_text())
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "ratings.sqlite").write_bytes((good.root / "ratings.sqlite").read_bytes())
    (copy / "study.json").write_text(json.dumps({**meta, "id": "../x"}))
    with pytest.raises(ValueError, match="'id' must be 16 hex digits"):
        load_study(copy)

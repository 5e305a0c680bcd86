"""Studies, plan, storage and export without a browser: controls in every batch, sides randomised
and de-randomised, first answer wins, refusals that change nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from human_eval_fixtures import coco_study, sbs_study, tokens
from PIL import Image

from human_eval.contract import apply_controls, control_accuracy
from human_eval.controls import degrade
from human_eval.export import answers_frame, write_answers
from human_eval.store import AccessDenied
from human_eval.study import load_study
from human_eval.tokens import hash_token, match_token, new_token
from imagen_bench.cli import main as cli


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return sbs_study(tmp_path_factory.mktemp("he") / "sbs", raters=3, batch_size=10, control_share=0.2)


def _db_snapshot(study) -> tuple:
    con = sqlite3.connect(study.db_url)
    try:
        return tuple(
            con.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall() for t in ("raters", "tasks", "answers")
        )
    finally:
        con.close()


def test_study_dir_records_what_made_it(study):
    meta = json.loads((study.root / "study.json").read_text())
    assert meta["package_version"] == "0.1.0" and meta["protocol"] == "drawbench_sbs"
    assert meta["settings"]["plan"] == {
        "raters": 3,
        "batch_size": 10,
        "control_share": 0.2,
        "seed": 0,
        "design": "per_category",
        "raters_per_category": 3,
        "sequential": None,
    }
    assert meta["wording"]["alignment"]["text"] == "Which set of images better represents the text caption: {caption}?"
    assert meta["models"]["a"]["model"] == "sd-v1-4" and meta["models"]["b"]["model"] == "sd-v1-5"
    assert (
        meta["prompts"]["n"] == 20 and len(meta["prompts"]["control"]) == 5
    )  # DrawBench Colors: 25 prompts, 20 % set aside for controls
    assert not set(meta["prompts"]["rated"]) & set(meta["prompts"]["control"])
    for _iid, info in meta["images"].items():
        path = study.root / "images" / info["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    assert (study.root / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert (study.root / "ratings.sqlite").stat().st_mode & 0o777 == 0o600  # ratings + token hashes
    assert sqlite3.connect(study.db_url).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_plan_batches_controls_and_sides(study):
    store = study.store()
    seen = {}
    for rater in ("r01", "r02", "r03"):
        tasks = store.tasks(rater)
        ordinary = [t for t in tasks if not t.is_control]
        assert sorted(t.prompt_id for t in ordinary) == sorted({t.prompt_id for t in ordinary})  # each prompt once
        # 5 of Colors' 25 prompts are the control pool: 3 fidelity controls (one prompt each) and one
        # alignment control (its prompt and a donor's images)
        assert len(ordinary) == 20 and len(tasks) == 24
        assert Counter(t.control_kind for t in tasks if t.is_control) == {"fidelity": 3, "alignment": 1}
        sizes = Counter(t.batch for t in tasks)
        assert sorted(sizes.values()) == [8, 8, 8]  # 24 tasks in ceil(24 / 10) batches of near-equal size
        for b in sizes:
            assert sum(t.is_control for t in tasks if t.batch == b) in (1, 2)  # the 4 controls spread over the batches
        # no caption and no image twice in a rater's queue: a control repeats nothing the rater sees elsewhere
        assert len({t.caption for t in tasks}) == len(tasks)
        images = [i for t in tasks for i in (*t.images_a, *t.images_b)]
        assert len(images) == len(set(images))
        controls = [t for t in tasks if t.is_control]
        for c in controls:
            assert c.model_b in ("control:degraded", "control:unrelated") and dict(c.expected)
            assert {c.model_a} <= {"sd-v1-4", "sd-v1-5"}
            if c.control_kind == "alignment":  # the other set shows an unrelated prompt's images
                assert dict(c.expected) == {"alignment": "A"} and set(c.images_b).isdisjoint(c.images_a)
            else:
                assert dict(c.expected) == {"quality": "A", "alignment": "A"}
        # every rater gets the very same control tasks (raters comparing notes find nothing that differs)
        seen[rater] = {(c.caption, frozenset((c.images_a, c.images_b))) for c in controls}
    assert seen["r01"] == seen["r02"] == seen["r03"]
    sides = [t.a_on_left for r in ("r01", "r02", "r03") for t in store.tasks(r)]
    assert 0.3 < sum(sides) / len(sides) < 0.7
    assert {t.control_kind for r in ("r01", "r02", "r03") for t in store.tasks(r) if t.is_control} == {
        "alignment",
        "fidelity",
    }


def test_same_seed_same_plan(tmp_path, study):
    again = sbs_study(tmp_path / "again", raters=3, batch_size=10, control_share=0.2)
    key = lambda t: (t.rater, t.batch, t.position, t.prompt_id, t.model_a, t.model_b, t.a_on_left, t.control_kind)  # noqa: E731
    for r in ("r01", "r02"):
        assert [key(t) for t in again.store().tasks(r)] == [key(t) for t in study.store().tasks(r)]
        assert {t.task_id for t in again.store().tasks(r)}.isdisjoint(t.task_id for t in study.store().tasks(r))


def test_first_answer_wins_and_derandomises(tmp_path):
    study = sbs_study(tmp_path / "s", raters=2, batch_size=10, control_share=0.2)
    store = study.store()
    t = next(t for t in store.tasks("r01") if not t.is_control)
    first = store.submit("r01", t.task_id, {"quality": "left", "alignment": "tie"}, 1200)
    assert first.stored == ("alignment", "quality") and first.kept == ()
    again = store.submit("r01", t.task_id, {"quality": "right", "alignment": "right"}, 50)
    assert again.stored == () and again.kept == ("alignment", "quality")
    df = answers_frame(study.root)
    assert len(df) == 2 and set(df["rater"]) == {"r01"}
    row = df.set_index("question").loc["quality"]
    assert row["answer"] == ("A" if t.a_on_left else "B") and row["response_ms"] == 1200
    assert df.set_index("question").loc["alignment", "answer"] == "tie"
    assert (row["model_a"], row["model_b"], row["prompt_id"], row["category"]) == (
        "sd-v1-4",
        "sd-v1-5",
        t.prompt_id,
        "Colors",
    )
    assert list(df.columns) == [
        "study",
        "protocol",
        "task_id",
        "rater",
        "question",
        "answer",
        "model_a",
        "model_b",
        "prompt_id",
        "category",
        "is_control",
        "control_correct",
        "response_ms",
        "answered_at",
    ]


def test_control_accuracy_flags_and_excludes(tmp_path):
    study = sbs_study(tmp_path / "s", raters=2, batch_size=10, control_share=0.2)
    store = study.store()
    for rater, good in (("r01", True), ("r02", False)):
        for t in store.tasks(rater):
            right = "left" if t.a_on_left else "right"
            wrong = "right" if t.a_on_left else "left"
            pick = right if (good or not t.is_control) else wrong
            store.submit(rater, t.task_id, {"quality": pick, "alignment": pick}, 900)
    df = answers_frame(study.root)
    controls = df[df.is_control]
    # every control row is scored (contract 2); the quality answer of an alignment control has no
    # right answer, so it stays in the database but not in the frame
    assert controls.control_correct.notna().all() and df[~df.is_control].control_correct.isna().all()
    assert not (controls.model_b.eq("control:unrelated") & controls.question.eq("quality")).any()
    n_db = sqlite3.connect(study.db_url).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    n_unscored = sum(t.control_kind == "alignment" for r in ("r01", "r02") for t in store.tasks(r))
    assert n_db == len(df) + n_unscored
    acc = control_accuracy(df, 0.8).set_index("rater")
    assert acc.loc["r01", "accuracy"] == 1.0 and not acc.loc["r01", "flagged"]
    assert acc.loc["r02", "accuracy"] == 0.0 and acc.loc["r02", "flagged"]
    kept, exclusion = apply_controls(df, 0.8)
    assert [r for _, r in exclusion.raters_excluded] == ["r02"]
    assert set(kept.rater) == {"r01"} and not kept.is_control.any() and len(kept) == 2 * 20


def test_coco_protocols_export(tmp_path):
    real = coco_study(tmp_path / "real", "coco_realism")
    store = real.store()
    t = store.tasks("r01")[0]
    store.submit("r01", t.task_id, {"realism": "left"}, 10)
    assert answers_frame(real.root).answer.tolist() == ["A" if t.a_on_left else "B"]
    with pytest.raises(ValueError, match="allowed: left, right"):
        store.submit("r01", store.tasks("r01")[1].task_id, {"realism": "tie"}, 10)
    align = coco_study(tmp_path / "align", "coco_alignment")
    s2 = align.store()
    controls = [t for t in s2.tasks("r01") if t.is_control]
    assert controls and all(dict(c.expected) == {"caption": "no"} and c.model_b == "" for c in controls)
    s2.submit("r01", controls[0].task_id, {"caption": "no"}, 10)
    df = answers_frame(align.root)
    assert df.answer.tolist() == ["no"] and df.control_correct.tolist() == [True] and df.model_b.tolist() == [""]


def test_tokens_constant_time_match():
    tok = new_token()
    assert len(tok) >= 43 and match_token(tok, {"r01": hash_token(tok), "r02": hash_token(new_token())}) == "r01"
    for forged in (
        None,
        "",
        tok[:-1] + ("A" if tok[-1] != "A" else "B"),
        "../../etc/passwd",
        "x" * 500,
        hash_token(tok),
    ):
        assert match_token(forged, {"r01": hash_token(tok)}) is None


def test_bad_input_is_refused_and_changes_nothing(study):
    store = study.store()
    before = _db_snapshot(study)
    assert store.rater_for_token("forged-" + new_token()) is None and not store.is_admin(
        tokens(study)["raters"]["r01"]
    )
    other = store.tasks("r02")[0]
    with pytest.raises(AccessDenied, match="not one of rater 'r01'"):
        store.submit("r01", other.task_id, {"quality": "left", "alignment": "left"}, 5)
    with pytest.raises(AccessDenied):
        store.task("r01", "no-such-task")
    mine = store.tasks("r01")[0]
    with pytest.raises(ValueError, match="exactly the questions"):
        store.submit("r01", mine.task_id, {"quality": "left"}, 5)
    with pytest.raises(ValueError, match="allowed: left, tie, right"):
        store.submit("r01", mine.task_id, {"quality": "A", "alignment": "left"}, 5)
    for bad in ("../study.json", "../secrets.json", "/etc/passwd", "0" * 32, "images/x.jpg", "%2e%2e%2fstudy.json"):
        with pytest.raises(AccessDenied):
            study.image_path(bad)
    assert study.image_path(mine.images_a[0]).parent == study.root / "images"
    assert _db_snapshot(study) == before


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other/1"}', "format must be"),
        ('{"format": "imagen-bench-study/1", "name": "x"}', "missing keys"),
        (
            '{"format": "imagen-bench-study/1", "name": "x", "protocol": "nope", "database": "r.sqlite", "images": {}, "settings": {}}',
            "unknown protocol 'nope'; choose from drawbench_sbs, coco_realism, coco_alignment",
        ),
        (
            '{"format": "imagen-bench-study/1", "name": "x", "protocol": "coco_realism", "database": "r.sqlite", '
            '"images": {"' + "a" * 32 + '": {"file": "../../etc/passwd"}}, "settings": {"control_threshold": 0.8}}',
            "'images' must map",
        ),
    ],
)
def test_malformed_study_file(tmp_path, content, message):
    (tmp_path / "study.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_study(tmp_path)


def test_cli_refusals(tmp_path, capsys, study):
    a = f"folder:{study.root}"  # wrong on purpose: never read, the protocol check fails first
    assert cli(["study", "create", "--protocol", "drawbench_sbs", "--a", a, "--out", str(tmp_path / "x")]) == 2
    assert "give --b" in capsys.readouterr().err
    assert cli(["study", "create", "--protocol", "coco_alignment", "--a", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "use run:DIR[@CELL], run:DIR@KEY=VALUE[,KEY=VALUE...], folder:DIR or coco:DIR" in capsys.readouterr().err
    before = _db_snapshot(study)
    assert cli(["study", "create", "--protocol", "coco_alignment", "--a", a, "--out", str(study.root)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert _db_snapshot(study) == before
    assert cli(["rate", str(tmp_path)]) == 2 and "study.json is missing" in capsys.readouterr().err
    out = tmp_path / "answers.parquet"
    assert cli(["study", "export", str(study.root), "--out", str(out)]) == 0 and out.is_file()
    assert json.loads((tmp_path / "answers.parquet.meta.json").read_text())["package_version"] == "0.1.0"
    assert cli(["study", "export", str(study.root), "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must end in .csv or .parquet"):
        write_answers(study.root, tmp_path / "answers.xlsx")


def test_degraded_copy_is_heavily_degraded(tmp_path):
    src = tmp_path / "src.png"
    yy, xx = np.mgrid[0:128, 0:128]
    Image.fromarray(((xx // 8 + yy // 8) % 2 * 255).astype(np.uint8)).convert("RGB").save(src)  # sharp checkerboard
    a = np.asarray(Image.open(src), dtype=np.float64)
    b = np.asarray(degrade(src, seed=0), dtype=np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert b.shape == a.shape and psnr < 12, psnr


def test_export_csv_neutralises_formula_cells_and_parquet_stays_exact(tmp_path):
    """A prompt file's category '=HYPERLINK(...)' reaches the export; in CSV it is text for a spreadsheet."""
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study
    from selfcheck.trials.study_sources import synthetic_sources

    captions, model, _ = synthetic_sources(tmp_path / "src")
    df = pd.read_csv(captions)
    df["category"] = '=HYPERLINK("http://evil.example","x")'
    df.to_csv(captions, index=False)
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
    store = study.store()
    for task in store.tasks("r01"):
        store.submit("r01", task.task_id, {"caption": "yes"}, 1000)
    write_answers(study.root, tmp_path / "a.csv")
    write_answers(study.root, tmp_path / "a.parquet")
    text = (tmp_path / "a.csv").read_text()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    assert (pd.read_parquet(tmp_path / "a.parquet").category == '=HYPERLINK("http://evil.example","x")').all()


def test_a_killed_creates_leftover_is_removed_by_the_next_create(tmp_path):
    """`study create` builds in `.OUT.creating-<pid>-<hex>`; a kill left it forever. The next create
    removes leftovers whose creator is gone (a live creator's folder is kept)."""
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study
    from selfcheck.trials.study_sources import synthetic_sources

    captions, model, _ = synthetic_sources(tmp_path / "src")
    dead = tmp_path / ".study.creating-4000000-abcd"  # beyond any pid_max: its creator is gone
    dead.mkdir()
    (dead / "images").mkdir()
    create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=1, batch_size=4),
        ),
    )
    assert not dead.exists() and not list(tmp_path.glob(".study.creating-*"))


def test_implausibly_fast_answers_are_recorded_and_flagged(tmp_path, monkeypatch):
    """A scripted submit (tens of ms) is counted per rater against the study's recorded fast-answer
    time: in the rater table of the admin page and in the report's rater table."""
    from human_eval.admin_page import rater_table
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study
    from selfcheck.trials.study_sources import synthetic_sources

    captions, model, _ = synthetic_sources(tmp_path / "src")
    study = create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            fast_answer_ms=800,
            plan=PlanSettings(raters=1, batch_size=4),
        ),
    )
    assert json.loads((study.root / "study.json").read_text())["settings"]["fast_answer_ms"] == 800
    store = study.store()
    tasks = store.tasks("r01")
    for k, task in enumerate(tasks):
        answer = dict(task.expected).get("caption", "yes") if task.is_control else "yes"  # controls answered right
        store.submit("r01", task.task_id, {"caption": answer}, 79 if k < 3 else 2500)
    table = rater_table(study, store, answers_frame(study.root))
    assert table.set_index("rater").loc["r01", "n_fast"] == 3
    out = tmp_path / "report"
    assert cli(["report", str(study.root), "--out", str(out), "--resamples", "100", "--power-studies", "10"]) == 0
    acc = pd.read_csv(out / "tables" / "rater_control_accuracy.csv")
    assert acc.n_fast.tolist() == [3] and "3 answers were faster than their study" in (out / "index.html").read_text()


def test_admin_progress_per_category(tmp_path):
    """DrawBench is evaluated per category: the admin page shows each category's progress."""
    from human_eval_fixtures import sbs_study

    from human_eval.admin_page import category_table

    study = sbs_study(tmp_path / "s", prompts="drawbench:Colors,Counting", raters=2, batch_size=10, control_share=0.2)
    store = study.store()
    first = next(t for t in store.tasks("r01") if not t.is_control)
    store.submit("r01", first.task_id, {"quality": "left", "alignment": "tie"}, 1500)
    table = category_table(store).set_index("category")
    assert set(table.index) == {"Colors", "Counting"} and (table.raters >= 1).all()
    assert table.done.sum() == 1 and table.loc[first.category, "done"] == 1
    assert table.tasks.sum() == sum(not t.is_control for r in ("r01", "r02") for t in store.tasks(r))


def test_drawbench_default_design_is_one_evaluation_per_category(tmp_path, capsys):
    """The paper's DrawBench design: each category its own evaluation with its own raters; built
    from the real SD v1.4 / v1.5 images, with a pool of 5 raters and 2 per category."""
    from human_eval_fixtures import sd_folders

    a, b = sd_folders()
    out = tmp_path / "s"
    assert (
        cli(
            [
                "study",
                "create",
                "--protocol",
                "drawbench_sbs",
                "--a",
                f"folder:{a}",
                "--b",
                f"folder:{b}",
                "--images-per-set",
                "1",
                "--prompts",
                "drawbench:Colors,Text,Counting",
                "--raters",
                "5",
                "--raters-per-category",
                "2",
                "--batch-size",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "3 evaluations (one per category, 2 raters each)" in capsys.readouterr().out
    study = load_study(out)
    meta = json.loads((out / "study.json").read_text())
    assert (
        meta["settings"]["plan"]["design"] == "per_category" and meta["settings"]["plan"]["raters_per_category"] == 2
    )
    evaluations = meta["tasks"]["evaluations"]
    assert sorted(evaluations) == ["Colors", "Counting", "Text"] and all(len(r) == 2 for r in evaluations.values())
    served = Counter(r for raters in evaluations.values() for r in raters)
    assert max(served.values()) - min(served.values()) <= 1  # dealt in rotation: nobody serves far more than others
    store = study.store()
    try:
        for rater in served:
            tasks = store.tasks(rater)
            ordinary = [t for t in tasks if not t.is_control]
            for batch in {
                t.batch for t in tasks
            }:  # a batch never mixes categories (controls are made from its prompts)
                assert len({t.category for t in tasks if t.batch == batch}) == 1
            cats = {t.category for t in ordinary}
            assert cats == {c for c, raters in evaluations.items() if rater in raters}
            ids = [t.prompt_id for t in ordinary]
            assert len(ids) == len(set(ids))  # each prompt of their categories once
    finally:
        store.close()
    # every prompt of a category is rated by exactly its 2 raters
    con = sqlite3.connect(out / "ratings.sqlite")
    rows = con.execute(
        "SELECT category, prompt_id, COUNT(DISTINCT rater) FROM tasks WHERE is_control = 0 GROUP BY 1, 2"
    ).fetchall()
    con.close()
    assert rows and {n for _, _, n in rows} == {2}


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--raters", "3", "--raters-per-category", "4"],
            "raters per category must be in [1, 3] (the pool, --raters), got 4",
        ),
        (
            ["--design", "all_prompts", "--raters-per-category", "2"],
            "raters per category applies to the per_category design only",
        ),
        (["--design", "every"], "invalid choice: 'every'"),
    ],
)
def test_design_options_are_checked(tmp_path, capsys, extra, message):
    from human_eval_fixtures import sd_folders

    a, b = sd_folders()
    with pytest.raises(SystemExit) if "invalid choice" in message else contextlib.nullcontext():
        assert (
            cli(
                [
                    "study",
                    "create",
                    "--protocol",
                    "drawbench_sbs",
                    "--a",
                    f"folder:{a}",
                    "--b",
                    f"folder:{b}",
                    "--images-per-set",
                    "1",
                    "--prompts",
                    "drawbench:Colors",
                    *extra,
                    "--out",
                    str(tmp_path / "s"),
                ]
            )
            == 2
        )
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_all_prompts_design_gives_every_rater_every_prompt(tmp_path):
    from human_eval_fixtures import sd_folders

    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study

    a, b = sd_folders()
    study = create_study(
        tmp_path / "s",
        StudySettings(
            protocol="drawbench_sbs",
            a=f"folder:{a}",
            b=f"folder:{b}",
            images_per_set=1,
            prompts="drawbench:Colors,Text",
            plan=PlanSettings(raters=2, design="all_prompts"),
        ),
    )
    meta = json.loads((study.root / "study.json").read_text())
    assert meta["tasks"]["evaluations"] == {"all": ["r01", "r02"]}
    store = study.store()
    try:
        for r in ("r01", "r02"):
            assert len({t.prompt_id for t in store.tasks(r) if not t.is_control}) == meta["prompts"]["n"]
    finally:
        store.close()


def test_one_image_controls_repeat_nothing_a_rater_sees(tmp_path):
    """coco_alignment with the reference rates each prompt's two images in two tasks: every caption
    shows twice, controls included (two pool images swap captions), and every image once (issue 30)."""
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study
    from selfcheck.trials.study_sources import synthetic_sources

    captions, model, reference = synthetic_sources(tmp_path / "src", n=12)
    study = create_study(
        tmp_path / "s",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=f"folder:{reference}",
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=2, batch_size=8, control_share=0.25),
        ),
    )
    store = study.store()
    for rater in ("r01", "r02"):
        tasks = store.tasks(rater)
        assert sum(t.is_control for t in tasks) == 6 and all(
            dict(t.expected) == {"caption": "no"} for t in tasks if t.is_control
        )
        assert set(Counter(t.caption for t in tasks).values()) == {2}
        images = [i for t in tasks for i in t.images_a]
        assert len(images) == len(set(images)) == len(tasks)
    store.close()

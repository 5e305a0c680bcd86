"""`imagen-bench study reissue`: one rater's (or the admin's) token is replaced; the old one is
refused at once, the new one accepted, and nothing else in the study changes."""

from __future__ import annotations

import os
import secrets
import sqlite3

import pytest
from human_eval_fixtures import coco_study, synthetic_sources, tokens

from human_eval.plan import PlanSettings
from human_eval.study import StudySettings, create_study, load_study, reissue_token
from imagen_bench.cli import main as cli

PG_URL = os.environ.get("HUMAN_EVAL_PG_URL")


@pytest.fixture
def study(tmp_path):
    study = coco_study(tmp_path, "coco_alignment", raters=3)
    store = study.store()
    for rater in ("r01", "r02"):  # answers already given must survive a reissue untouched
        for t in store.tasks(rater)[:2]:
            store.submit(rater, t.task_id, {"caption": "yes"}, 100)
    store.close()
    return study


def _table(study, sql: str) -> list[tuple]:
    con = sqlite3.connect(study.db_url)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _rows(study) -> tuple:
    return tuple(_table(study, f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in ("tasks", "answers"))


def _mode(study) -> int:
    return (study.root / "secrets.json").stat().st_mode & 0o777


def test_reissue_rater(study, capsys):
    before, rows = tokens(study), _rows(study)
    answered = study.store().answered("r01")
    assert answered and cli(["study", "reissue", str(study.root), "--rater", "r01"]) == 0
    after = tokens(study)
    new = after["raters"]["r01"]
    assert new != before["raters"]["r01"] and len(new) >= 43
    assert f"  r01  http://127.0.0.1:8501/?t={new}" in capsys.readouterr().out
    store = load_study(study.root).store()  # the app's own token checks
    assert store.rater_for_token(before["raters"]["r01"]) is None and store.rater_for_token(new) == "r01"
    assert {r: after["raters"][r] for r in ("r02", "r03")} == {r: before["raters"][r] for r in ("r02", "r03")}
    assert all(store.rater_for_token(before["raters"][r]) == r for r in ("r02", "r03"))
    assert after["admin"] == before["admin"] and store.is_admin(before["admin"])
    assert _rows(study) == rows and store.answered("r01") == answered
    assert _mode(study) == 0o600 and not (study.root / "secrets.json.tmp").exists()


def test_reissue_admin(study, capsys):
    before, rows = tokens(study), _rows(study)
    hashes = _table(study, "SELECT * FROM raters ORDER BY rater")
    assert cli(["study", "reissue", str(study.root), "--admin", "--public-url", "https://rate.example.org/"]) == 0
    after = tokens(study)
    assert after["admin"] != before["admin"] and after["raters"] == before["raters"]
    assert f"admin link (keep private): https://rate.example.org/?admin={after['admin']}" in capsys.readouterr().out
    store = load_study(study.root).store()
    assert not store.is_admin(before["admin"]) and store.is_admin(after["admin"])
    assert _table(study, "SELECT * FROM raters ORDER BY rater") == hashes and _rows(study) == rows
    assert _mode(study) == 0o600


def test_unknown_rater_names_known_ones_and_changes_nothing(study, capsys):
    files = {p: p.read_bytes() for p in (study.root / "secrets.json", study.root / "ratings.sqlite")}
    assert cli(["study", "reissue", str(study.root), "--rater", "r99"]) == 2
    err = capsys.readouterr().err
    assert "no rater 'r99'" in err and "its raters are: r01, r02, r03" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in files} == files


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "one of the arguments --rater --admin is required"),
        (["--admin", "--rater", "r01"], "argument --rater: not allowed with argument --admin"),
    ],
)
def test_exactly_one_of_rater_or_admin(study, flags, message, capsys):
    before = tokens(study)
    with pytest.raises(SystemExit) as e:
        cli(["study", "reissue", str(study.root), *flags])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert tokens(study) == before


def test_missing_study_or_secrets_is_a_clear_error(study, tmp_path, capsys):
    assert cli(["study", "reissue", str(tmp_path / "nope"), "--admin"]) == 2
    assert "study.json is missing" in capsys.readouterr().err
    hashes = _table(study, "SELECT * FROM raters ORDER BY rater")
    (study.root / "secrets.json").rename(tmp_path / "kept.json")
    assert cli(["study", "reissue", str(study.root), "--rater", "r01"]) == 2
    assert "secrets.json is missing" in capsys.readouterr().err
    assert _table(study, "SELECT * FROM raters ORDER BY rater") == hashes  # refused before the database changed


def test_links_flag_tokens_the_database_no_longer_accepts(study, capsys):
    """A crash between the two writes (database done, secrets.json not): links say to reissue."""
    old = tokens(study)
    store = study.store()
    store.replace_rater_token("r02", secrets.token_urlsafe(32))
    store.replace_admin_token(secrets.token_urlsafe(32))
    store.close()
    assert cli(["study", "links", str(study.root)]) == 0
    out = capsys.readouterr().out
    assert old["raters"]["r02"] not in out and old["admin"] not in out and old["raters"]["r01"] in out
    assert f"r02  link no longer valid: run imagen-bench study reissue {study.root} --rater r02" in out
    assert f"no longer valid: run imagen-bench study reissue {study.root} --admin" in out
    assert cli(["study", "reissue", str(study.root), "--rater", "r02"]) == 0
    assert cli(["study", "links", str(study.root)]) == 0
    assert f"r02  http://127.0.0.1:8501/?t={tokens(study)['raters']['r02']}" in capsys.readouterr().out


@pytest.mark.skipif(not PG_URL, reason="HUMAN_EVAL_PG_URL not set: no PostgreSQL server to test against")
def test_reissue_postgres(tmp_path):
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -c constraints.txt '.[postgres]'")
    captions, model, _ = synthetic_sources(tmp_path / "src")
    study = create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            name=f"pgreissue-{secrets.token_hex(4)}",
            db=PG_URL,
            plan=PlanSettings(raters=2, batch_size=4, control_share=0.25),
        ),
    )
    store = study.store()
    t = store.tasks("r01")[0]
    store.submit("r01", t.task_id, {"caption": "no"}, 7)
    before = tokens(study)
    new = reissue_token(study.root, "r01")
    admin = reissue_token(study.root, None)
    fresh = load_study(study.root).store()
    assert fresh.rater_for_token(before["raters"]["r01"]) is None and fresh.rater_for_token(new) == "r01"
    assert fresh.rater_for_token(before["raters"]["r02"]) == "r02"
    assert not fresh.is_admin(before["admin"]) and fresh.is_admin(admin)
    assert fresh.answered("r01") == {t.task_id: {"caption": "no"}} and _mode(study) == 0o600
    assert tokens(study) == {"admin": admin, "raters": {"r01": new, "r02": before["raters"]["r02"]}}

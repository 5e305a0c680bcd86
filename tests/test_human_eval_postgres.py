"""The same storage layer on PostgreSQL. Needs a server: set HUMAN_EVAL_PG_URL to an empty
database you own (e.g. postgresql://he:pw@127.0.0.1/he_test) and install the `postgres` extra."""

from __future__ import annotations

import os
import secrets
import threading
from urllib.parse import urlsplit

import pytest
from human_eval_fixtures import synthetic_sources

from human_eval.export import answers_frame
from human_eval.plan import PlanSettings
from human_eval.store import Store
from human_eval.study import StudySettings, create_study, load_study

URL = os.environ.get("HUMAN_EVAL_PG_URL")
pytestmark = pytest.mark.skipif(not URL, reason="HUMAN_EVAL_PG_URL not set: no PostgreSQL server to test against")


def test_postgres_study_submit_export(tmp_path, monkeypatch):
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -c constraints.txt '.[postgres]'")
    captions, model, reference = synthetic_sources(tmp_path / "src")
    name = f"pgtest-{secrets.token_hex(4)}"
    settings = StudySettings(
        protocol="coco_realism",
        a=f"folder:{model}",
        b=f"folder:{reference}",
        prompts=f"csv:{captions}",
        name=name,
        db=URL,
        plan=PlanSettings(raters=4, batch_size=4, control_share=0.25),
    )
    study = create_study(tmp_path / "study", settings)
    password = urlsplit(URL).password
    if password:  # study.json keeps the URL without it; libpq reads PGPASSWORD
        assert password not in (study.root / "study.json").read_text()
        monkeypatch.delenv("PGPASSWORD", raising=False)
        with pytest.raises(ValueError, match="PGPASSWORD"):
            load_study(study.root).store().protocol()
        monkeypatch.setenv("PGPASSWORD", password)
    store = study.store()
    tasks = {r: store.tasks(r) for r in ("r01", "r02", "r03", "r04")}

    def rate(rater: str) -> None:
        s = Store(URL, study.key)  # its own connections, like another app process
        for t in tasks[rater]:
            for _ in range(2):  # double submit
                s.submit(rater, t.task_id, {"realism": "left"}, 100)
        s.close()

    threads = [threading.Thread(target=rate, args=(r,)) for r in tasks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    df = answers_frame(study.root)
    assert len(df) == sum(len(v) for v in tasks.values()) and not df.duplicated(["rater", "task_id", "question"]).any()
    again = store.submit("r01", tasks["r01"][0].task_id, {"realism": "right"}, 5)
    assert again.kept == ("realism",)
    assert set(answers_frame(URL).study) >= {study.key}
    # the same name again is another study (its own random id), never merged with the first (issue 30)
    twin = create_study(tmp_path / "study2", settings)
    assert twin.name == study.name and twin.key != study.key
    assert len(answers_frame(twin.root)) == 0 and len(answers_frame(study.root)) == len(df)
    with pytest.raises(ValueError, match="already exists"):  # a key already in the database is never overwritten
        Store(URL, study.key).create("coco_realism", "a" * 43, {}, [], "test", {})

"""Crowd platforms (issue 30 item 3): a participant id takes one rater slot, once, and never reaches
another's; the payments export pays each answered task once and keeps the platform's rejection
rule apart from the analysis' 80 % control filter. The browser flow is test_human_eval_browser_platform.py."""

from __future__ import annotations

import json
import os
import secrets
import threading

import pandas as pd
import pytest
from human_eval_fixtures import synthetic_sources

from human_eval import participants
from human_eval.payments import AlreadyPaid, export_payments, participant_table
from human_eval.plan import PlanSettings
from human_eval.platforms import PROLIFIC_COMPLETION, from_record, make_platform
from human_eval.study import StudySettings, create_study, load_study
from imagen_bench.cli import main as cli


def crowd_study(root, raters: int = 3, bonus: str = "0.05", platform=None):
    captions, model, _ = synthetic_sources(root)
    return create_study(
        root / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=raters, batch_size=50, control_share=0.25),
            platform=platform or make_platform("prolific", "C0MPL3TE", "SCR33N", bonus),
        ),
    )


def ids(n: int, session: str | None = None) -> dict[str, str]:
    return {"PROLIFIC_PID": f"{n:024x}", "SESSION_ID": session or f"{n + 1000:024x}", "STUDY_ID": "a" * 24}


def answer(store, rater: str, failed_checks: int) -> None:
    """Answer every task of `rater`: ordinary tasks 'yes', the first `failed_checks` controls wrong."""
    failed = 0
    for t in store.tasks(rater):
        wrong = t.is_control and failed < failed_checks
        failed += wrong
        store.submit(rater, t.task_id, {"caption": "yes" if wrong or not t.is_control else "no"}, 4000)


def test_platform_options_are_checked_in_one_line():
    p = make_platform("prolific", "C0MPL3TE", None, "0.10")
    assert p.params == ("PROLIFIC_PID", "SESSION_ID", "STUDY_ID") and p.bonus_cents_per_task == 10
    assert p.finish_url("completed") == "https://app.prolific.com/submissions/complete?cc=C0MPL3TE"
    assert p.finish_url("screened_out") is None and from_record(json.loads(json.dumps(p.record()))) == p
    assert "{{%PROLIFIC_PID%}}" in p.entry_link("https://x.org", "tok")
    for bad, message in (
        (lambda: make_platform("prolific", "C", None, "0", id_params="a,b"), "--id-params is fixed by Prolific"),
        (
            lambda: make_platform("external", "C", None, "0", "workerId", "https://x.org/?c={code}"),
            "the session.s parameter",
        ),
        (lambda: make_platform("external", "C", None, "0", "workerId,assignmentId", "https://x.org/done"), "{code}"),
        (lambda: make_platform("prolific", "C", None, "0.001"), "at most two decimals"),
        (lambda: make_platform("prolific", None), "completion code"),
        (lambda: make_platform("mturk", "C"), "choose from prolific, external"),
    ):
        with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
            bad()
    ext = make_platform(
        "external", "OK", None, "0.05", "workerId, assignmentId,hitId", "https://ex.org/done?c={code}", 3
    )
    assert (ext.participant_param, ext.session_param, ext.other_params, ext.min_failed_checks) == (
        "workerId",
        "assignmentId",
        ("hitId",),
        3,
    )
    assert ext.finish_url("completed") == "https://ex.org/done?c=OK" and ext.read_ids(
        {"workerId": "W1", "assignmentId": "A1", "hitId": "H1", "t": "x"}
    ) == {"workerId": "W1", "assignmentId": "A1", "hitId": "H1"}
    assert (
        ext.entry_link("http://h:1/", "tok")
        == "http://h:1/?e=tok&workerId=<workerId>&assignmentId=<assignmentId>&hitId=<hitId>"
    )
    with pytest.raises(ValueError, match="This link lacks SESSION_ID"):
        p.read_ids({"PROLIFIC_PID": "a" * 24, "STUDY_ID": "b" * 24})
    with pytest.raises(ValueError, match="PROLIFIC_PID is not an id"):
        p.read_ids({"PROLIFIC_PID": "<script>", "STUDY_ID": "b", "SESSION_ID": "c"})
    assert PROLIFIC_COMPLETION.startswith("https://app.prolific.com/")


def test_cli_refuses_platform_options_without_a_platform(tmp_path, capsys):
    captions, model, _ = synthetic_sources(tmp_path)
    base = [
        "study",
        "create",
        "--protocol",
        "coco_alignment",
        "--a",
        f"folder:{model}",
        "--prompts",
        f"csv:{captions}",
    ]
    assert cli([*base, "--out", str(tmp_path / "s1"), "--completion-code", "X"]) == 2
    assert "--completion-code applies to --platform prolific|external only" in capsys.readouterr().err
    assert (
        cli(
            [
                *base,
                "--out",
                str(tmp_path / "s2"),
                "--platform",
                "prolific",
                "--completion-code",
                "C0MPL3TE",
                "--bonus-per-task",
                "0.05",
                "--raters",
                "2",
            ]
        )
        == 0
    )
    assert cli(["study", "links", str(tmp_path / "s2")]) == 0
    out = capsys.readouterr().out
    assert (
        "PROLIFIC_PID={{%PROLIFIC_PID%}}&SESSION_ID={{%SESSION_ID%}}&STUDY_ID={{%STUDY_ID%}}" in out
        and "?t=" not in out
    )
    study = load_study(tmp_path / "s2")
    assert study.platform.completed_code == "C0MPL3TE"
    answer(study.store(), participants.bind(study.store(), study.platform, ids(7)), failed_checks=0)
    assert cli(["study", "export", str(study.root), "--payments", "--out", str(tmp_path / "pay.csv")]) == 0
    assert "payment export 1: 1 participants, 6 tasks" in capsys.readouterr().out
    assert cli(["study", "export", str(study.root), "--payments", "--out", str(tmp_path / "again.csv")]) == 2
    err = capsys.readouterr().err
    assert "nothing to pay" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "again.csv").exists()


def test_a_participant_takes_one_slot_once_and_never_another(tmp_path):
    study = crowd_study(tmp_path, raters=3)
    store, platform = study.store(), study.platform
    entry = json.loads((study.root / "secrets.json").read_text())["entry"]
    assert participants.entry_ok(store, entry) and not participants.entry_ok(store, entry[:-1] + "x")
    assert participants.entry_ok(store, None) is False
    first = participants.bind(store, platform, ids(1))
    assert [participants.bind(store, platform, ids(1)) for _ in range(3)] == [first] * 3  # reloads: the same slot
    assert participants.participants(store) == {first: (ids(1)["PROLIFIC_PID"], ids(1))}  # recorded once
    # someone who knows participant 1's id but not their session gets nothing of theirs
    with pytest.raises(participants.Refused, match="already taking part with another SESSION_ID"):
        participants.bind(store, platform, ids(1, session="f" * 24))
    assert participants.bind(store, platform, ids(99), take=False) is None  # a look-up takes nothing
    # concurrent arrivals never share a slot; the fourth finds none left
    got: dict[int, str | None] = {}
    threads = [
        threading.Thread(target=lambda n=n: got.__setitem__(n, participants.bind(study.store(), platform, ids(n))))
        for n in (2, 3, 4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = sorted(v for v in got.values() if v)
    assert len(slots) == 2 and first not in slots and len(set(slots)) == 2 and list(got.values()).count(None) == 1
    assert len(participants.participants(store)) == 3


def test_payments_pay_each_task_once_and_keep_rejection_apart_from_analysis(tmp_path):
    study = crowd_study(tmp_path, raters=3, bonus="0.05")
    store, platform = study.store(), study.platform
    good, shaky, failing = (participants.bind(store, platform, ids(n)) for n in (1, 2, 3))
    answer(store, good, failed_checks=0)
    answer(store, shaky, failed_checks=1)  # 1 of 2 checks: 50 % < 80 %: out of the analysis, but no ground to reject
    out = tmp_path / "bonus-1.csv"
    number, decisions = export_payments(study.root, out)
    by = {d.rater: d for d in decisions}
    assert (
        number == 1 and out.read_text() == f"{ids(1)['PROLIFIC_PID']},0.30\n{ids(2)['PROLIFIC_PID']},0.30\n"
    )  # 6 tasks x 0.05
    assert (by[good].payment, by[good].analysis) == ("approve", "included")
    assert (by[shaky].payment, by[shaky].analysis, by[shaky].checks_failed) == ("approve", "excluded", 1)
    assert by[failing].tasks_done == 0 and by[failing].bonus == "0.00"
    log = pd.read_csv(f"{out}.decisions.csv")
    assert list(log["payment"]) == ["approve", "approve", "approve"] and "still paid" in log.loc[1, "reason"]

    # the same raters again: refused, nothing written, nothing recorded
    with pytest.raises(AlreadyPaid, match=r"nothing to pay .*earlier exports 1: "):
        export_payments(study.root, tmp_path / "bonus-2.csv")
    assert not (tmp_path / "bonus-2.csv").exists() and not (tmp_path / "bonus-2.csv.decisions.csv").exists()
    with pytest.raises(ValueError, match="already exists; refusing to overwrite"):
        export_payments(study.root, out)

    answer(store, failing, failed_checks=2)  # two failed checks: Prolific allows a rejection; no bonus
    with pytest.raises(AlreadyPaid, match=r"withheld \(1 with rejection allowed\)"):
        export_payments(study.root, tmp_path / "bonus-3.csv")
    rows = store.query("SELECT task_id, COUNT(*) FROM payments WHERE study = ? GROUP BY task_id", (store.study,))
    assert len(rows) == 12 and all(n == 1 for _, n in rows)
    table = participant_table(study, store)  # the admin page's view
    assert list(table.columns) == ["rater", "participant", "SESSION_ID", "STUDY_ID", "tasks paid", "bonus paid"]
    assert list(table["tasks paid"]) == [6, 6, 0] and list(table["bonus paid"]) == ["0.30", "0.30", "0.00"]
    with store.transaction() as tx:  # the table itself takes no second row for a paid task, whatever writes it
        assert (
            tx.run(
                "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (study, task_id) DO NOTHING",
                (store.study, rows[0][0], "x", good, 5, 9),
            )
            == 0
        )


def test_payments_refused_for_a_study_without_platform_or_bonus(tmp_path):
    study = crowd_study(tmp_path / "a", bonus="0")
    with pytest.raises(ValueError, match="without --bonus-per-task"):
        export_payments(study.root, tmp_path / "b.csv")
    captions, model, _ = synthetic_sources(tmp_path / "plain")
    plain = create_study(
        tmp_path / "plain" / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=1),
        ),
    )
    with pytest.raises(ValueError, match="has no crowd platform"):
        export_payments(plain.root, tmp_path / "c.csv")


@pytest.mark.skipif(
    not os.environ.get("HUMAN_EVAL_PG_URL"), reason="HUMAN_EVAL_PG_URL not set: no PostgreSQL server to test against"
)
def test_slots_and_payments_on_postgres(tmp_path):
    """The same rules on PostgreSQL, where two arrivals can pick the same free slot at once (the UNIQUE slot decides)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -c constraints.txt '.[postgres]'")
    captions, model, _ = synthetic_sources(tmp_path)
    study = create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            db=os.environ["HUMAN_EVAL_PG_URL"],
            name=f"crowd-{secrets.token_hex(4)}",
            plan=PlanSettings(raters=4, batch_size=50, control_share=0.25),
            platform=make_platform("prolific", "C0MPL3TE", None, "0.05"),
        ),
    )
    got: dict[int, str | None] = {}
    threads = [
        threading.Thread(
            target=lambda n=n: got.__setitem__(n, participants.bind(study.store(), study.platform, ids(n)))
        )
        for n in range(1, 7)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v for v in got.values() if v) == ["r01", "r02", "r03", "r04"] and list(got.values()).count(None) == 2
    store = study.store()
    for rater in ("r01", "r02"):
        answer(store, rater, failed_checks=0)
    number, decisions = export_payments(study.root, tmp_path / "b1.csv")
    assert number == 1 and len((tmp_path / "b1.csv").read_text().splitlines()) == 2
    with pytest.raises(AlreadyPaid, match="nothing to pay"):
        export_payments(study.root, tmp_path / "b2.csv")


def test_app_bad_crowd_links_show_nothing_and_admin_lists_participants(tmp_path, monkeypatch):
    from human_eval_fixtures import APP
    from streamlit.testing.v1 import AppTest

    from selfcheck.trials.security_app import page

    study = crowd_study(tmp_path, raters=2)
    secrets_ = json.loads((study.root / "secrets.json").read_text())
    participants.bind(study.store(), study.platform, ids(1))
    monkeypatch.setenv("HUMAN_EVAL_STUDY", str(study.root))

    def app(**params) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        return at.run()

    for params, message in (
        ({"t": secrets_["raters"]["r01"]}, "This link is not valid"),  # invite links: no way in
        ({**ids(5), "e": secrets_["entry"][:-2] + "xx"}, "This link is not valid"),
        ({"e": secrets_["entry"], "PROLIFIC_PID": ids(5)["PROLIFIC_PID"]}, "This link lacks SESSION_ID"),
        ({**ids(1, session="e" * 24), "e": secrets_["entry"]}, "already taking part with another SESSION_ID"),
    ):
        at = app(**params)
        assert not at.exception and len(at.error) == 1 and message in at.error[0].value
        assert "Image" not in page(at)[0] and not at.radio and not at.get("arrow_data_frame")  # nothing of the study
    at = app(**ids(1), e=secrets_["entry"])
    assert (
        not at.exception and not at.error and len(at.radio) == 1 and "Image" in page(at)[0]
    )  # participant 1's own first task
    at = app(admin=secrets_["admin"])
    assert not at.exception and "Participants from Prolific" in [h.value for h in at.subheader]
    table = next(d.value for d in at.dataframe if "participant" in d.value.columns)
    assert list(table["participant"]) == [ids(1)["PROLIFIC_PID"]] and list(table["SESSION_ID"]) == [
        ids(1)["SESSION_ID"]
    ]


def test_a_stopped_study_screens_out_who_has_not_begun(tmp_path, monkeypatch):
    """A sequential study that has stopped (sequential_page.ended) sends a participant who has not
    answered yet back with the screened-out code; one who has begun finishes their batch."""
    from human_eval_fixtures import APP
    from streamlit.testing.v1 import AppTest

    from human_eval import crowd_page

    study = crowd_study(tmp_path, raters=3)
    entry = json.loads((study.root / "secrets.json").read_text())["entry"]
    store = study.store()
    begun = participants.bind(store, study.platform, ids(1))
    participants.bind(store, study.platform, ids(2))  # a slot, no answer yet
    store.submit(begun, store.tasks(begun)[0].task_id, {"caption": "yes"}, 4000)
    monkeypatch.setattr(crowd_page, "ended", lambda study, store: True)
    monkeypatch.setenv("HUMAN_EVAL_STUDY", str(study.root))
    for n, screened in ((1, False), (2, True), (3, True)):
        at = AppTest.from_file(str(APP), default_timeout=60)
        for k, v in {**ids(n), "e": entry}.items():
            at.query_params[k] = v
        at.run()
        links = [b.proto.url for b in at.get("link_button")]
        assert not at.exception and not at.error
        assert (
            links == (["https://app.prolific.com/submissions/complete?cc=SCR33N"] if screened else [])
            and bool(at.radio) != screened
        )
    assert sorted(participants.participants(store)) == ["r01", "r02"]  # the third took no slot

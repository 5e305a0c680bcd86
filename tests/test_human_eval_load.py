"""Load test of the storage layer the app uses: 50 concurrent raters x 100 answers each against one
SQLite ratings database, with deliberate double submits (same request twice, a racing second tab,
a later different answer). Expect 0 lost, 0 duplicated, first answer kept; prints p95 latency.
The load itself is selfcheck.perf.app.submit_load (also timed by `imagen-bench perf`)."""

from __future__ import annotations

import sqlite3

from selfcheck.perf.app import choice, submit_load

RATERS, ANSWERS = 50, 100


def test_50_raters_100_answers_nothing_lost_or_duplicated(tmp_path):
    db = tmp_path / "ratings.sqlite"
    load = submit_load(db, RATERS, ANSWERS)
    assert not load.errors, load.errors[:3]
    con = sqlite3.connect(db)
    n_rows = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    dups = con.execute(
        "SELECT COUNT(*) FROM (SELECT rater, task_id, question FROM answers "
        "GROUP BY rater, task_id, question HAVING COUNT(*) > 1)"
    ).fetchone()[0]
    got = dict(con.execute("SELECT task_id, shown FROM answers").fetchall())
    lost = sum(t.task_id not in got for t in load.tasks)
    wrong = sum(got.get(t.task_id) != choice(t) for t in load.tasks)
    p50, p95, p99 = load.percentiles_ms()
    n = len(load.latencies)
    print(
        f"\nload test: {RATERS} raters x {ANSWERS} answers, {n} submit calls in {load.wall:.1f} s "
        f"({n / load.wall:.0f}/s); stored {load.stored}, kept-as-duplicate {load.kept}; rows {n_rows}, "
        f"lost {lost}, duplicated {dups}, changed {wrong}; submit latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms"
    )
    assert n_rows == load.stored == RATERS * ANSWERS and lost == 0 and dups == 0 and wrong == 0
    assert load.kept == n - RATERS * ANSWERS > 0
    assert load.wall < 30

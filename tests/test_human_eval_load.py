"""Load test of the storage layer the app uses: 50 concurrent raters x 100 answers each against one
SQLite ratings database, with deliberate double submits (same request twice, a racing second tab,
a later different answer). Expect 0 lost, 0 duplicated, first answer kept; prints p95 latency."""
from __future__ import annotations

import secrets
import sqlite3
import threading
import time

import numpy as np

from human_eval.store import Store, Task

RATERS, ANSWERS = 50, 100


def _tasks() -> list[Task]:
    return [Task(task_id=secrets.token_hex(12), rater=f"r{r:02d}", batch=1 + i // 50, position=1 + i % 50,
                 prompt_id=str(i), category="load", caption=f"caption {i}", model_a="m1", model_b="m2",
                 a_on_left=bool((r + i) % 2), images_a=(secrets.token_hex(16),), images_b=(secrets.token_hex(16),),
                 is_control=False, control_kind="", expected=())
            for r in range(1, RATERS + 1) for i in range(ANSWERS)]


def _choice(task: Task) -> str:
    return "left" if int(task.prompt_id) % 3 else "right"


def test_50_raters_100_answers_nothing_lost_or_duplicated(tmp_path):
    db = tmp_path / "ratings.sqlite"
    tasks = _tasks()
    store = Store(db, "load")
    store.create("coco_realism", "admin-" + secrets.token_urlsafe(32), {f"r{r:02d}": secrets.token_urlsafe(32) for r in range(1, RATERS + 1)},
                 tasks, "test", {"load": True})
    by_rater: dict[str, list[Task]] = {}
    for t in tasks:
        by_rater.setdefault(t.rater, []).append(t)
    latencies: list[float] = []
    stored, kept, errors = [0], [0], []
    lock = threading.Lock()
    start = threading.Barrier(RATERS * 2)

    def submit(rater: str, task: Task, value: str) -> None:
        t0 = time.perf_counter()
        res = store.submit(rater, task.task_id, {"realism": value}, 1000)
        with lock:
            latencies.append(time.perf_counter() - t0)
            stored[0] += len(res.stored)
            kept[0] += len(res.kept)

    def rater_tab(rater: str) -> None:
        try:
            start.wait()
            for i, task in enumerate(by_rater[rater]):
                submit(rater, task, _choice(task))
                if i % 5 == 0:  # double click: the same request again
                    submit(rater, task, _choice(task))
                if i % 10 == 0:  # a later, different answer must not replace the first
                    submit(rater, task, "right" if _choice(task) == "left" else "left")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    def second_tab(rater: str) -> None:  # the same rater in another tab, racing on every 4th task
        try:
            start.wait()
            for task in by_rater[rater][::4]:
                submit(rater, task, _choice(task))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=f, args=(r,)) for r in by_rater for f in (rater_tab, second_tab)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    wall = time.perf_counter() - t0
    assert not errors, errors[:3]
    con = sqlite3.connect(db)
    n_rows = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    dups = con.execute("SELECT COUNT(*) FROM (SELECT rater, task_id, question FROM answers "
                       "GROUP BY rater, task_id, question HAVING COUNT(*) > 1)").fetchone()[0]
    got = dict(con.execute("SELECT task_id, shown FROM answers").fetchall())
    lost = sum(t.task_id not in got for t in tasks)
    wrong = sum(got.get(t.task_id) != _choice(t) for t in tasks)
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    print(f"\nload test: {RATERS} raters x {ANSWERS} answers, {len(latencies)} submit calls in {wall:.1f} s "
          f"({len(latencies) / wall:.0f}/s); stored {stored[0]}, kept-as-duplicate {kept[0]}; rows {n_rows}, "
          f"lost {lost}, duplicated {dups}, changed {wrong}; submit latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms")
    assert n_rows == stored[0] == RATERS * ANSWERS and lost == 0 and dups == 0 and wrong == 0
    assert kept[0] == len(latencies) - RATERS * ANSWERS > 0
    assert wall < 30

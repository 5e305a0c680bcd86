"""`imagen-bench trials load-pg`: 200 concurrent raters on PostgreSQL (issue 30 item 5).

    1. create a throwaway database on the server at --db (a PostgreSQL URL; default
       $HUMAN_EVAL_PG_URL, e.g. from .ci/pg-start) and a study of raters x answers tasks in it;
    2. every rater submits all their tasks through human_eval.store.Store.submit (the call the rating
       page makes per answer) from their own thread, with a second tab racing on every 4th task,
       every 5th answer sent twice (a double click) and every 10th sent again with the other answer
       (which must not replace the first): selfcheck.perf.app.submit_load;
    3. read the database: every task answered exactly once with the first answer, no (rater, task,
       question) twice, no client error; the submit latency p50 / p95 / p99 and the peak number of
       connections the server saw are stated;
    4. drop the database.
Writes WORKDIR/summary.json; exit status 0 only when every check passed. It drives the storage
layer, not 200 browsers: the browser path is the kill-server and detect-controls trials'.
"""

from __future__ import annotations

import argparse
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .harness import Check, finish, fresh_workdir

PG_ENV = "HUMAN_EVAL_PG_URL"


@dataclass(frozen=True)
class LoadSettings:
    db: str
    raters: int = 200
    answers: int = 100
    pause_ms: int = 0  # between a rater's tasks; 0: back to back, every rater at once (the worst case)
    workdir: Path = Path("runs/trials/load-pg")

    def __post_init__(self):
        if not self.db.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"--db must be a postgresql:// URL (or set ${PG_ENV}; .ci/pg-start prints one), got {self.db!r}"
            )
        if not 1 <= self.raters <= 2000 or not 1 <= self.answers <= 10_000 or not 0 <= self.pause_ms <= 60_000:
            raise ValueError(
                f"--raters must be 1..2000, --answers 1..10000, --pause-ms 0..60000; got {self.raters}, {self.answers}, {self.pause_ms}"
            )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=os.environ.get(PG_ENV, ""),
        help=f"PostgreSQL server URL (default ${PG_ENV}); a throwaway database is made on it",
    )
    p.add_argument(
        "--raters", type=int, default=200, help="concurrent raters, each with a second racing tab (default 200)"
    )
    p.add_argument("--answers", type=int, default=100, help="tasks per rater (default 100)")
    p.add_argument(
        "--pause-ms",
        type=int,
        default=0,
        help="pause between a rater's tasks (default 0: back to back, the worst case)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("runs/trials/load-pg"),
        help="trial work directory (default runs/trials/load-pg)",
    )


def run(args: argparse.Namespace) -> int:
    return run_trial(
        LoadSettings(
            db=args.db, raters=args.raters, answers=args.answers, pause_ms=args.pause_ms, workdir=Path(args.workdir)
        )
    )


def _on(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def run_trial(s: LoadSettings) -> int:
    import psycopg

    from selfcheck.perf.app import choice, submit_load

    t0 = time.monotonic()
    wd = fresh_workdir(s.workdir)
    name = f"imagen_bench_load_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(s.db, autocommit=True)
    except psycopg.OperationalError as e:
        raise ValueError(f"cannot reach the PostgreSQL server at --db: {str(e).strip().splitlines()[0]}") from None
    try:
        admin.execute(f"CREATE DATABASE {name}")
        limit = int(admin.execute("SHOW max_connections").fetchone()[0])
        peak, stop = [0], threading.Event()

        def watch() -> None:  # the most connections the server held for the load database at once
            with psycopg.connect(s.db, autocommit=True) as w:
                while not stop.is_set():
                    n = w.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]
                    peak[0] = max(peak[0], int(n))
                    time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        print(
            f"load-pg: {s.raters} raters x {s.answers} answers (+ double submits, a second tab each) on database {name}",
            flush=True,
        )
        load = submit_load(_on(s.db, name), s.raters, s.answers, join_timeout=600, pause_s=s.pause_ms / 1000)
        stop.set()
        watcher.join(timeout=10)
        with psycopg.connect(_on(s.db, name), autocommit=True) as con:
            rows = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            dups = con.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM answers GROUP BY rater, task_id, question HAVING COUNT(*) > 1) d"
            ).fetchone()[0]
            got = dict(con.execute("SELECT task_id, shown FROM answers").fetchall())
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    lost = sum(t.task_id not in got for t in load.tasks)
    changed = sum(got.get(t.task_id) != choice(t) for t in load.tasks if t.task_id in got)
    p50, p95, p99 = load.percentiles_ms()
    n, want = len(load.latencies), s.raters * s.answers
    print(
        f"  {n} submit calls in {load.wall:.1f} s ({n / load.wall:.0f}/s); p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms; "
        f"peak {peak[0]} connections (server max {limit})",
        flush=True,
    )
    checks = [
        Check("no client error", not load.errors, f"{len(load.errors)} errors: {load.errors[:2]}"),
        Check(
            "no answer lost",
            lost == 0 and rows == want == load.stored,
            f"{rows} rows, {load.stored} stored, {want} tasks, {lost} lost",
        ),
        Check("no answer duplicated", dups == 0, f"{dups} (rater, task, question) twice"),
        Check(
            "first answer kept",
            changed == 0 and load.kept == n - want,
            f"{changed} changed; {load.kept} repeats kept as first",
        ),
    ]
    facts = {
        "raters": s.raters,
        "answers_per_rater": s.answers,
        "pause_ms": s.pause_ms,
        "submit_calls": n,
        "wall_s": round(load.wall, 2),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "peak_connections": peak[0],
        "max_connections": limit,
        "database": name + " (dropped)",
    }
    return finish(wd, "load-pg", checks, facts, time.monotonic() - t0)

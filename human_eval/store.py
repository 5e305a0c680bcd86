"""The ratings database: the one storage layer used by the app, the load test and the export.

SQLite by default (WAL mode, busy timeout; one connection per thread) or PostgreSQL by URL
(`postgresql://...`, needs the `postgres` extra: psycopg; a bounded pool of connections shared by
every thread, human_eval.pg_pool). SQL is written once with `?`
placeholders and `ON CONFLICT DO NOTHING`, which both engines understand.

Idempotency rule: FIRST ANSWER WINS. answers has UNIQUE(rater, task_id, question); a second
submit of the same question (double click, refresh, retry after a network error) is a no-op and
`submit` reports the answer already kept. Raters cannot change an answer once given.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .pg_pool import PgPool
from .protocols import derandomise, get_protocol
from .tokens import hash_token, match_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study TEXT PRIMARY KEY, protocol TEXT NOT NULL, admin_sha256 TEXT NOT NULL,
    created TEXT NOT NULL, package_version TEXT NOT NULL, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
    study TEXT NOT NULL REFERENCES studies(study), rater TEXT NOT NULL, token_sha256 TEXT NOT NULL,
    PRIMARY KEY (study, rater));
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, study TEXT NOT NULL, rater TEXT NOT NULL, batch INTEGER NOT NULL,
    position INTEGER NOT NULL, prompt_id TEXT NOT NULL, category TEXT NOT NULL, caption TEXT NOT NULL,
    model_a TEXT NOT NULL, model_b TEXT NOT NULL, a_on_left INTEGER NOT NULL,
    images_a TEXT NOT NULL, images_b TEXT NOT NULL, is_control INTEGER NOT NULL,
    control_kind TEXT NOT NULL, expected TEXT NOT NULL,
    FOREIGN KEY (study, rater) REFERENCES raters(study, rater), UNIQUE (study, rater, batch, position));
CREATE TABLE IF NOT EXISTS answers (
    study TEXT NOT NULL, rater TEXT NOT NULL, task_id TEXT NOT NULL REFERENCES tasks(task_id),
    question TEXT NOT NULL, shown TEXT NOT NULL, answer TEXT NOT NULL, response_ms INTEGER NOT NULL,
    answered_at TEXT NOT NULL, UNIQUE (rater, task_id, question));
"""


class AccessDenied(ValueError):
    """A rater asked for something that is not theirs (another rater's task, an unknown task)."""


@dataclass(frozen=True)
class Task:
    task_id: str
    rater: str
    batch: int
    position: int
    prompt_id: str
    category: str
    caption: str
    model_a: str
    model_b: str  # "" for single-image protocols
    a_on_left: bool  # model_a's images are shown on the left ("Set A")
    images_a: tuple[str, ...]  # image ids in the study's images/
    images_b: tuple[str, ...]
    is_control: bool
    control_kind: str  # "" | "alignment" | "fidelity"
    expected: tuple[tuple[str, str], ...]  # (question, right de-randomised answer) for scored control questions

    @property
    def left(self) -> tuple[str, ...]:
        return self.images_a if self.a_on_left else self.images_b

    @property
    def right(self) -> tuple[str, ...]:
        return self.images_b if self.a_on_left else self.images_a


@dataclass(frozen=True)
class SubmitResult:
    stored: tuple[str, ...]  # questions stored by this call
    kept: tuple[str, ...]  # questions that already had an answer (first answer wins; this call changed nothing)


INSERT_TASK = "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def task_row(study: str, t: Task) -> tuple:
    """A task's row of the tasks table (INSERT_TASK): at creation, or when a sequential ranking study
    deals a rater's batch (human_eval.ranking_deal)."""
    return (
        t.task_id,
        study,
        t.rater,
        t.batch,
        t.position,
        t.prompt_id,
        t.category,
        t.caption,
        t.model_a,
        t.model_b,
        int(t.a_on_left),
        json.dumps(list(t.images_a)),
        json.dumps(list(t.images_b)),
        int(t.is_control),
        t.control_kind,
        json.dumps(dict(t.expected)),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class Store:
    """One study's view of a ratings database. Thread-safe: each thread gets its own connection."""

    def __init__(self, url: str | Path, study: str | None):
        self.url = str(url)
        self.study = study
        self.postgres = is_postgres_url(self.url)
        if not self.postgres and self.url.startswith("sqlite:///"):
            self.url = self.url[len("sqlite:///") :]
        self._local = threading.local()
        self._pool: PgPool | None = None
        self._pool_lock = threading.Lock()
        self._protocol = None

    # -- connections -------------------------------------------------------------------------
    # SQLite: one connection per thread. PostgreSQL: a bounded pool shared by every thread
    # (human_eval.pg_pool: one connection per thread ran out at 200 concurrent raters).
    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.url, timeout=30.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as e:
                raise ValueError(
                    f"cannot open the ratings database {self.url}: {e} (restore it from a backup)"
                ) from None
            self._local.conn = conn
        return conn

    @contextmanager
    def _borrow(self) -> Iterator:
        """A connection for one query or transaction: the thread's own (SQLite) or one from the pool (PostgreSQL)."""
        if not self.postgres:
            yield self._conn()
            return
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = PgPool(self.url)
        with self._pool.connection() as conn:
            yield conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            with self._borrow() as conn:
                cur = conn.cursor()
                cur.execute(self._sql(sql), params)
                return list(cur.fetchall())
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise
            raise ValueError(
                f"the ratings database {self.url} is damaged or not a ratings database: {e} (restore it from a backup)"
            ) from None

    @contextmanager
    def _tx(self) -> Iterator:
        if self.postgres:
            with self._borrow() as conn, conn.transaction():
                yield conn.cursor()
            return
        cur = self._conn().cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def _exec(self, cur, sql: str, params: tuple = ()) -> int:
        cur.execute(self._sql(sql), params)
        return cur.rowcount

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._pool is not None:
            self._pool.close()

    # -- creating a study ----------------------------------------------------------------------
    def create(
        self,
        protocol: str,
        admin_token: str,
        rater_tokens: dict[str, str],
        tasks: list[Task],
        package_version: str,
        settings: dict,
    ) -> None:
        """Write a new study (raters with hashed tokens, all tasks) in one transaction.
        Refuses a study name that is already in the database: nothing is overwritten."""
        get_protocol(protocol)
        if self.postgres:
            with self._tx() as cur:
                for stmt in filter(str.strip, SCHEMA.split(";")):
                    cur.execute(stmt)
        else:
            self._conn().executescript(SCHEMA)
        if self._query("SELECT 1 FROM studies WHERE study = ?", (self.study,)):
            raise ValueError(f"study {self.study!r} already exists in {self.url}; refusing to overwrite its ratings")
        with self._tx() as cur:
            self._exec(
                cur,
                "INSERT INTO studies VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.study,
                    protocol,
                    hash_token(admin_token),
                    _now(),
                    package_version,
                    json.dumps(settings, sort_keys=True),
                ),
            )
            for rater, token in rater_tokens.items():
                self._exec(cur, "INSERT INTO raters VALUES (?, ?, ?)", (self.study, rater, hash_token(token)))
            for t in tasks:
                self._exec(cur, INSERT_TASK, task_row(self.study, t))

    # -- authentication ------------------------------------------------------------------------
    def protocol(self) -> str:
        if self._protocol is None:
            rows = self._query("SELECT protocol FROM studies WHERE study = ?", (self.study,))
            if not rows:
                raise FileNotFoundError(f"study {self.study!r} is not in the database {self.url}")
            self._protocol = rows[0][0]
        return self._protocol

    def rater_for_token(self, token: str | None) -> str | None:
        hashes = dict(self._query("SELECT rater, token_sha256 FROM raters WHERE study = ?", (self.study,)))
        return match_token(token, hashes)

    def is_admin(self, token: str | None) -> bool:
        rows = self._query("SELECT admin_sha256 FROM studies WHERE study = ?", (self.study,))
        return bool(rows) and match_token(token, {"admin": rows[0][0]}) == "admin"

    def token_hashes(self) -> tuple[str | None, dict[str, str]]:
        """(admin hash or None if the study is not in the database, {rater: token hash})."""
        admin = self._query("SELECT admin_sha256 FROM studies WHERE study = ?", (self.study,))
        raters = dict(self._query("SELECT rater, token_sha256 FROM raters WHERE study = ?", (self.study,)))
        return (admin[0][0] if admin else None), raters

    def replace_rater_token(self, rater: str, token: str) -> None:
        """Store the hash of a rater's new token in one transaction: the old token stops working at
        the commit. Tasks and answers are keyed by the rater's name, so they stay theirs, unchanged."""
        with self._tx() as cur:
            n = self._exec(
                cur,
                "UPDATE raters SET token_sha256 = ? WHERE study = ? AND rater = ?",
                (hash_token(token), self.study, rater),
            )
            if n != 1:
                raise ValueError(f"study {self.study!r} has no rater {rater!r} in {self.url}")

    def replace_admin_token(self, token: str) -> None:
        """Store the hash of a new admin token in one transaction: the old admin token stops working."""
        with self._tx() as cur:
            n = self._exec(cur, "UPDATE studies SET admin_sha256 = ? WHERE study = ?", (hash_token(token), self.study))
            if n != 1:
                raise FileNotFoundError(f"study {self.study!r} is not in the database {self.url}")

    # -- a rater's work ------------------------------------------------------------------------
    _TASK_COLS = (
        "task_id, rater, batch, position, prompt_id, category, caption, model_a, model_b, a_on_left, "
        "images_a, images_b, is_control, control_kind, expected"
    )

    @staticmethod
    def _task(row: tuple) -> Task:
        (
            task_id,
            rater,
            batch,
            position,
            prompt_id,
            category,
            caption,
            model_a,
            model_b,
            a_on_left,
            images_a,
            images_b,
            is_control,
            control_kind,
            expected,
        ) = row
        return Task(
            task_id,
            rater,
            int(batch),
            int(position),
            prompt_id,
            category,
            caption,
            model_a,
            model_b,
            bool(a_on_left),
            tuple(json.loads(images_a)),
            tuple(json.loads(images_b)),
            bool(is_control),
            control_kind,
            tuple(sorted(json.loads(expected).items())),
        )

    def tasks(self, rater: str) -> list[Task]:
        rows = self._query(
            f"SELECT {self._TASK_COLS} FROM tasks WHERE study = ? AND rater = ? ORDER BY batch, position",
            (self.study, rater),
        )
        return [self._task(r) for r in rows]

    def task(self, rater: str, task_id: str) -> Task:
        rows = self._query(
            f"SELECT {self._TASK_COLS} FROM tasks WHERE study = ? AND task_id = ?", (self.study, task_id)
        )
        if not rows or rows[0][1] != rater:
            raise AccessDenied(f"task {task_id!r} is not one of rater {rater!r}'s tasks")
        return self._task(rows[0])

    def answered(self, rater: str) -> dict[str, dict[str, str]]:
        """task_id -> {question: de-randomised answer}, only this rater's own answers."""
        out: dict[str, dict[str, str]] = {}
        for task_id, question, answer in self._query(
            "SELECT task_id, question, answer FROM answers WHERE study = ? AND rater = ?", (self.study, rater)
        ):
            out.setdefault(task_id, {})[question] = answer
        return out

    def submit(self, rater: str, task_id: str, shown: dict[str, str], response_ms: int) -> SubmitResult:
        """Store one task's answers (question -> shown option value, e.g. "left"/"tie"/"right" or
        "yes") in one transaction, de-randomised with the task's recorded sides. First answer wins."""
        task = self.task(rater, task_id)
        protocol = get_protocol(self.protocol())
        keys = {q.key for q in protocol.questions}
        if set(shown) != keys:
            raise ValueError(f"answers must cover exactly the questions {sorted(keys)}; got {sorted(shown)}")
        for key, value in shown.items():
            allowed = [o.value for o in protocol.question(key).options]
            if value not in allowed:
                raise ValueError(f"{value!r} is not an answer to {key!r}; allowed: {', '.join(allowed)}")
        if not isinstance(response_ms, int) or response_ms < 0:
            raise ValueError(f"response_ms must be a non-negative int, got {response_ms!r}")
        stored, kept = [], []
        at = _now()
        with self._tx() as cur:
            for key in sorted(shown):
                n = self._exec(
                    cur,
                    "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (rater, task_id, question) DO NOTHING",
                    (
                        self.study,
                        rater,
                        task_id,
                        key,
                        shown[key],
                        derandomise(shown[key], task.a_on_left),
                        response_ms,
                        at,
                    ),
                )
                (stored if n == 1 else kept).append(key)
        return SubmitResult(tuple(stored), tuple(kept))

    # -- admin / export ------------------------------------------------------------------------
    def progress(self) -> list[tuple[str, int, int]]:
        """(rater, tasks, tasks fully answered) for every rater of the study."""
        n_q = len(get_protocol(self.protocol()).questions)
        return [
            (r, int(n), int(done))
            for r, n, done in self._query(
                "SELECT r.rater, COUNT(t.task_id), "
                "  SUM(CASE WHEN (SELECT COUNT(*) FROM answers a WHERE a.task_id = t.task_id AND a.rater = r.rater) = ? "
                "      THEN 1 ELSE 0 END) "
                "FROM raters r LEFT JOIN tasks t ON t.study = r.study AND t.rater = r.rater "
                "WHERE r.study = ? GROUP BY r.rater ORDER BY r.rater",
                (n_q, self.study),
            )
        ]

    def category_progress(self) -> list[tuple[str, int, int, int]]:
        """(category, ordinary tasks, of them fully answered, raters with tasks in it) per prompt
        category of the study: DrawBench runs one evaluation per category, watched per category."""
        n_q = len(get_protocol(self.protocol()).questions)
        return [
            (c, int(n), int(done or 0), int(raters))
            for c, n, done, raters in self._query(
                "SELECT t.category, COUNT(t.task_id), "
                "  SUM(CASE WHEN (SELECT COUNT(*) FROM answers a WHERE a.task_id = t.task_id AND a.rater = t.rater) = ? "
                "      THEN 1 ELSE 0 END), COUNT(DISTINCT t.rater) "
                "FROM tasks t WHERE t.study = ? AND t.is_control = 0 GROUP BY t.category ORDER BY t.category",
                (n_q, self.study),
            )
        ]

    def study_settings(self) -> dict[str, dict]:
        """study -> its recorded settings (control threshold, fast-answer time, plan, ...): this
        study, or every study when `study` is None."""
        where, params = ("WHERE study = ?", (self.study,)) if self.study else ("", ())
        return {
            s: json.loads(settings)
            for s, settings in self._query(f"SELECT study, settings FROM studies {where}", params)
        }

    def answer_rows(self) -> list[tuple]:
        """Joined answer rows (this study, or every study when `study` is None), oldest first:
        study, protocol, task_id, rater, question, answer, model_a, model_b, prompt_id, category,
        is_control, expected (JSON), response_ms, answered_at."""
        where, params = ("WHERE a.study = ?", (self.study,)) if self.study else ("", ())
        return self._query(
            "SELECT a.study, s.protocol, a.task_id, a.rater, a.question, a.answer, t.model_a, t.model_b, t.prompt_id, "
            "t.category, t.is_control, t.expected, a.response_ms, a.answered_at "
            "FROM answers a JOIN tasks t ON t.task_id = a.task_id JOIN studies s ON s.study = a.study "
            f"{where} ORDER BY a.answered_at, a.rater, a.task_id, a.question",
            params,
        )

    # -- tables other modules keep (human_eval.participants, human_eval.payments) --------------
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of one read (`?` placeholders on both engines)."""
        return self._query(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction (SQLite: BEGIN IMMEDIATE): Tx.run writes, Tx.rows reads; all or nothing."""
        with self._tx() as cur:
            yield Tx(self, cur)

    def ensure_tables(self, ddl: str) -> None:
        """CREATE TABLE IF NOT EXISTS statements (`;`-separated), in one transaction."""
        with self._tx() as cur:
            for stmt in filter(str.strip, ddl.split(";")):
                cur.execute(stmt)


class Tx:
    """A transaction's cursor for modules outside the store: SQL written once with `?` placeholders."""

    def __init__(self, store: Store, cur):
        self._store, self._cur = store, cur

    def run(self, sql: str, params: tuple = ()) -> int:
        """Rows written by one statement (0 where ON CONFLICT DO NOTHING met a row already there)."""
        return self._store._exec(self._cur, sql, params)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        self._cur.execute(self._store._sql(sql), params)
        return list(self._cur.fetchall())

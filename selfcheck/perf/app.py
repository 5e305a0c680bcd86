"""Reports and the rating app: a report from 100K simulated ratings (report_speed.measure_report)
and the answer-submit latency of the app's storage layer (human_eval.store.Store.submit, what the
rating page calls on every answer) with 50 raters submitting concurrently, each in two tabs, with
deliberate double submits. tests/test_human_eval_load.py runs submit_load() and checks the database.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from human_eval.store import Store, Task

from .report_speed import measure_report
from .results import Row, Section

REPORT_TARGET_SECONDS = 5.0
SUBMIT_P95_TARGET_MS = 50.0


@dataclass(frozen=True)
class AppSettings:
    answers: int = 100_000  # simulated report answers (issue #7)
    resamples: int = 10_000  # bootstrap resamples of the report's CIs (the report's default)
    raters: int = 50  # concurrent raters (issue #7), each with a second racing tab
    answers_per_rater: int = 100

    def __post_init__(self) -> None:
        if min(self.answers, self.resamples, self.raters, self.answers_per_rater) < 1:
            raise ValueError("app: answers, resamples, raters and answers_per_rater must be >= 1")


@dataclass(frozen=True)
class SubmitLoad:
    tasks: list  # human_eval.store.Task, all raters
    latencies: list[float]  # seconds per Store.submit call
    wall: float
    stored: int  # answers stored
    kept: int  # submits that found an answer already kept (double submits)
    errors: list[str]

    def percentiles_ms(self) -> tuple[float, float, float]:
        p50, p95, p99 = np.percentile(np.array(self.latencies) * 1000, [50, 95, 99])
        return float(p50), float(p95), float(p99)


def choice(task) -> str:
    """The answer each rater gives (deterministic, so the database can be checked)."""
    return "left" if int(task.prompt_id) % 3 else "right"


def submit_load(
    db: Path | str, raters: int = 50, answers: int = 100, join_timeout: float = 60.0, pause_s: float = 0.0
) -> SubmitLoad:
    """A study of raters x answers tasks in the database `db` (a SQLite file or a postgresql:// URL);
    every rater submits all its tasks from one thread (every 5th twice: a double click; every 10th
    again with the other answer, which must not replace the first), `pause_s` between tasks (0: back
    to back, the worst case), while a second tab of the same rater races on every 4th task."""
    tasks = [
        Task(
            task_id=secrets.token_hex(12),
            rater=f"r{r:02d}",
            batch=1 + i // 50,
            position=1 + i % 50,
            prompt_id=str(i),
            category="load",
            caption=f"caption {i}",
            model_a="m1",
            model_b="m2",
            a_on_left=bool((r + i) % 2),
            images_a=(secrets.token_hex(16),),
            images_b=(secrets.token_hex(16),),
            is_control=False,
            control_kind="",
            expected=(),
        )
        for r in range(1, raters + 1)
        for i in range(answers)
    ]
    store = Store(db, "load")
    store.create(
        "coco_realism",
        "admin-" + secrets.token_urlsafe(32),
        {f"r{r:02d}": secrets.token_urlsafe(32) for r in range(1, raters + 1)},
        tasks,
        "perf",
        {"load": True},
    )
    by_rater: dict[str, list] = {}
    for t in tasks:
        by_rater.setdefault(t.rater, []).append(t)
    latencies: list[float] = []
    counts, errors = {"stored": 0, "kept": 0}, []
    lock = threading.Lock()
    start = threading.Barrier(raters * 2)

    def submit(rater: str, task, value: str) -> None:
        t0 = time.perf_counter()
        res = store.submit(rater, task.task_id, {"realism": value}, 1000)
        with lock:
            latencies.append(time.perf_counter() - t0)
            counts["stored"] += len(res.stored)
            counts["kept"] += len(res.kept)

    def rater_tab(rater: str) -> None:
        try:
            start.wait()
            for i, task in enumerate(by_rater[rater]):
                submit(rater, task, choice(task))
                if i % 5 == 0:
                    submit(rater, task, choice(task))
                if i % 10 == 0:
                    submit(rater, task, "right" if choice(task) == "left" else "left")
                if pause_s:
                    time.sleep(pause_s)
        except Exception as e:
            errors.append(repr(e))

    def second_tab(rater: str) -> None:
        try:
            start.wait()
            for task in by_rater[rater][::4]:
                submit(rater, task, choice(task))
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=f, args=(r,)) for r in by_rater for f in (rater_tab, second_tab)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=join_timeout)
    wall = time.perf_counter() - t0
    store.close()
    return SubmitLoad(tasks, latencies, wall, counts["stored"], counts["kept"], errors)


def measure(s: AppSettings) -> Section:
    sec = Section("app", settings=dict(s.__dict__))
    r = measure_report(s.answers, s.resamples)
    sec.measurements["report"] = dict(r.__dict__)
    sec.rows.append(
        Row(
            f"report from {r.answers} answers ({s.resamples} resamples)",
            r.seconds,
            "s",
            REPORT_TARGET_SECONDS,
            "<=",
            note=f"{r.cpu_seconds:.2f} CPU s; imports not counted ({r.import_seconds:.1f} s in this process)",
        )
    )
    with tempfile.TemporaryDirectory(prefix="imagen-bench-perf-") as tmp:
        load = submit_load(Path(tmp) / "ratings.sqlite", s.raters, s.answers_per_rater)
    p50, p95, p99 = load.percentiles_ms()
    sec.measurements["submit"] = {
        "raters": s.raters,
        "tabs_per_rater": 2,
        "answers_per_rater": s.answers_per_rater,
        "submit_calls": len(load.latencies),
        "wall_seconds": load.wall,
        "stored": load.stored,
        "kept_as_duplicate": load.kept,
        "errors": load.errors[:5],
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "submits_per_second": len(load.latencies) / load.wall,
    }
    sec.rows.append(
        Row(
            f"answer submit p95, {s.raters} concurrent raters",
            p95,
            "ms",
            SUBMIT_P95_TARGET_MS,
            "<=",
            note=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {len(load.latencies)} submits, {len(load.errors)} errors",
        )
    )
    sec.notes.append(
        "submit latency = human_eval.store.Store.submit on SQLite (WAL), the call the rating page makes per answer; "
        "Streamlit's own rerun of the page is not included"
    )
    return sec

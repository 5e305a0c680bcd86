"""`imagen-bench trials kill-server`: SIGKILL the rating server mid-batch; restart it; no answer
may be lost or duplicated.

    1. create a small coco_alignment study from synthetic images in WORKDIR/study (N raters);
    2. serve it with `imagen-bench rate STUDY --port P` (its own process group);
    3. N raters, each a headless Chromium context with their invite link, answer their queue
       through the real app; an answer counts as acknowledged when the page moves past it;
    4. K times, once the raters have between them acknowledged a randomly drawn number of answers
       (plus a random fraction of a second, so some kills land mid-submit), stop the server in
       turn by KILL_WAYS (SIGKILL its process group; SIGTERM or SIGKILL the `rate` parent alone, whose
       Streamlit child must end with it: the port must refuse connections within 30 s), and
       restart it on the same port; the raters reload and continue;
    5. read the database: every acknowledged answer is there exactly once with the value the
       rater submitted (first answer kept), no (rater, task, question) twice, the answer count
       equals the tasks answered, and every rater finished.
Writes WORKDIR/summary.json; exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from common.options import seed_int

from .harness import Check, console_script, finish, fresh_workdir, kill_group, start, wait_group_gone
from .rater_client import Rater
from .study_sources import synthetic_sources

CHROMIUM = "/usr/bin/chromium"
# how the kills stop the server, in turn: the whole group, or only the `rate` parent (a service
# manager's or `kill`'s SIGTERM, a SIGKILL no handler sees), after which its child must be gone too
KILL_WAYS = ("SIGKILL group", "SIGTERM parent", "SIGKILL parent")
PORT_CLOSE_S = 30.0
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class KillServerSettings:
    raters: int = 3
    kills: int = 3
    prompts: int = 9  # tasks per rater = prompts + controls (batches of --batch-size, a quarter controls)
    batch_size: int = 4
    seed: int = 0
    workdir: Path = Path("runs/trials/kill-server")
    port: int = 0  # 0: a free port
    max_delay: float = 1.5  # extra random wait after the drawn answer count, seconds
    timeout: float = 900.0  # the whole rating session

    def __post_init__(self):
        if not 1 <= self.raters <= 20:
            raise ValueError(f"--raters must be 1..20, got {self.raters}")
        if self.kills < 0:
            raise ValueError(f"--kills must be >= 0, got {self.kills}")
        if self.prompts < 2:
            raise ValueError(f"--prompts must be >= 2, got {self.prompts}")


def chromium_path() -> str | None:
    """The browser to drive, or None (then the trial cannot run)."""
    for p in (os.environ.get("IMAGEN_BENCH_CHROMIUM"), CHROMIUM, shutil.which("chromium")):
        if p and os.path.exists(p):
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_refused(port: int, timeout: float) -> bool:
    """Whether connections to 127.0.0.1:port are refused within `timeout` seconds (nothing listens)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except OSError:  # a timeout or reset: something may still be there
            pass
        time.sleep(0.1)
    return False


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200
    except OSError:
        return False


class Server:
    """`imagen-bench rate STUDY --port P`, started, SIGKILLed and restarted."""

    def __init__(self, study: Path, port: int, logs: Path):
        self.study, self.port, self.logs = study, port, logs
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None
        self.generation = 0  # bumped on every kill: raters waiting on the old server give up at once
        self.starts: list[float] = []  # seconds from start to healthy

    def start(self) -> None:
        self.proc = start(
            [*console_script(), "rate", str(self.study), "--port", str(self.port)],
            self.logs / f"server-{len(self.starts) + 1}.log",
        )
        self._t0 = time.monotonic()

    async def wait_healthy(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the rating server exited with {self.proc.returncode}; see {self.logs}")
            if await asyncio.to_thread(_healthy, self.url):
                self.starts.append(round(time.monotonic() - self._t0, 1))
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"the rating server did not answer at {self.url} within {timeout:.0f} s")

    def kill(self, how: str = "SIGKILL group") -> float:
        """Stop the server one of KILL_WAYS; seconds until its port refused connections (no stray child)."""
        self.generation += 1
        t0 = time.monotonic()
        if how == "SIGKILL group":
            kill_group(self.proc)
            wait_group_gone(self.proc.pid)
        else:  # the parent alone, as `kill PID` does: its Streamlit child must end with it
            sig = signal.SIGTERM if how == "SIGTERM parent" else signal.SIGKILL
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=60)
        if not port_refused(self.port, PORT_CLOSE_S):
            raise RuntimeError(
                f"after {how} the rating server still answers on port {self.port} "
                f"{PORT_CLOSE_S:.0f} s later: a child outlived `imagen-bench rate`"
            )
        return round(time.monotonic() - t0, 2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc, signal.SIGTERM)


@contextlib.contextmanager
def serving(study: Path, logs: Path):
    """`imagen-bench rate STUDY` on a free 127.0.0.1 port until the block ends; yields its base URL."""
    server = Server(study, free_port(), logs)
    server.start()
    try:
        asyncio.run(server.wait_healthy())
        yield server.url
    finally:
        server.stop()


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = KillServerSettings()
    p.add_argument(
        "--raters",
        type=int,
        default=d.raters,
        help=f"concurrent raters, one browser context each (default {d.raters})",
    )
    p.add_argument("--kills", type=int, default=d.kills, help=f"server SIGKILLs mid-batch (default {d.kills})")
    p.add_argument(
        "--prompts",
        type=int,
        default=d.prompts,
        help=f"prompts in the study: every rater rates each once (default {d.prompts})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"tasks per batch, a quarter of them controls (default {d.batch_size})",
    )
    p.add_argument("--seed", type=seed_int, default=d.seed, help="seed of the kill moments and the study plan")
    p.add_argument("--workdir", type=Path, default=d.workdir, help=f"trial work directory (default {d.workdir})")
    p.add_argument("--port", type=int, default=d.port, help="server port (default: a free one)")


def run(args: argparse.Namespace) -> int:
    s = KillServerSettings(
        raters=args.raters,
        kills=args.kills,
        prompts=args.prompts,
        batch_size=args.batch_size,
        seed=args.seed,
        workdir=Path(args.workdir),
        port=args.port,
    )
    return run_trial(s)


def make_study(s: KillServerSettings, wd: Path):
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study

    captions, model, _ = synthetic_sources(wd / "sources", n=s.prompts, size=32)
    return create_study(
        wd / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=s.raters, batch_size=s.batch_size, control_share=0.25, seed=s.seed),
        ),
    )


def run_trial(s: KillServerSettings) -> int:
    browser = chromium_path()
    if browser is None:
        raise ValueError(f"chromium not found at {CHROMIUM} (or $IMAGEN_BENCH_CHROMIUM): apt-get install chromium")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        raise ValueError(
            "the playwright python package is missing: pip install -c constraints.txt '.[browser]'"
        ) from None
    t_start = time.monotonic()
    wd = fresh_workdir(s.workdir)
    for old in (wd / "study", wd / "sources", wd / "logs"):
        shutil.rmtree(old, ignore_errors=True)
    study = make_study(s, wd)
    store = study.store()
    secrets = json.loads((study.root / "secrets.json").read_text())
    queues = {r: store.tasks(r) for r in sorted(secrets["raters"])}
    total = sum(len(q) for q in queues.values())
    print(
        f"kill-server: {s.raters} raters x {total // s.raters} tasks, {s.kills} kills, seed {s.seed}, workdir {wd}",
        flush=True,
    )
    server = Server(study.root, s.port or free_port(), wd / "logs")
    try:
        logs, kills = asyncio.run(asyncio.wait_for(_session(s, browser, server, secrets, queues, total), s.timeout))
    finally:
        server.stop()
    checks, facts = _check(
        study.root / "ratings.sqlite" if (study.root / "ratings.sqlite").exists() else study.db_url,
        queues,
        logs,
        kills,
        s,
    )
    facts["server_start_s"] = server.starts
    return finish(wd, "kill-server", checks, facts, time.monotonic() - t_start)


async def _session(s: KillServerSettings, browser_path: str, server: Server, secrets: dict, queues: dict, total: int):
    from playwright.async_api import async_playwright

    rng = random.Random(s.seed)
    # kill after these many acknowledged answers (distinct, inside the session: mid-batch, not at either end)
    targets = sorted(rng.sample(range(1, total), min(s.kills, total - 1)))
    acked = [0]
    up = asyncio.Event()
    server.start()
    await server.wait_healthy()
    up.set()

    async def ready() -> None:
        await up.wait()

    async def killer() -> list[dict]:
        done, last = [], 0
        for target in targets:
            target = max(target, last + 1)  # progress between kills: each kill interrupts new work
            if target >= total:
                break
            while acked[0] < target:
                await asyncio.sleep(0.05)
            delay = rng.uniform(0, s.max_delay)
            end = time.monotonic() + delay
            while time.monotonic() < end and acked[0] < total - 1:  # the kill must land while answers are pending:
                await asyncio.sleep(0.02)  # fast raters could otherwise finish the session inside the delay
            up.clear()
            at = last = acked[0]
            how = KILL_WAYS[len(done) % len(KILL_WAYS)]
            port_free_s = await asyncio.to_thread(server.kill, how)
            t0 = time.monotonic()
            server.start()
            await server.wait_healthy()
            up.set()
            done.append(
                {
                    "n": len(done) + 1,
                    "how": how,
                    "port_free_s": port_free_s,
                    "after_answers": target,
                    "delay_s": round(delay, 2),
                    "acked_at_kill": at,
                    "mid_session": at < total,
                    "restart_s": round(time.monotonic() - t0, 1),
                }
            )
            print(
                f"  kill {len(done)} ({how}) after {at} acknowledged answers (+{delay:.2f} s); back in {time.monotonic() - t0:.1f} s",
                flush=True,
            )
        return done

    def on_ack() -> None:
        acked[0] += 1

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
        raters = []
        for name, tasks in queues.items():
            ctx = await b.new_context(viewport={"width": 1200, "height": 1000})
            sizes: dict[int, int] = {}
            for t in tasks:
                sizes[t.batch] = sizes.get(t.batch, 0) + 1
            raters.append(
                Rater(
                    ctx,
                    name,
                    f"{server.url}/?t={secrets['raters'][name]}",
                    [t.task_id for t in tasks],
                    sizes,
                    lambda: server.generation,
                    ready,
                    on_ack,
                )
            )
        results = await asyncio.gather(killer(), *(r.run() for r in raters))
        await b.close()
    return list(results[1:]), results[0]


def _check(db: str, queues: dict, logs: list, kills: list[dict], s: KillServerSettings) -> tuple[list[Check], dict]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT rater, task_id, question, shown, answer FROM answers").fetchall()
        dups = con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM answers GROUP BY rater, task_id, question HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    finally:
        con.close()
    stored: dict[tuple[str, str], list[str]] = {}
    for rater, task, _question, shown, _answer in rows:
        stored.setdefault((rater, task), []).append(shown)
    acked = {(lg.rater, t): v for lg in logs for t, v in lg.acked.items()}
    after_reload = {(lg.rater, t): v for lg in logs for t, v in lg.acked_after_reload.items()}
    all_acked = {**acked, **after_reload}
    missing = [k for k in all_acked if k not in stored]
    twice = [k for k in all_acked if len(stored.get(k, [])) > 1]
    wrong = [k for k, v in all_acked.items() if stored.get(k) and stored[k][0] != v]
    reoffered = sum(len(lg.reoffered) for lg in logs)
    total = sum(len(q) for q in queues.values())
    unfinished = [lg.rater for lg in logs if not lg.finished]
    answered_tasks = len(stored)
    checks = [
        Check(
            "kills delivered mid-session",
            len(kills) == min(s.kills, total - 1) and all(k["mid_session"] for k in kills),
            f"{len(kills)} of {s.kills}, {sum(k['mid_session'] for k in kills)} while answers were still pending",
        ),
        Check(
            "every rater finished their queue",
            not unfinished,
            f"{len(logs) - len(unfinished)}/{len(logs)} raters"
            + (f"; unfinished: {', '.join(unfinished)}" if unfinished else ""),
        ),
        Check(
            "no acknowledged answer lost",
            not missing and not reoffered,
            f"{len(all_acked)} acknowledged ({len(after_reload)} in flight at a kill, found kept after reload), "
            f"{len(missing)} missing, {reoffered} offered again",
        ),
        Check("no duplicate (rater, task, question)", dups == 0 and not twice, f"{dups} duplicated keys"),
        Check("stored answer = the acknowledged one (first answer kept)", not wrong, f"{len(wrong)} differ"),
        Check(
            "answers = tasks answered = tasks",
            len(rows) == answered_tasks == total == len(all_acked),
            f"{len(rows)} answers, {answered_tasks} tasks answered, {total} tasks, {len(all_acked)} acknowledged",
        ),
    ]
    facts = {
        "settings": {**asdict(s), "workdir": str(s.workdir)},
        "tasks": total,
        "answers": len(rows),
        "kills": kills,
        "acknowledged": len(acked),
        "in_flight_kept": len(after_reload),
        "retried_after_kill": sum(len(v) - 1 for lg in logs for v in lg.attempts.values()),
        "reloads": sum(lg.reloads for lg in logs),
        "client_errors": [e for lg in logs for e in lg.errors][:20],
    }
    return checks, facts

"""The reliability trials at CI size: `imagen-bench trials kill-sweep` (SIGKILL a real sweep
subprocess at random moments, rerun, compare with an uninterrupted run) and `kill-server` (SIGKILL
the real rating server under raters in headless Chromium). Also: the checkers catch what they
claim to catch, and regressions for the two run-folder bugs the kill trials found."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3

import pandas as pd
import pytest

from bench.sweep.store import RunStore
from selfcheck.trials import kill_server, kill_sweep
from selfcheck.trials.rater_client import RaterLog
from selfcheck.trials.sweep_check import compare

os.environ.setdefault("IMAGEN_BENCH_THREADS", "1")


def _args(module, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def kill_sweep_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("kill-sweep")
    code = kill_sweep.run(
        _args(
            kill_sweep, ["--kills", "3", "--seed", "1", "--spec", "small", "--verify-every", "3", "--workdir", str(wd)]
        )
    )
    return code, wd, json.loads((wd / "summary.json").read_text())


@pytest.mark.slow
def test_kill_sweep_small(kill_sweep_run):
    code, wd, summary = kill_sweep_run
    assert code == 0, summary["checks"]
    assert summary["passed"] and summary["trial"] == "kill-sweep"
    assert len(summary["kills"]) == 3 and sum(summary["kill_phases"].values()) == 3
    assert all(0 <= k["at_s"] for k in summary["kills"])
    names = {c["name"]: c for c in summary["checks"]}
    for name in (
        "images byte-identical (sha256)",
        "manifest rows = reference",
        "metrics and results = reference",
        "no leftover temp files",
        "uninterrupted rerun exits 0",
        "kills delivered",
    ):
        assert names[name]["passed"], names[name]
    assert summary["verifications"] >= 1 and all(r["exit"] == 0 for r in summary["reruns"])
    assert len(pd.read_parquet(wd / "reference" / "manifest.parquet")) == summary["images"] == 8


@pytest.mark.slow
def test_sweep_compare_catches_damage(kill_sweep_run, tmp_path):
    """The yardstick is not vacuous: a changed pixel, a duplicated manifest row, a temp file fail."""
    _, wd, _ = kill_sweep_run
    ref = wd / "reference"
    assert all(c.passed for c in compare(ref, ref))
    bad = tmp_path / "bad"
    shutil.copytree(ref, bad)
    img = sorted((bad / "images").rglob("*.png"))[0]
    img.write_bytes(img.read_bytes()[:-1] + bytes([img.read_bytes()[-1] ^ 1]))
    m = pd.read_parquet(bad / "manifest.parquet")
    pd.concat([m, m.iloc[:1]]).to_parquet(bad / "manifest.parquet", index=False)
    (bad / "images" / ".x.png.1.tmp").write_bytes(b"")
    failed = {c.name for c in compare(ref, bad) if not c.passed}
    assert failed == {"images byte-identical (sha256)", "manifest rows = reference", "no leftover temp files"}


def test_resume_removes_temp_files_left_by_a_kill(tmp_path):
    """Regression (found building the kill-sweep trial): a kill inside an atomic write left `.NAME.PID.tmp` files in
    the run folder for good; a resumed run now removes them."""
    store = RunStore(tmp_path / "run")
    assert store.init(b"[sweep]\n", "abc", {}) is False
    leftovers = [
        tmp_path / "run" / "images" / "c1" / ".0_0.png.4242.tmp",
        tmp_path / "run" / ".manifest.parquet.17.tmp",
        tmp_path / "run" / "metric_cache" / "c1" / "fid.json.tmp",
        tmp_path / "run" / "summary.json.tmp",
    ]
    for f in leftovers:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"torn")
    keep = tmp_path / "run" / "images" / "c1" / "0_0.png"
    keep.write_bytes(b"png")
    assert store.init(b"[sweep]\n", "abc", {}) is True
    assert not any(f.exists() for f in leftovers) and keep.read_bytes() == b"png"


def test_a_trials_summary_is_written_whole_or_not_at_all(tmp_path, monkeypatch, capsys):
    """harness.finish writes WORKDIR/summary.json through the atomic helper: a failure while
    writing it leaves the previous summary as it was and no temp file."""
    from pathlib import Path

    import common.files
    from selfcheck.trials.harness import Check, finish

    assert finish(tmp_path, "t", [Check("ok", True)], {"where": Path("w")}, 1.0) == 0
    first = (tmp_path / "summary.json").read_text()
    assert json.loads(first) == {
        "trial": "t",
        "passed": True,
        "seconds": 1.0,
        "where": "w",
        "checks": [{"name": "ok", "passed": True, "detail": ""}],
    }

    def no_rename(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(common.files.os, "replace", no_rename)
    with pytest.raises(OSError, match="No space"):
        finish(tmp_path, "t", [Check("ok", False)], {}, 2.0)
    assert (tmp_path / "summary.json").read_text() == first and sorted(os.listdir(tmp_path)) == ["summary.json"]
    capsys.readouterr()


def test_initialisation_interrupted_by_a_kill_is_redone(tmp_path):
    """Regression (found building the kill-sweep trial): a kill between run.json and spec.toml (written last) left
    a folder every rerun refused as "not a run folder"; it holds no results, so it is initialised again."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    # a writer that cannot be alive: Linux PIDs stay below PID_MAX_LIMIT = 2**22 (a small PID such as 999
    # was once a live Python process of the suite, and the torn file was rightly left alone)
    torn = run / f".spec.toml.{2**22}.tmp"
    torn.write_bytes(b"[sw")
    assert RunStore(run).init(b"[sweep]\n", "abc", {}) is False
    assert (run / "spec.toml").read_bytes() == b"[sweep]\n" and not torn.exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a run folder"):
        RunStore(other).init(b"[sweep]\n", "abc", {})


def test_server_checks_catch_lost_duplicate_and_changed_answers(tmp_path):
    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE answers (rater TEXT, task_id TEXT, question TEXT, shown TEXT, answer TEXT)"
    )  # no UNIQUE: simulate damage
    con.executemany(
        "INSERT INTO answers VALUES (?, ?, 'caption', ?, ?)",
        [
            ("r01", "t1", "yes", "yes"),
            ("r01", "t2", "no", "no"),
            ("r01", "t2", "no", "no"),
            ("r01", "t3", "somewhat", "somewhat"),
        ],
    )
    con.commit()
    con.close()
    log = RaterLog("r01", acked={"t1": "yes", "t2": "no", "t3": "yes", "t4": "no"}, finished=True)
    s = kill_server.KillServerSettings(raters=1, kills=0, workdir=tmp_path)
    checks, facts = kill_server._check(str(db), {"r01": [1, 2, 3, 4]}, [log], [], s)
    failed = {c.name for c in checks if not c.passed}
    assert failed == {
        "no acknowledged answer lost",
        "no duplicate (rater, task, question)",
        "stored answer = the acknowledged one (first answer kept)",
        "answers = tasks answered = tasks",
    }
    assert facts["answers"] == 4


@pytest.mark.slow
@pytest.mark.browser
def test_kill_server_small(tmp_path):
    if kill_server.chromium_path() is None:
        pytest.skip(
            f"chromium not installed at {kill_server.CHROMIUM}: run `make system-deps` (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip(
        "playwright.async_api", reason="playwright (python package) not installed: pip install '.[browser]'"
    )
    wd = tmp_path / "kill-server"
    code = kill_server.run(
        _args(kill_server, ["--raters", "2", "--kills", "1", "--prompts", "3", "--seed", "1", "--workdir", str(wd)])
    )
    summary = json.loads((wd / "summary.json").read_text())
    assert code == 0, summary["checks"]
    assert summary["passed"] and all(c["passed"] for c in summary["checks"])
    # 2 raters x (1 prompt + 2 alignment controls: the other 2 prompts are the control pool and swap images)
    assert summary["tasks"] == 6 and summary["answers"] == 6
    assert len(summary["kills"]) == 1 and summary["kills"][0]["mid_session"]
    assert summary["acknowledged"] + summary["in_flight_kept"] == 6


@pytest.mark.slow
def test_concurrent_sweep_small(tmp_path):
    """Two sweeps on one folder (the second refused, or waiting with --wait): the first always
    finishes, the folder equals the reference, nothing is generated twice."""
    import json

    from selfcheck.trials import concurrent_sweep

    args = argparse.Namespace(rounds=2, seed=1, workdir=tmp_path / "cs", spec="small")
    assert concurrent_sweep.run(args) == 0
    summary = json.loads((tmp_path / "cs" / "summary.json").read_text())
    assert summary["passed"] and len(summary["rounds"]) == 2

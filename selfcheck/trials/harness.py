"""Shared pieces of the kill trials: PASS/FAIL checks, the JSON summary in the work directory,
and child processes in their own process group (so SIGKILL reaches the whole tree and nothing
else)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common.files import write_text_atomic


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def console_script() -> list[str]:
    """The `imagen-bench` entry point of this interpreter's environment (or `python -m imagen_bench.cli`)."""
    exe = Path(sys.executable).with_name("imagen-bench")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "imagen_bench.cli"]


def child_env() -> dict[str, str]:
    """Children run with $IMAGEN_BENCH_THREADS torch threads (default 1): the same thread count
    for every run, so float reductions (hence pixels) are ordered the same way."""
    threads = os.environ.get("IMAGEN_BENCH_THREADS", "1")
    return {
        **os.environ,
        "IMAGEN_BENCH_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start(cmd: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session (its own process group), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=child_env(),
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
    """Send `sig` to the child's own process group (started by `start`) and reap the child."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def wait_group_gone(pgid: int, timeout: float = 30.0) -> None:
    """After a SIGKILL of the group: wait until no member is left (grandchildren are reaped by init)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"process group {pgid} still alive {timeout:.0f} s after SIGKILL")


def finish(workdir: Path, trial: str, checks: list[Check], facts: dict, seconds: float) -> int:
    """Print the PASS/FAIL table, write WORKDIR/summary.json, return the exit status."""
    passed = all(c.passed for c in checks) and bool(checks)
    summary = {
        "trial": trial,
        "passed": passed,
        "seconds": round(seconds, 1),
        **facts,
        "checks": [asdict(c) for c in checks],
    }
    path = workdir / "summary.json"
    write_summary(path, summary)
    width = max((len(c.name) for c in checks), default=0)
    print(f"\n== {trial}: {'PASS' if passed else 'FAIL'} in {seconds:.0f} s ==")
    for c in checks:
        print(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.detail}")
    print(f"summary: {path}")
    return 0 if passed else 1


def write_summary(path: Path, summary: dict) -> None:
    """A trial's JSON summary, written whole or not at all (common.files: `.NAME.PID.tmp`, renamed)."""
    write_text_atomic(path, json.dumps(summary, indent=2, default=str) + "\n")


def fresh_workdir(workdir: Path) -> Path:
    """The trial's work directory: created if missing; refuses one with unrelated content."""
    workdir = Path(workdir)
    if (
        workdir.exists()
        and any(workdir.iterdir())
        and not (workdir / "summary.json").exists()
        and not (workdir / ".trial").exists()
    ):
        raise ValueError(
            f"{workdir} exists and is not a trial work directory; choose another --workdir (nothing was changed)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".trial").touch()
    return workdir

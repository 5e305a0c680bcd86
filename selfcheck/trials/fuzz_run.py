"""Run one `imagen-bench` command line and capture what the user would see: in this process via
imagen_bench.cli.main (the console script's entry point) or as a real subprocess of the console script."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from imagen_bench.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int | str  # exit status, or "timeout"
    stdout: str
    stderr: str
    seconds: float


class _Timeout(BaseException):  # BaseException: product code's `except Exception` must not swallow it
    pass


def console_script() -> list[str]:
    exe = Path(sys.executable).with_name("imagen-bench")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "imagen_bench.cli"]


def run_inprocess(argv: list[str], timeout: float) -> Outcome:
    """imagen_bench.cli.main(argv) with stdout/stderr captured; an exception escaping main() is printed
    as the interpreter would print it (a traceback reaching the user)."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code: int | str = main(list(argv))
            except SystemExit as e:  # argparse usage errors
                code = e.code if isinstance(e.code, int) else 1
            except _Timeout:
                code = "timeout"
            except BaseException:
                traceback.print_exc(file=err)
                code = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return Outcome(code, out.getvalue(), err.getvalue(), time.perf_counter() - t0)


def run_subprocess(argv: list[str], timeout: float) -> Outcome:
    env = {
        **os.environ,
        "IMAGEN_BENCH_THREADS": os.environ.get("IMAGEN_BENCH_THREADS", "1"),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    t0 = time.perf_counter()
    try:
        p = subprocess.run([*console_script(), *argv], capture_output=True, text=True, timeout=timeout, env=env)
        return Outcome(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)
    except subprocess.TimeoutExpired as e:

        def text(b) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        return Outcome("timeout", text(e.stdout), text(e.stderr), time.perf_counter() - t0)

"""The rating server's process (`imagen-bench rate`): the Streamlit child never outlives its parent.

A service manager or `kill` stops `rate` with SIGTERM, a terminal with SIGINT or SIGHUP; a stray
Streamlit child would keep answering raters on the port and block the restart ("port in use"). So:
  - the child runs in its own process group, and the parent forwards SIGTERM / SIGINT / SIGHUP to
    that group (a terminal's Ctrl-C reaches only the parent's group);
  - when the child has exited (or, after a forwarded signal, failed to within GRACE_S), whatever is
    left of its group is killed;
  - on Linux the child asks the kernel (prctl PR_SET_PDEATHSIG) for SIGKILL when the parent dies,
    which covers a SIGKILL of the parent, where no handler runs. Answers are committed per submit,
    so a killed server loses nothing (the kill-server trial checks it).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import UserError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 10.0  # a forwarded stop signal gets this long before the group is killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class Served:
    code: int  # the child's exit status (negative: ended by that signal)
    stopped_by: int | None  # the signal that stopped `rate` (forwarded to the child), or None


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, before the links are printed and the child starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit binds: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} on {host} is already in use (another rating server?); stop it or choose another --port"
                ) from None
            raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """preexec_fn for the child (Linux): SIGKILL when the parent dies; exit at once if it already has."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, in the parent: the child only calls it

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would kill us later
            os._exit(1)

    return in_child


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the group is already gone
        pass


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the child has exited, left unreaped: its pid (the group's id) cannot be reused meanwhile,
    so a kill of that group reaches only what the child left behind."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _wait_exit(proc: subprocess.Popen, stopped: list[int], grace: float | None) -> None:
    """Until the child exits; once a stop signal came (or with `grace` from now), a child still
    running after that long has its group killed."""
    deadline = None if grace is None else time.monotonic() + grace
    while not _exited(proc):
        if stopped and deadline is None:
            deadline = time.monotonic() + GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            _signal_group(proc.pid, signal.SIGKILL)
        time.sleep(0.1)


def serve(cmd: list[str], env: dict[str, str]) -> Served:
    """Run `cmd` as the server child until it exits or `rate` is stopped; no group member outlives this call."""
    stopped: list[int] = []
    proc = subprocess.Popen(cmd, env=env, process_group=0, preexec_fn=_die_with_parent(os.getpid()))

    def forward(signum: int, frame) -> None:
        stopped.append(signum)
        _signal_group(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        _wait_exit(proc, stopped, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not _exited(proc):  # leaving on an error of our own: stop the child as a signal would
            _signal_group(proc.pid, signal.SIGTERM)
            _wait_exit(proc, stopped, GRACE_S)
        _signal_group(proc.pid, signal.SIGKILL)  # anything the child started and left behind
        code = proc.wait()
    return Served(code, stopped[0] if stopped else None)

"""Where a command will write, checked before any work: one clear line instead of a traceback
after minutes of computation (a read-only folder, a file where a folder is needed, a full disk)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class NotWritable(ValueError):
    """`cannot write OUT: <reason>`; the router prints it as one line (exit 2)."""


def check_writable(out: str | Path, folder: bool = True) -> Path:
    """`out` (a folder to create or fill when `folder`, else a file to create) can be written:
    its nearest existing ancestor is a writable folder on a writable file system. Creates nothing."""
    out = Path(out)
    if out.exists() and folder and not out.is_dir():
        raise NotWritable(f"cannot write {out}: it is a file, not a folder")
    if out.exists() and not folder and out.is_dir():
        raise NotWritable(f"cannot write {out}: it is a folder, not a file")
    probe_dir = out if (folder and out.is_dir()) else out.parent
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise NotWritable(f"cannot write {out}: {probe_dir} is a file, not a folder")
    try:  # a real write: catches read-only mounts and full disks that permission bits do not show
        fd, name = tempfile.mkstemp(prefix=".imagen-bench-probe-", dir=probe_dir)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as e:
        raise NotWritable(f"cannot write {out}: {e.strerror or e}") from None
    return out


def python_process_alive(pid: int) -> bool:
    """True when `pid` is a running Python process on this machine (the suite's writers are all
    Python: a reused PID of anything else does not keep a leftover alive). Without /proc: False."""
    proc = Path(f"/proc/{int(pid)}")
    try:  # comm: the executable's name (cmdline can read empty while a process is starting)
        return any(b"python" in (proc / part).read_bytes() for part in ("comm", "cmdline"))
    except OSError:
        return False

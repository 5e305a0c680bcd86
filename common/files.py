"""Files: where a command will write, checked before any work (one clear line instead of a
traceback after minutes of computation: a read-only folder, a file where a folder is needed, a full
disk); content checksums; and the one family of atomic writes.

Atomic writes: the data goes to `.NAME.PID.tmp` beside NAME and is renamed over NAME only when
complete, so a reader never sees half a file and a kill leaves the old file (or none) plus a temp
file that RunStore.remove_temp_files recognises by its name (the PID says whether its writer lives).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


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


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temp_path(path: Path) -> Path:
    """The temp file an atomic write of `path` uses: `.NAME.PID.tmp` in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield the temp path to write `path` through; on success it is renamed over `path`, on any
    error it is removed. With `mode` (e.g. 0o600 for secrets) the temp file is created with that
    mode before the caller writes a byte, so the content is never readable more widely."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    if mode is not None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # a leftover temp file keeps its old mode through O_CREAT
        os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, mode: int | None = None) -> None:
    with atomic_path(path, mode) as tmp:
        with open(tmp, "r+b" if mode is not None else "wb") as f:
            f.write(data)
            f.truncate()


def write_text_atomic(path: str | Path, text: str, mode: int | None = None) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_json_atomic(path: str | Path, data, mode: int | None = None) -> None:
    """JSON with sorted keys and 2-space indent (diff-friendly), written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def write_parquet_atomic(df, path: str | Path) -> None:
    """A pandas DataFrame as parquet (no index), written atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)

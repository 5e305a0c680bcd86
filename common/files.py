"""Files: where a command will write, checked before any work (one clear line instead of a
traceback after minutes of computation: a read-only folder, a file where a folder is needed, a full
disk); content checksums; the one family of atomic writes; and the one rule for output folders
(staged_folder: built beside the target, published whole).

Atomic writes: the data goes to `.NAME.PID.tmp` beside NAME and is renamed over NAME only when
complete, so a reader never sees half a file and a kill leaves the old file (or none) plus a temp
file that RunStore.remove_temp_files recognises by its name (the PID says whether its writer lives).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
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


def read_json(path: str | Path, remedy: str):
    """The value in a JSON file a user may have edited (a record the suite wrote, a config), or one
    line (ValueError) naming the file, what is wrong with it and `remedy` (what the user can do)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); {remedy}") from None


def read_json_object(path: str | Path, remedy: str) -> dict:
    """read_json of a file that must hold a JSON object; anything else is one line alike."""
    data = read_json(path, remedy)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}; {remedy}")
    return data


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


# -- output folders ------------------------------------------------------------------------------
# Every folder a command makes whole (a report, a leaderboard, a study, a COCO export, a packed
# cascade) is built in `.NAME.partial-PID-RANDOM` beside NAME and renamed into place only when
# complete: a reader never sees half a folder, and a failure (a full disk, a bad input found late, a
# kill) never leaves one where the next run would refuse it. The PID says whether the writer lives:
# the next run into the same parent removes the leftovers of writers that are gone. `.NAME.replaced-
# PID-RANDOM` holds the folder a forced replacement moves aside for the moment of the swap.
STAGING, REPLACED = ".partial-", ".replaced-"
LEGACY_STAGING = (".creating-",)  # `study create` before the one publisher: its leftovers are removed alike
# write errors that say "the disk, not the input": a file inside the folder being written is named
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _writer_pid(leftover: Path, marker: str) -> int | None:
    """PID of `.NAME<marker>PID-RANDOM`, None for a name not of that form."""
    pid = leftover.name.split(marker, 1)[1].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def remove_stale_staging(target: str | Path) -> list[Path]:
    """Remove the staging folders of `target` whose writer process is gone; a replaced folder whose
    swap a kill interrupted is put back when `target` is missing, else removed. Returns what was handled."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    handled = []
    for marker in (STAGING, REPLACED, *LEGACY_STAGING):
        for leftover in sorted(target.parent.glob(f".{glob.escape(target.name)}{marker}*")):
            pid = _writer_pid(leftover, marker)
            if pid is None or python_process_alive(pid):
                continue
            if marker == REPLACED and not target.exists():
                os.replace(leftover, target)  # the kill came between moving the old folder aside and the swap
            else:
                shutil.rmtree(leftover, ignore_errors=True)
            handled.append(leftover)
    return handled


@contextlib.contextmanager
def staged_folder(target: str | Path, replace: bool = False) -> Iterator[Path]:
    """The one way a folder is published. Yields an empty staging folder beside `target` (its
    parents made); when the block completes the staging folder becomes `target` whole, by one rename.
    `target` may be missing or an empty folder; anything else there (a user's folder, a file) is
    refused (FileExistsError) before the block runs and again at the end (it may have appeared
    meanwhile), unless `replace`: then it is swapped out atomically and removed, or put back if the
    swap fails. On any error (an interrupt too) the staging folder is removed and `target` is left as
    it was; a write error of the disk names `target` and the file (NotWritable: one line)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)  # --out names a new folder, made with its parents (as sweep's)
    remove_stale_staging(target)
    if not replace:
        _refuse_occupied(target, "")
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = target.with_name(f".{target.name}{STAGING}{tag}")
    staging.mkdir(mode=0o777)  # the umask applies: published like any new folder (mkdtemp's 0700 would not be)
    try:
        try:
            yield staging
        except OSError as e:
            if e.errno not in WRITE_ERRNOS:
                raise
            raise NotWritable(
                f"cannot write {_published_name(e.filename, staging, target)}: {e.strerror or e}; "
                f"nothing was written there"
            ) from e
        _publish(staging, target, replace, tag)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _occupied(target: Path) -> bool:
    """Something is at `target` that publishing would overwrite: anything but an empty folder."""
    return target.exists() and not (target.is_dir() and not any(target.iterdir()))


def _refuse_occupied(target: Path, when: str) -> None:
    if _occupied(target):
        raise FileExistsError(f"{target} exists and is not empty{when}; choose a new --out")


def _published_name(filename, staging: Path, target: Path) -> Path:
    """Where the file a write error names would have been published (`target` when it names none)."""
    try:
        return target / Path(filename).relative_to(staging)
    except (TypeError, ValueError):
        return target


def _publish(staging: Path, target: Path, replace: bool, tag: str) -> None:
    if not _occupied(target):
        os.replace(staging, target)  # rename(2) replaces an empty folder atomically
        return
    if not replace:
        _refuse_occupied(target, " (it appeared while this command ran)")
    old = target.with_name(f".{target.name}{REPLACED}{tag}")
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        os.replace(old, target)  # put the previous folder back
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:  # a file where the folder goes, replaced as asked
        old.unlink(missing_ok=True)

"""Write a report folder all at once: everything goes to a hidden staging folder beside the
target, which is renamed into place only when complete. An existing folder is never touched
without --force, and --force replaces only a folder this package wrote (it holds report.json)."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from common.errors import UserError

MARKER = "report.json"


def check_target(out: Path, force: bool) -> None:
    """Fail before any work if `out` may not be written."""
    if out.exists() and not force:
        raise UserError(f"{out} already exists; choose another --out or pass --force to replace it")
    if out.exists() and not (out / MARKER).is_file():
        raise ValueError(f"{out} exists and is not a report folder (no {MARKER}); refusing to replace it even with --force")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"parent folder {out.parent} of --out does not exist")


@contextmanager
def staged(out: Path, force: bool) -> Iterator[Path]:
    """Yield a staging folder; on success it becomes `out` (replacing the old report when forced),
    on any error it is removed and `out` is left exactly as it was."""
    out = Path(out)
    check_target(out, force)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; a published report is readable like any new folder
    try:
        yield staging
        if not (staging / MARKER).is_file():
            raise RuntimeError(f"report was not completed ({MARKER} missing)")
        check_target(out, force)  # again: someone may have created it while we worked
        if out.exists():
            old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
            os.replace(out, old)
            try:
                os.replace(staging, out)
            except OSError:
                os.replace(old, out)  # put the previous report back
                raise
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

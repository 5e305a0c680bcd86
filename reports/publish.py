"""Write a report folder all at once: everything goes to a hidden staging folder beside the target
(common.files.staged_folder; its parents are made), which is renamed into place only when complete.
An existing folder is never touched without --force, and --force replaces only a folder this
package wrote (it holds report.json)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import UserError
from common.files import staged_folder

MARKER = "report.json"


def check_target(out: Path, force: bool) -> None:
    """Fail before any work if `out` may not be written."""
    if out.exists() and not force:
        raise UserError(f"{out} already exists; choose another --out or pass --force to replace it")
    if out.exists() and not (out / MARKER).is_file():
        raise ValueError(
            f"{out} exists and is not a report folder (no {MARKER}); refusing to replace it even with --force"
        )


@contextmanager
def staged(out: Path, force: bool) -> Iterator[Path]:
    """Yield a staging folder (common.files.staged_folder: beside `out`, published whole, stale ones of
    killed reports removed); on success it becomes `out` (replacing the old report when forced), on
    any error it is removed and `out` is left exactly as it was."""
    out = Path(out)
    check_target(out, force)
    with staged_folder(out, replace=force) as staging:
        yield staging
        if not (staging / MARKER).is_file():
            raise RuntimeError(f"report was not completed ({MARKER} missing)")
        check_target(out, force)  # again: someone may have created it while we worked

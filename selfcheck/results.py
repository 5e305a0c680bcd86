"""A self-check simulation's results folder, shared by `imagen-bench coverage` and `sequential`:
refused when it exists and is not empty, written whole (csv + md + json, common.files.staged_folder)."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.files import check_writable, staged_folder, write_json_atomic, write_text_atomic
from common.version import __version__


def fresh_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; refusing to overwrite it (choose a new --out)")
    check_writable(out)


def stamp(kind: str) -> dict:
    """What every results file records: format, version, when, on what machine."""
    return {
        "format": f"imagen-bench-{kind}/1",
        "package_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
    }


def publish(out: Path, stem: str, tables: dict[str, pd.DataFrame], markdown: str, made: dict) -> None:
    """OUT/<stem>.md, OUT/<stem>.json and OUT/<name>.csv for each of `tables`."""
    with staged_folder(out) as stage:  # published whole: a full disk or a kill leaves no half folder
        for name, frame in tables.items():
            frame.to_csv(stage / f"{name}.csv", index=False)
        write_text_atomic(stage / f"{stem}.md", markdown)
        write_json_atomic(stage / f"{stem}.json", made)

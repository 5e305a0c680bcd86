"""A stage's training log, written by imagen.train and read by the report (no torch here).

log.csv        step,loss,lr,seconds of this run
init_log.csv   only for runs started from other weights: the log of everything that trained
               those weights, already in total steps
"""

from __future__ import annotations

from pathlib import Path

LOG_HEADER = "step,loss,lr,seconds"


def split_log_rows(rows: list[str], step: int) -> tuple[list[str], list[str]]:
    """log.csv rows (no header) -> (rows of steps <= step, rows of later steps): what the weights
    saved at `step` went through, and what a run logged past its last checkpoint."""
    after = [int(r.split(",", 1)[0]) > step for r in rows]
    return [r for r, a in zip(rows, after) if not a], [r for r, a in zip(rows, after) if a]


def training_history(directory: Path, upto: int | None = None) -> list[str]:
    """CSV rows (no header) of all training behind a stage's weights, numbered in total steps:
    init_log.csv (history of the init_from weights, already in total steps), then log.csv with
    step and seconds shifted past it. Rows of log.csv after run step `upto` are left out."""
    directory = Path(directory)
    init = directory / "init_log.csv"
    rows = init.read_text().splitlines()[1:] if init.is_file() else []
    step0, sec0 = (int(rows[-1].split(",")[0]), float(rows[-1].split(",")[3])) if rows else (0, 0.0)
    log = directory / "log.csv"
    for r in log.read_text().splitlines()[1:] if log.is_file() else []:
        step, loss, lr, sec = r.split(",")
        if upto is None or int(step) <= upto:
            rows.append(f"{int(step) + step0},{loss},{lr},{float(sec) + sec0:.1f}")
    return rows

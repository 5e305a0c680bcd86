"""`imagen-bench study export STUDY --payments --out bonuses.csv` (issue 30 item 3): the crowd
platform's bonus file, paid per fully answered task, each task paid once, ever.

Two decisions, kept apart and both written down (`<out>.decisions.csv` and the database):
  - payment: the platform's rule. Prolific allows a rejection only after two failed attention
    checks (https://researcher-help.prolific.com/en/article/fb63bb). A check here is one control
    task; it is failed when none of its scored answers is right (an alignment control's quality
    question has no right answer and is not scored). A participant with at least the platform's
    number of failed checks is `reject_allowed`: no bonus in this file, and their tasks stay
    unpaid; rejecting the submission is the researcher's act on the platform, never done here.
    Everyone else is `approve`, whatever their analysis status.
  - analysis: the paper's 80 % control filter (human_eval.contract.apply_controls, the study's own
    threshold). A rater excluded from the analysis is still paid: a control accuracy under 80 %
    with fewer failed checks than the platform's rule is no ground for withholding pay.

Never paid twice: the payments table holds one row per paid task, PRIMARY KEY (study, task_id),
written in the same transaction as the export's record (its bonus lines and decisions); an export
that would pay a task already paid, by this or a concurrent export, writes nothing. An export with
nothing new to pay is refused. The bonus file is written after the commit and never over a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.files import temp_path
from common.tables import to_csv

from .contract import apply_controls
from .export import answers_frame
from .participants import participants
from .platforms import amount_text
from .protocols import get_protocol
from .study import Study, load_study

SCHEMA = """
CREATE TABLE IF NOT EXISTS payment_exports (
    study TEXT NOT NULL, export INTEGER NOT NULL, created TEXT NOT NULL, file TEXT NOT NULL, total_cents INTEGER NOT NULL,
    bonus_csv TEXT NOT NULL, decisions TEXT NOT NULL, PRIMARY KEY (study, export));
CREATE TABLE IF NOT EXISTS payments (
    study TEXT NOT NULL, task_id TEXT NOT NULL, participant TEXT NOT NULL, rater TEXT NOT NULL, cents INTEGER NOT NULL,
    export INTEGER NOT NULL, PRIMARY KEY (study, task_id));
"""


class AlreadyPaid(ValueError):
    """An export that would pay a task a bonus a second time (or pay nothing new)."""


@dataclass(frozen=True)
class Decision:
    participant: str
    rater: str
    tasks_done: int  # fully answered tasks, controls included
    paid_before: int  # of them paid in earlier exports
    paid_now: int
    bonus: str  # this export's amount, in the study's currency
    checks: int  # control tasks answered
    checks_failed: int  # of them with no scored answer right
    payment: str  # approve | reject_allowed (the platform's rule)
    analysis: str  # included | excluded | no checks (the control filter)
    accuracy: float | None  # control accuracy by answer, as the filter sees it
    reason: str


def _checks(frame: pd.DataFrame, study: str, rater: str) -> tuple[int, int]:
    """(control tasks answered, of them failed: no scored answer right)."""
    rows = frame[(frame["study"] == study) & (frame["rater"] == rater) & frame["is_control"]]
    if rows.empty:
        return 0, 0
    right = rows.groupby("task_id")["control_correct"].apply(lambda s: bool(s.fillna(False).any()))
    return int(len(right)), int((~right).sum())


def decide(study: Study, paid: set[str]) -> tuple[list[Decision], dict[str, list[str]]]:
    """Every participant's decisions, and participant -> the task ids this export pays them."""
    platform = study.platform
    store = study.store()
    try:
        slots = participants(store)
        n_q = len(get_protocol(study.protocol).questions)
        done = {r: sorted(t for t, a in store.answered(r).items() if len(a) == n_q) for r in slots}
    finally:
        store.close()
    frame = answers_frame(study.root)
    _, exclusion = apply_controls(frame, study.control_threshold, study.fast_answer_ms)
    acc = exclusion.accuracy.set_index(["study", "rater"])
    decisions, pay = [], {}
    for rater, (participant, _) in slots.items():
        n_checks, failed = _checks(frame, study.key, rater)
        row = acc.loc[(study.key, rater)] if (study.key, rater) in acc.index else None
        accuracy = None if row is None or pd.isna(row["accuracy"]) else float(row["accuracy"])
        analysis = "no checks" if accuracy is None else "excluded" if bool(row["flagged"]) else "included"
        new = [t for t in done[rater] if t not in paid]
        reject = failed >= platform.min_failed_checks
        if reject:
            reason = (
                f"{failed} of {n_checks} checks failed: the platform allows a rejection from {platform.min_failed_checks}; "
                "no bonus, tasks left unpaid"
            )
        else:
            reason = f"{failed} of {n_checks} checks failed (rejection needs {platform.min_failed_checks})"
        if analysis == "excluded":  # the filter's verdict, said apart: it never decides pay
            reason += f"; excluded from the analysis (control accuracy {accuracy:.0%} < {study.control_threshold:.0%})"
            reason += "" if reject else ", still paid"
        paid_now = [] if reject else new
        if paid_now:
            pay[participant] = paid_now
        decisions.append(
            Decision(
                participant,
                rater,
                len(done[rater]),
                len(done[rater]) - len(new),
                len(paid_now),
                amount_text(len(paid_now) * platform.bonus_cents_per_task),
                n_checks,
                failed,
                "reject_allowed" if reject else "approve",
                analysis,
                accuracy,
                reason,
            )
        )
    return decisions, pay


def _write_new(path: Path, text: str) -> None:
    """Write `path` whole or not at all, never over an existing file (a hard link fails on one)."""
    tmp = temp_path(path)
    tmp.write_text(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ValueError(
            f"{path} appeared while exporting; this export is recorded in the database (payment_exports "
            "holds its lines): do not export again to pay it"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def export_payments(study_dir: str | Path, out: str | Path) -> tuple[int, list[Decision]]:
    """Record and write one bonus export; returns (its number, every participant's decisions)."""
    study = load_study(study_dir)
    platform = study.platform
    if platform is None:
        raise ValueError(
            f"study {study.name!r} has no crowd platform (create it with --platform prolific|external) to pay"
        )
    if platform.bonus_cents_per_task == 0:
        raise ValueError(f"study {study.name!r} was created without --bonus-per-task: there is no bonus to export")
    out = Path(out)
    log = Path(f"{out}.decisions.csv")
    for path in (out, log):
        if path.exists():
            raise ValueError(f"{path} already exists; refusing to overwrite it (choose another --out)")
    store = study.store()
    try:
        store.ensure_tables(SCHEMA)
        paid = {t for (t,) in store.query("SELECT task_id FROM payments WHERE study = ?", (store.study,))}
        earlier = store.query(
            "SELECT export, file FROM payment_exports WHERE study = ? ORDER BY export", (store.study,)
        )
        decisions, pay = decide(study, paid)
        if not pay:
            before = ", ".join(f"{n}: {f}" for n, f in earlier) or "none"
            withheld = sum(d.payment == "reject_allowed" for d in decisions)
            raise AlreadyPaid(
                f"nothing to pay in study {study.name!r}: every answered task of its {len(decisions)} participants "
                f"is paid already (earlier exports {before}) or withheld ({withheld} with rejection allowed); no file written"
            )
        cents = {p: len(tasks) * platform.bonus_cents_per_task for p, tasks in pay.items()}
        bonus_csv = "".join(
            f"{p},{amount_text(c)}\n" for p, c in sorted(cents.items())
        )  # Prolific: <participant_id>,<amount>
        rater_of = {d.participant: d.rater for d in decisions}
        with (
            store.transaction() as tx
        ):  # all of it or none: a concurrent export paying one of these tasks undoes this one
            # one export at a time, as participants.bind takes slots: a row lock on PostgreSQL
            tx.run("UPDATE platform_entry SET entry_sha256 = entry_sha256 WHERE study = ?", (store.study,))
            number = (
                int(
                    tx.rows("SELECT COALESCE(MAX(export), 0) FROM payment_exports WHERE study = ?", (store.study,))[0][
                        0
                    ]
                )
                + 1
            )
            tx.run(
                "INSERT INTO payment_exports VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    store.study,
                    number,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                    str(out.resolve()),
                    sum(cents.values()),
                    bonus_csv,
                    json.dumps([asdict(d) for d in decisions]),
                ),
            )
            for participant, tasks in pay.items():
                for task_id in tasks:
                    if (
                        tx.run(
                            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (study, task_id) DO NOTHING",
                            (
                                store.study,
                                task_id,
                                participant,
                                rater_of[participant],
                                platform.bonus_cents_per_task,
                                number,
                            ),
                        )
                        != 1
                    ):
                        raise AlreadyPaid(
                            f"task {task_id} of participant {participant} was paid by another export meanwhile; "
                            "this export is undone, run it again"
                        )
    finally:
        store.close()
    _write_new(out, bonus_csv)
    _write_new(log, to_csv(pd.DataFrame([asdict(d) for d in decisions])))
    return number, decisions


def participant_table(study: Study, store) -> pd.DataFrame:
    """The admin page's view of a crowd study: each taken slot, its participant's ids, what was exported as paid."""
    store.ensure_tables(SCHEMA)
    paid = {
        r: (int(n), int(c))
        for r, n, c in store.query(
            "SELECT rater, COUNT(*), SUM(cents) FROM payments WHERE study = ? GROUP BY rater", (store.study,)
        )
    }
    rows = [
        {
            "rater": r,
            "participant": p,
            **{k: v for k, v in ids.items() if k != study.platform.participant_param},
            "tasks paid": paid.get(r, (0, 0))[0],
            "bonus paid": amount_text(paid.get(r, (0, 0))[1]),
        }
        for r, (p, ids) in participants(store).items()
    ]
    return pd.DataFrame(rows, columns=["rater", "participant", *study.platform.params[1:], "tasks paid", "bonus paid"])

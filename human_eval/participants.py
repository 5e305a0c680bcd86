"""Crowd participants and the rater slots they take (issue 30 item 3).

A platform study is reached through one public link, `/?e=<entry token>&<the platform's ids>`,
never through the per-rater invite links (?t=...). Rules:
  - The entry token (secrets.json "entry", stored here only as SHA-256, checked like every token)
    keeps anyone who was not given the link out: without it nothing of the study is shown.
  - The first arrival of a participant id takes the first free rater slot and records every id the
    platform sent, once (the participants table, keyed by (study, participant), UNIQUE rater slot).
  - A later arrival of that participant id (a reload, a second tab, a return after a break) gets the
    same slot only when every recorded id matches, the session id included: the participant id is
    not a secret (a rater may paste it in a forum), the session id is per participation and known
    only to the participant's browser and the platform. So one participant can never read or
    answer another's queue by typing their participant id.
  - No free slot: the caller screens the participant out (platforms.Platform.finish_url).
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime

from .platforms import Platform
from .store import Store
from .tokens import hash_token, match_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS platform_entry (study TEXT PRIMARY KEY, entry_sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    study TEXT NOT NULL, participant TEXT NOT NULL, rater TEXT NOT NULL, ids TEXT NOT NULL, first_seen TEXT NOT NULL,
    PRIMARY KEY (study, participant), UNIQUE (study, rater));
"""


class Refused(ValueError):
    """An arrival that may not take a slot: its ids do not match the ones recorded for its participant id."""


def setup(store: Store, entry_token: str) -> None:
    """At study creation: the tables and the entry token's hash (refused if this study has one already)."""
    store.ensure_tables(SCHEMA)
    with store.transaction() as tx:
        if (
            tx.run(
                "INSERT INTO platform_entry VALUES (?, ?) ON CONFLICT (study) DO NOTHING",
                (store.study, hash_token(entry_token)),
            )
            != 1
        ):
            raise ValueError(
                f"study {store.study!r} already has a platform entry link in {store.url}; refusing to replace it"
            )


def entry_ok(store: Store, token: str | None) -> bool:
    rows = store.query("SELECT entry_sha256 FROM platform_entry WHERE study = ?", (store.study,))
    return bool(rows) and match_token(token, {"entry": rows[0][0]}) == "entry"


def _same(recorded: dict[str, str], ids: dict[str, str]) -> list[str]:
    """The parameters whose recorded and given values differ (compared in constant time)."""
    return [p for p in ids if not hmac.compare_digest(recorded.get(p, "").encode(), ids[p].encode())]


def bind(store: Store, platform: Platform, ids: dict[str, str], take: bool = True) -> str | None:
    """The rater slot of the participant in `ids` (platform.read_ids): theirs if recorded, else the
    first free one, taken and recorded in one transaction (not with take=False); None when every slot is
    taken. Idempotent: a reload records nothing new. Raises Refused when the participant id is recorded
    with other ids."""
    participant = ids[platform.participant_param]
    with store.transaction() as tx:
        mine = _recorded(tx, store.study, platform, participant, ids)
        if mine is not None or not take:
            return mine
        # One slot-taker at a time per study: a write on the study's entry row is a row lock until
        # commit on PostgreSQL (else two arrivals read the same free slot); SQLite's BEGIN IMMEDIATE
        # already serialises. Then look again: the same participant may have just taken a slot.
        tx.run("UPDATE platform_entry SET entry_sha256 = entry_sha256 WHERE study = ?", (store.study,))
        mine = _recorded(tx, store.study, platform, participant, ids)
        if mine is not None:
            return mine
        free = tx.rows(
            "SELECT rater FROM raters WHERE study = ? AND rater NOT IN "
            "(SELECT rater FROM participants WHERE study = ?) ORDER BY rater LIMIT 1",
            (store.study, store.study),
        )
        if not free:
            return None
        tx.run(
            "INSERT INTO participants VALUES (?, ?, ?, ?, ?)",
            (
                store.study,
                participant,
                free[0][0],
                json.dumps(ids, sort_keys=True),
                datetime.now(UTC).isoformat(timespec="milliseconds"),
            ),
        )
        return free[0][0]


def _recorded(tx, study: str, platform: Platform, participant: str, ids: dict[str, str]) -> str | None:
    """The participant's recorded slot, None if they have none; Refused when their recorded ids differ."""
    mine = tx.rows("SELECT rater, ids FROM participants WHERE study = ? AND participant = ?", (study, participant))
    if not mine:
        return None
    differ = _same(json.loads(mine[0][1]), ids)
    if differ:
        raise Refused(
            f"This {platform.participant_param} is already taking part with another "
            f"{' and '.join(differ)}. Please continue in the window where you started, "
            "or contact the researcher through the platform."
        )
    return mine[0][0]


def participants(store: Store) -> dict[str, tuple[str, dict[str, str]]]:
    """rater -> (participant id, every id recorded at their first arrival), for this study."""
    store.ensure_tables(SCHEMA)
    return {
        rater: (participant, json.loads(ids))
        for participant, rater, ids in store.query(
            "SELECT participant, rater, ids FROM participants WHERE study = ? ORDER BY rater", (store.study,)
        )
    }

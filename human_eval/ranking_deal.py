"""A sequential ranking study's batches, dealt when a rater asks for one (human_eval.ranking).

The other designs write every task at creation. A ranking study cannot: which pair a rater rates
depends on the answers in by then. So creation writes the deck (every pair's ordinary tasks and
control tasks, images already copied and named by id) and no task; when a rater first opens their
page, `batch_for` deals their one batch in a single transaction:

  1. the state of the study from its counted answers (read before the transaction; a stopped study
     deals nothing, and the rater is told the study has ended);
  2. one dealer at a time per study: a write on the study's ranking_lock row (a row lock until the
     commit on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises), then a second look at the
     rater's tasks (another tab may have dealt them meanwhile: nothing more is dealt);
  3. the pair: human_eval.ranking.choose on the fitted strengths and the batches dealt per pair so far
     (those still being rated included, so raters arriving together are spread over the pairs);
  4. the pair's next batch: its prompts the next of the pair's stratified passes
     (sequential_deal.deal, seeded by the study's seed and the pair), its controls drawn from the
     pair's control pool and shuffled in exactly as an A-vs-B sequential batch's are
     (sequential_deal.mixed), sides at random; the tasks are written with the rater's name and the
     deal is recorded (ranking_batches: UNIQUE (study, rater) and (study, pair, seq), so neither a
     rater nor a pair's batch is ever dealt twice).
A control task is the same task for every rater of its pair (as in every design: raters comparing
notes see controls recur exactly as ordinary tasks do); the prompts set aside for controls are the
same for every pair, so no prompt is a control for one pair and an ordinary task for another.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import asdict
from datetime import UTC, datetime

import numpy as np

from .export import answers_frame
from .ranking import RankingState, choose, recorded, settled, state
from .sequential_deal import deal, mixed
from .store import INSERT_TASK, Store, Task, task_row
from .study import Study

SCHEMA = """
CREATE TABLE IF NOT EXISTS ranking_deck (
    study TEXT NOT NULL, pair INTEGER NOT NULL, slot INTEGER NOT NULL, is_control INTEGER NOT NULL, task TEXT NOT NULL,
    PRIMARY KEY (study, pair, slot));
CREATE TABLE IF NOT EXISTS ranking_batches (
    study TEXT NOT NULL, rater TEXT NOT NULL, pair INTEGER NOT NULL, seq INTEGER NOT NULL, dealt_at TEXT NOT NULL,
    PRIMARY KEY (study, rater), UNIQUE (study, pair, seq));
CREATE TABLE IF NOT EXISTS ranking_lock (study TEXT PRIMARY KEY, dealt INTEGER NOT NULL);
"""


PER_RATER = ("task_id", "rater", "batch", "position", "a_on_left")  # what a deal fills in


def card(task: Task) -> dict:
    """A task of the deck: everything of the task but who rates it, where, with which side on the left."""
    return {k: v for k, v in asdict(task).items() if k not in PER_RATER}


def _dealt(card_: dict, rater: str, position: int, a_on_left: bool) -> Task:
    """A card dealt to a rater: a task of their batch (batch 1: one batch per rater), a fresh random id."""
    fields = card_ | {
        "images_a": tuple(card_["images_a"]),
        "images_b": tuple(card_["images_b"]),
        "expected": tuple(tuple(e) for e in card_["expected"]),
    }
    return Task(task_id=secrets.token_hex(12), rater=rater, batch=1, position=position, a_on_left=a_on_left, **fields)


def setup(store: Store, deck: dict[int, tuple[list[dict], list[dict]]]) -> None:
    """At creation: the tables, every pair's (ordinary cards in prompt order, control cards) and the
    study's lock row, in one transaction (refused if this study has a deck already)."""
    store.ensure_tables(SCHEMA)
    with store.transaction() as tx:
        if tx.run("INSERT INTO ranking_lock VALUES (?, 0) ON CONFLICT (study) DO NOTHING", (store.study,)) != 1:
            raise ValueError(
                f"study {store.study!r} already has a ranking deck in {store.url}; refusing to replace it"
            )
        for pair, (ordinary, controls) in deck.items():
            for slot, c in enumerate(ordinary + controls):
                tx.run(
                    "INSERT INTO ranking_deck VALUES (?, ?, ?, ?, ?)",
                    (store.study, pair, slot, int(c["is_control"]), json.dumps(c)),
                )


def dealt(store: Store) -> dict[str, tuple[int, int]]:
    """rater -> (pair, the pair's batch number from 0) of every batch dealt so far."""
    return {
        r: (int(p), int(q))
        for r, p, q in store.query("SELECT rater, pair, seq FROM ranking_batches WHERE study = ?", (store.study,))
    }


def batch_for(study: Study, store: Store, rater: str) -> list[Task]:
    """The rater's tasks; in a sequential ranking study that has not stopped, a rater with none is
    dealt their batch first (the module's steps). Empty: a stopped ranking study (or no tasks)."""
    tasks = store.tasks(rater)
    settings = store.study_settings()[store.study]
    rec = recorded(settings)
    if tasks or rec is None:  # dealt already, or a design that deals every task at creation
        return tasks
    current = state(answers_frame(study.root), settings, float(settings["control_threshold"]))
    if current.reason is not None:
        return []
    with store.transaction() as tx:
        tx.run("UPDATE ranking_lock SET dealt = dealt WHERE study = ?", (store.study,))  # one dealer at a time
        if not tx.rows("SELECT 1 FROM tasks WHERE study = ? AND rater = ? LIMIT 1", (store.study, rater)):
            _deal(tx, store.study, rater, current, settings)  # (else another tab dealt it meanwhile)
    return store.tasks(rater)


def _deal(tx, study: str, rater: str, current: RankingState, settings: dict) -> None:
    """Steps 3 and 4 inside the dealer's transaction."""
    low, high, passed, strength = current.now()
    seq_plan = settings["plan"]["sequential"]
    per_batch, seed = int(seq_plan["ordinary_per_batch"]), int(settings["plan"]["seed"])
    n = np.zeros(len(low))
    for pair, count in tx.rows("SELECT pair, COUNT(*) FROM ranking_batches WHERE study = ? GROUP BY pair", (study,)):
        n[int(pair)] = count
    done = settled(low[None], high[None], passed[None], current.recorded.plan.half_width)
    pair = int(choose(strength[None], n[None] * per_batch, done, np.ones_like(done), per_batch)[0])
    seq = int(n[pair])
    cards = [
        (json.loads(text), bool(control))
        for _, control, text in tx.rows(
            "SELECT slot, is_control, task FROM ranking_deck WHERE study = ? AND pair = ? ORDER BY slot", (study, pair)
        )
    ]
    ordinary = [c for c, control in cards if not control]
    controls = [c for c, control in cards if control]
    keys = [str(i) for i in range(len(ordinary))]
    prompts = deal(random.Random(f"{seed}:{pair}"), keys, [c["category"] for c in ordinary], per_batch, seq + 1)[seq]
    k = int(seq_plan["tasks_per_batch"]) - per_batch
    batch = mixed(random.Random(f"{seed}:{pair}:{seq}"), [ordinary[int(i)] for i in prompts], controls, k)
    for position, (c, left) in enumerate(batch, start=1):
        tx.run(INSERT_TASK, task_row(study, _dealt(c, rater, position, left)))
    tx.run(
        "INSERT INTO ranking_batches VALUES (?, ?, ?, ?, ?)",
        (study, rater, pair, seq, datetime.now(UTC).isoformat(timespec="milliseconds")),
    )
    tx.run("UPDATE ranking_lock SET dealt = dealt + 1 WHERE study = ?", (study,))

"""`study create --model SRC --model SRC --model SRC ...`: a sequential ranking study of three or more
models (human_eval.ranking: the design and its rule; human_eval.ranking_deal: batches dealt as raters
ask). A study directory like any other (human_eval.study), but no task exists at creation:

  - every model's images of every prompt the models share are copied (human_eval.image_copies), so
    any pair's batch can be dealt later without touching the sources;
  - the control pool is set aside once, the same prompts for every pair (human_eval.plan.pool_controls,
    one fresh generator per pair seeded alike), and every pair gets its control tasks made from them
    with its own two models, as an A-vs-B study's are;
  - the deck (every pair's ordinary and control tasks, images by id) goes into the database with the
    raters (one batch each: the pool is the cap) and the plan, written with them before any rating:
    settings.plan.sequential in the database and in study.json (design "sequential_ranking").
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from common.bradley_terry import pairs
from common.files import staged_folder, write_json_atomic
from common.version import __version__

from .controls import Item
from .image_copies import ImageCopies
from .participants import setup as setup_participants
from .plan import PlannedTask, items_for, pool_controls, rater_names
from .protocols import get_protocol, wording
from .ranking import DESIGN, MAX_MODELS, MIN_MODELS, record
from .ranking_deal import card
from .ranking_deal import setup as setup_deck
from .sequential import record as sequential_record
from .sequential_deal import batches_per_pass
from .serving import ENCODING
from .sources import by_prompt, distinct_models, load_prompts, parse_source, read_source
from .store import Store
from .study import (
    DEFAULT_DB,
    STUDY_FORMAT,
    Study,
    StudySettings,
    _strip_password,
    _task,
    load_study,
    study_key,
    write_secrets,
)
from .tokens import new_token


def create_ranking_study(out: str | Path, s: StudySettings, more: tuple[str, ...]) -> Study:
    """A sequential ranking study of the models s.a, s.b and `more` (in this order: model i is the A
    side of pair (i, j)). Refuses an existing non-empty `out`; built in a staging folder, published whole."""
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already exists and is not empty; refusing to overwrite a study (choose a new --out)")
    specs = (s.a, s.b, *more)
    protocol = get_protocol(s.protocol)
    if not MIN_MODELS <= len(specs) <= MAX_MODELS:
        raise ValueError(f"a sequential ranking compares {MIN_MODELS} to {MAX_MODELS} models, got {len(specs)}")
    if s.plan.sequential is None or protocol.layout != "pair":
        raise ValueError(
            f"several models are ranked by the sequential design of a side-by-side protocol (--design sequential, "
            f"drawbench_sbs or coco_realism); got {s.protocol} with design {s.plan.design or protocol.design}"
        )
    sources, recs, prompt_set = _sources(specs, s)
    models = [next(iter(r.values()))[0].model for r in recs]
    deck_items, pool = _deck_items(protocol, recs, s)
    n_prompts = len(deck_items[0][0])
    k = min(s.plan.controls_per_batch, len(deck_items[0][1]))
    per_batch = s.plan.batch_size - k
    if not 1 <= per_batch <= n_prompts:
        raise ValueError(
            f"a sequential batch holds 1..{n_prompts} ordinary tasks (the study's prompts), got {per_batch}; "
            "use a smaller --batch-size or more prompts"
        )
    need = batches_per_pass(n_prompts, per_batch) * (len(models) - 1)
    if s.plan.raters < need:
        raise ValueError(
            f"--raters {s.plan.raters} is the sequential ranking's cap (one batch each), but a full pass over the "
            f"{n_prompts} prompts for each of the {len(models) - 1} adjacent pairs of a ranking takes {need} batches "
            f"of {per_batch}; use --raters {need} or more"
        )
    question = s.plan.sequential.question or protocol.questions[0].key
    plan = sequential_record(s.plan.sequential, question, s.plan.raters, s.plan.batch_size, n_prompts)
    name, study_id = s.name or out.name, secrets.token_hex(8)
    settings = {
        "control_threshold": s.control_threshold,
        "fast_answer_ms": s.fast_answer_ms,
        "plan": asdict(s.plan)
        | {"design": DESIGN, "raters_per_category": None, "sequential": record(plan, models, per_batch)},
        "degrade": asdict(s.degrade),
        "images_per_set": s.images_per_set or protocol.images_per_set,
    } | ({"platform": s.platform.record()} if s.platform is not None else {})
    described = {
        f"m{i + 1}": {"source": f"{src.kind}:{src.path}" + (f"@{src.cell}" if src.cell else ""), "model": m}
        for i, (src, m) in enumerate(zip(sources, models))
    }
    settings["study"] = {"name": name, "id": study_id, "models": described}
    with staged_folder(out) as folder:
        (folder / "images").mkdir()
        copies = ImageCopies(folder / "images", out, s.plan.seed, s.degrade)
        deck = {
            p: ([_card(protocol, it, copies) for it in o], [_card(protocol, it, copies) for it in c])
            for p, (o, c) in deck_items.items()
        }
        tokens = {"admin": new_token(), "raters": {r: new_token() for r in rater_names(s.plan.raters)}}
        if s.platform is not None:
            tokens["entry"] = new_token()
        db = s.db or DEFAULT_DB
        if not s.db:  # owner-only, as every study's database
            (folder / db).touch(mode=0o600)
        store = Store(db if s.db else folder / db, study_key(name, study_id))
        store.create(s.protocol, tokens["admin"], tokens["raters"], [], __version__, settings)
        setup_deck(store, deck)
        if s.platform is not None:
            setup_participants(store, tokens["entry"])
        store.close()
        write_secrets(folder, tokens)
        rated = [it.prompt_id for it in deck_items[0][0]]
        write_json_atomic(
            folder / "study.json",
            {
                "format": STUDY_FORMAT,
                "name": name,
                "id": study_id,
                "protocol": s.protocol,
                "title": protocol.title,
                **({"platform": s.platform.record()} if s.platform is not None else {}),
                "wording": wording(protocol),
                "models": described,
                "prompts": {
                    "spec": s.prompts,
                    "prompt_set": prompt_set,
                    "rated": rated,
                    "n": len(rated),
                    "control": pool,
                },
                "settings": settings,
                "database": _strip_password(db),
                "package_version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "tasks": {
                    "total": 0,  # dealt a batch at a time as raters start (human_eval.ranking_deal)
                    "controls": 0,
                    "raters": len(tokens["raters"]),
                    "evaluations": {"all": sorted(tokens["raters"])},
                    "pairs": {recorded_pair(models, p): len(o) + len(c) for p, (o, c) in deck.items()},
                },
                "images": copies.images,
                "serving": {"encoding": asdict(ENCODING), "served_bytes": copies.served_bytes()},
            },
        )
    return load_study(out)


def recorded_pair(models: list[str], p: int) -> str:
    i, j = pairs(len(models))[p]
    return f"{models[i]} vs {models[j]}"


def _sources(specs: tuple[str, ...], s: StudySettings):
    """(sources, each one's image sets by prompt id restricted to the prompts all of them have, prompt-set name)."""
    frame, prompt_set = load_prompts(s.prompts)
    per_set = s.images_per_set or get_protocol(s.protocol).images_per_set
    sources = [parse_source(x) for x in specs]
    twice = [x for x, n in Counter((src.kind, src.path, src.cell) for src in sources).items() if n > 1]
    if twice:
        kind, path, cell = twice[0]
        raise ValueError(f"--model {kind}:{path}{'@' + cell if cell else ''} is given twice; rank different models")
    recs = [by_prompt(read_source(src, frame, prompt_set), per_set, x) for src, x in zip(sources, specs)]
    for i, j in pairs(len(recs)):  # models named alike are told apart by their paths, as for --a / --b
        recs[i], recs[j] = distinct_models(sources[i], recs[i], sources[j], recs[j])
    names = [next(iter(r.values()))[0].model for r in recs]
    if len(set(names)) < len(names):
        raise ValueError(f"the models' names {names} are not all different; give each model its own folder name")
    shared = set.intersection(*(set(r) for r in recs))
    if not shared:
        raise ValueError("the models share no prompt ids; nothing to compare")
    return sources, [{pid: r[pid] for pid in r if pid in shared} for r in recs], prompt_set


def _deck_items(protocol, recs, s: StudySettings) -> tuple[dict[int, tuple[list[Item], list[Item]]], list[str]]:
    """pair -> (its ordinary items in prompt order, its control items), and the control pool's prompt
    ids: the same pool for every pair (each pair's pool drawn by a generator seeded alike from the
    same prompt list, which draws the same prompts; checked)."""
    deck, pools = {}, set()
    for p, (i, j) in enumerate(pairs(len(recs))):
        items = list(items_for(protocol, recs[i], recs[j]).values())
        ordinary, controls = pool_controls(random.Random(s.plan.seed), protocol, items, s.plan.control_share, "all")
        deck[p] = (ordinary, controls)
        pools.add(frozenset(it.prompt_id for it in items) - frozenset(it.prompt_id for it in ordinary))
    if len(pools) != 1:
        raise RuntimeError("the pairs' control pools differ; every pair must set aside the same prompts")
    pool = pools.pop()
    return deck, [pid for pid in (it.prompt_id for it in items) if pid in pool]


def _card(protocol, it: Item, copies: ImageCopies) -> dict:
    """A deck card: the item as a task is made at creation (human_eval.study), its images by the ids
    of their copies (each image copied once for the study), less who rates it, where and which side."""
    return card(_task(protocol, PlannedTask(rater="", batch=0, position=0, item=it, a_on_left=True), copies))

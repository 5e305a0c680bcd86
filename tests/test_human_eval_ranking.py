"""Sequential ranking of several models (issue 30 item 4, "for several models"): a real study made by
`study create --model ... x4`, batches dealt as raters ask, each on the pair that informs the ranking
most, the study stopping by its rule while simulated raters answer through the store."""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from human_eval.ranking import choose, settled, verdict

TRUTH = {"sd-v1-5": 3.0, "sd-flipped": 2.0, "sd-v1-4": 1.0, "sd-mirrored": 0.0}  # Bradley-Terry log strengths


def _four_models(root: Path) -> list[Path]:
    """The real SD v1.4 / v1.5 DrawBench Colors images and two more models made from them (mirrored,
    flipped: other images of the same prompts, each folder with its manifest)."""
    from human_eval_fixtures import sd_folders
    from PIL import Image, ImageOps

    from common.folder_manifest import write_manifest
    from drawbench.prompts import load_drawbench

    a, b = sd_folders()
    prompts = load_drawbench()
    colors = prompts[prompts["category"] == "Colors"]
    out = [a, b]
    for name, src, op in (("sd-mirrored", a, ImageOps.mirror), ("sd-flipped", b, ImageOps.flip)):
        folder = root / name
        folder.mkdir(parents=True)
        for pid in colors["id"]:
            with Image.open(src / f"{int(pid):03d}.jpg") as im:
                op(im).save(folder / f"{int(pid):03d}.jpg")
        write_manifest(folder, "drawbench", dict(zip(prompts["id"].astype(str), prompts["prompt"])))
        out.append(folder)
    return [out[0], out[3], out[1], out[2]]  # given in no particular order: v1.4, flipped, v1.5, mirrored


def _create(tmp_path: Path, capsys, *extra: str, raters: int = 150) -> Path:
    from imagen_bench.cli import main as cli

    args = ["study", "create", "--protocol", "drawbench_sbs", "--prompts", "drawbench:Colors", "--images-per-set", "1"]
    args += [x for f in _four_models(tmp_path / "models") for x in ("--model", f"folder:{f}")]
    args += ["--batch-size", "12", "--raters", str(raters), "--out", str(tmp_path / "study"), *extra]
    assert cli(args) == 0, capsys.readouterr().err if capsys else ""
    return tmp_path / "study"


def _answer(store, rater: str, tasks, rng: random.Random, controls_right: bool = True) -> None:
    """A simulated rater: on an ordinary task A is preferred with the Bradley-Terry probability of the
    truth, 15 % indifferent; check questions right (or all wrong)."""
    for t in tasks:
        if t.is_control:
            side = "A" if controls_right else "B"
        elif rng.random() < 0.15:
            side = "tie"
        else:
            side = "A" if rng.random() < expit(TRUTH[t.model_a] - TRUTH[t.model_b]) else "B"
        shown = "tie" if side == "tie" else "left" if (side == "A") == t.a_on_left else "right"
        store.submit(rater, t.task_id, {"quality": shown, "alignment": shown}, 3000)


def test_the_pair_choice_and_the_rule_on_arrays():
    """choose: only the unsettled consecutive pairs of the fitted order are candidates, and batches
    dealt but not answered count, so raters arriving together are spread; verdict: decided needs every
    consecutive pair decided after its pass, precise every one decided or narrow."""
    strength = np.array([[2.0, 1.0, 0.0]])  # order 0 > 1 > 2: pairs (0, 1) = 0 and (1, 2) = 2 are consecutive
    none = np.zeros((1, 3), bool)
    room = np.ones((1, 3), bool)
    picks = []
    games = np.zeros((1, 3))
    for _ in range(6):
        p = int(choose(strength, games, none, room, 10)[0])
        picks.append(p)
        games[0, p] += 10  # dealt, not answered yet
    assert set(picks) == {0, 2} and Counter(picks)[0] == Counter(picks)[2] == 3  # never the far pair (0, 2)
    done = np.array([[True, False, False]])
    assert set(choose(strength, games, done, room, 10)) == {2}  # (0, 1) settled: the one left
    low, high = np.array([[0.6, 0.2, 0.3]]), np.array([[0.9, 0.9, 0.45]])  # pair (1, 2) prefers 2 over 1
    passed = np.ones((1, 3), bool)
    reason, order = verdict(low, high, passed, strength, 0.03)
    assert reason.tolist() == [-1] and order.tolist() == [-1]  # 0 > 1 decided, 1 vs 2 against the fit: no order
    reason, order = verdict(np.array([[0.6, 0.2, 0.55]]), high, passed, strength, 0.03)
    assert reason.tolist() == [0] and order.tolist() == [0]  # permutation (0, 1, 2): both links decided
    assert verdict(np.array([[0.6, 0.2, 0.55]]), high, np.array([[True, True, False]]), strength, 0.03)[0] == [-1]
    reason, _ = verdict(np.array([[0.6, 0.2, 0.48]]), np.array([[0.9, 0.9, 0.53]]), passed, strength, 0.03)
    assert reason.tolist() == [1]  # (1, 2) within +-0.03 after its pass: precise
    assert settled(np.array([[0.48]]), np.array([[0.53]]), np.array([[False]]), 0.03).tolist() == [[False]]


def test_a_real_ranking_study_stops_by_its_rule_on_the_informative_pairs(tmp_path, capsys):
    """Four models (the real SD v1.4 / v1.5 Colors images and two made from them), a known Bradley-Terry
    truth with adjacent models a logit apart. Raters ask for a batch one after another; the study
    deals each on a pair, they answer through the store, and after every batch the app's state is
    read back. The study stops by its rule (decided) with the true order; the pairs not adjacent in
    the truth get almost nothing, so it takes far fewer ratings than rating every pair alike; a
    flagged rater's batch does not count; after the stop nobody new is dealt a batch; the report
    states the reason and the estimates; an edited plan is refused."""
    from human_eval.export import answers_frame
    from human_eval.ranking import pair_ids
    from human_eval.ranking_deal import batch_for, dealt
    from human_eval.sequential_page import ended, study_state
    from human_eval.study import load_study
    from imagen_bench.cli import main as cli

    root = _create(tmp_path, capsys)
    out = capsys.readouterr().out
    assert "4 models ranked: one batch per rater on the pair chosen when they start" in out
    study = load_study(root)
    meta = json.loads((root / "study.json").read_text())
    plan = meta["settings"]["plan"]
    assert plan["design"] == "sequential_ranking" and meta["tasks"]["total"] == 0
    assert plan["sequential"] == {  # the plan, fixed at creation, before any rating
        "alpha": 0.05,
        "half_width": 0.03,
        "look_every": 1,
        "method": "betting",
        "question": "quality",
        "cap_batches": 150,
        "tasks_per_batch": 12,
        "n_prompts": 23,
        "models": ["sd-v1-4", "sd-flipped", "sd-v1-5", "sd-mirrored"],
        "pairs": 6,
        "pair_alpha": 0.05 / 6,
        "correction": "bonferroni",
        "ordinary_per_batch": 10,
        "choice": "information",
    }
    store = study.store()
    assert store.study_settings()[study.key]["plan"]["sequential"] == plan["sequential"]
    raters = sorted(store.token_hashes()[1])
    assert all(store.tasks(r) == [] for r in raters)  # nothing dealt before a rater asks
    rng = random.Random(0)
    _answer(store, raters[0], batch_for(study, store, raters[0]), rng, controls_right=False)  # flagged: never counts
    current = None
    for n, rater in enumerate(raters[1:], start=1):
        assert not ended(study, store)
        tasks = batch_for(study, store, rater)
        assert len(tasks) == 12 and sum(t.is_control for t in tasks) == 2 and {t.batch for t in tasks} == {1}
        assert len({(t.model_a, t.model_b) for t in tasks if not t.is_control}) == 1  # one pair per batch
        _answer(store, rater, tasks, rng)
        current = study_state(study, store, answers_frame(study.root))
        assert len(current.low) == n and not current.batches.set_index("rater").loc[raters[0], "counted"]
        if current.reason:
            break
    assert current.reason == "decided" and current.stop_at == n
    assert current.ordering() == "sd-v1-5 > sd-flipped > sd-v1-4 > sd-mirrored"  # the true order
    estimates = current.estimates()
    assert (np.diff(estimates["log_strength"]) < 0).all() and (estimates["difference_low"].iloc[:3] > 0).all()
    counts = current.counts()
    models = current.recorded.models
    ids = pair_ids(4)
    order = [models.index(m) for m in sorted(TRUTH, key=TRUTH.get, reverse=True)]
    adjacent = [ids[order[r], order[r + 1]] for r in range(3)]
    far = [p for p in range(6) if p not in adjacent]
    print(
        f"batches per pair {counts.tolist()}, adjacent {list(map(int, adjacent))}, stopped after {n} ({n * 10} ordinary ratings)"
    )
    assert counts[far].sum() <= 6  # the pairs the chain orders get (almost) nothing
    assert counts[adjacent].min() >= 3  # every adjacent pair its full pass (23 prompts, 10 a batch)
    assert n < 6 * counts[adjacent].min()  # rating every pair alike needs 6 x what each adjacent pair needed
    assert len(dealt(store)) == n + 1  # one batch per rater who asked (the flagged one's too)
    assert ended(study, store) and batch_for(study, store, raters[n + 1]) == []  # nobody new after the stop

    report = tmp_path / "report"
    assert cli(["report", str(root), "--out", str(report), "--resamples", "100", "--power-studies", "10"]) == 0
    page = (report / "index.html").read_text()
    assert f"Stopped after {n} counted batches because every adjacent pair of the ranking is decided" in page
    assert "sd-v1-5 &gt; sd-flipped &gt; sd-v1-4 &gt; sd-mirrored" in page
    findings = page.split('<ul class="findings">', 1)[1]  # the summary leads with the ranking, not one pair's rate
    assert findings.startswith(
        f"<li>Sequential ranking {study.key} of 4 models (question &#x27;quality&#x27;): Stopped"
    )
    assert " answers per question from 1 rater." in findings  # a pair the allocation dealt one batch
    batches_table = page.split("One row per complete batch", 1)[1].split("</details>", 1)[0]
    assert f"<summary>all {len(current.batches)} rows</summary>" in batches_table  # the audit log collapsed
    assert (report / "tables").is_dir() and any(
        f.name.startswith("sequential_ranking_1") for f in (report / "tables").iterdir()
    )

    meta["settings"]["plan"]["sequential"]["half_width"] = 0.2  # an edit after creation changes nothing: refused
    (root / "study.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="a plan cannot change once made"):
        study_state(study, store, answers_frame(study.root))
    store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_raters_asking_at_once_get_one_batch_each_spread_over_the_pairs(tmp_path, capsys, engine):
    """Twelve raters (and a second tab of each) ask at the same moment, each through its own store
    connection: each gets exactly one batch, no pair's batch is dealt twice, and the batches dealt but
    not yet answered count, so they spread over the three pairs the ranking waits for. On SQLite and
    on PostgreSQL (with $HUMAN_EVAL_PG_URL, e.g. from .ci/pg-start)."""
    from human_eval.ranking_deal import batch_for, dealt
    from human_eval.store import Store
    from human_eval.study import load_study

    url = os.environ.get("HUMAN_EVAL_PG_URL")
    if engine == "postgresql" and not url:
        pytest.skip("HUMAN_EVAL_PG_URL not set: no PostgreSQL server to test against")
    study = load_study(_create(tmp_path, capsys, *(["--db", url] if engine == "postgresql" else []), raters=40))
    raters = sorted(Store(study.db_url, study.key).token_hashes()[1])[:12]
    got: dict[str, list] = {}
    barrier = threading.Barrier(24)

    def ask(rater: str) -> None:
        store = Store(study.db_url, study.key)
        barrier.wait()
        got.setdefault(rater, []).append({t.task_id for t in batch_for(study, store, rater)})
        store.close()

    threads = [threading.Thread(target=ask, args=(r,)) for r in raters for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = study.store()
    deals = dealt(store)
    assert sorted(deals) == raters and len(set(deals.values())) == 12  # (pair, seq) never twice
    for r in raters:
        mine = {t.task_id for t in store.tasks(r)}
        assert len(mine) == 12 and got[r] == [mine, mine]  # both tabs: the one batch
    # no answers yet: the given order's consecutive pairs (0, 1), (1, 2), (2, 3), four batches each
    assert Counter(p for p, _ in deals.values()) == Counter({0: 4, 3: 4, 5: 4})
    store.close()


def test_the_app_deals_a_batch_when_a_rater_opens_the_page(tmp_path, monkeypatch):
    from human_eval_fixtures import tokens
    from test_human_eval_app import _app

    from human_eval.study import load_study

    study = load_study(_create(tmp_path, None, raters=40))  # (capsys would close the stream Streamlit logs to)
    rater = sorted(tokens(study)["raters"])[0]
    page = _app(monkeypatch, study, t=tokens(study)["raters"][rater])
    assert not page.exception and not page.error and len(page.radio) == 2  # a task of the batch just dealt
    assert "Batch 1 of 1: 0 of 12 done" in page.get("progress")[0].proto.text
    assert len(study.store().tasks(rater)) == 12
    admin = _app(monkeypatch, study, admin=tokens(study)["admin"])
    assert not admin.exception and not admin.error
    assert "Sequential ranking: the live Bradley-Terry ranking" in [h.value for h in admin.subheader]
    assert "Still running after 0 counted batches" in admin.info[0].value


def test_ranking_options_are_checked(tmp_path, capsys):
    from human_eval_fixtures import sd_folders

    from imagen_bench.cli import main as cli

    a, b = sd_folders()
    base = ["study", "create", "--protocol", "drawbench_sbs", "--prompts", "drawbench:Colors", "--images-per-set", "1"]
    base += ["--out", str(tmp_path / "s")]
    three = ["--model", f"folder:{a}", "--model", f"folder:{b}", "--model", f"folder:{a}"]
    for extra, message in (
        (["--model", f"folder:{a}", "--model", f"folder:{b}"], "--model takes three or more models to rank, got 2"),
        (["--a", f"folder:{a}", *three], "--model replaces --a and --b"),
        ([*three, "--design", "per_category"], "several models are ranked by --design sequential"),
        ([], "give the images to rate: --a (and --b), or --model three times or more"),
        (three, "is given twice"),
    ):
        assert cli(base + extra) == 2, extra
        assert message in capsys.readouterr().err
        assert not (tmp_path / "s").exists()

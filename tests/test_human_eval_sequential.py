"""Sequential A-vs-B studies (issue 30 item 4): the confidence sequences, the deal of batches, the
stopping rule, and the CI size of `imagen-bench sequential` (the docs' table at 120 replicates)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from human_eval.confseq import bernstein, betting, sequence
from human_eval.sequential import REASONS, SequentialPlan, stops
from human_eval.sequential_deal import batches_per_pass, deal


def test_betting_interval_is_the_set_the_two_bettors_cannot_win_on():
    """Recompute the hedged capital for a few candidate means by hand (WSR sec. 4) and compare."""
    x = np.array([0.8, 0.7, 0.9, 0.75, 0.85, 0.8] * 2)
    alpha, c = 0.05, 0.75
    low, high = betting(x[None, :], alpha)
    mu, s2, lam = [0.5], [0.25], []
    for t, _xi in enumerate(x, start=1):
        lam.append(math.sqrt(2 * math.log(2 / alpha) / (s2[-1] * t * math.log(1 + t))))
        mu.append((0.5 + x[:t].sum()) / (t + 1))
        s2.append((0.25 + sum((x[i] - mu[i + 1]) ** 2 for i in range(t))) / (t + 1))

    def capital(m: float) -> float:
        up = np.prod([1 + min(lam[i], c / m) * (x[i] - m) for i in range(len(x))])
        down = np.prod([1 - min(lam[i], c / (1 - m)) * (x[i] - m) for i in range(len(x))])
        return (up + down) / 2

    for m in (0.3, 0.5, 0.53, 0.55, 0.8, 0.89, 0.92):
        kept = capital(m) < 1 / alpha
        assert kept == (low[0, -1] <= m <= high[0, -1]), m
    assert low[0, 9] < 0.5 < low[0, -1]  # twelve batches near 0.8 exclude 1/2, ten do not yet


@pytest.mark.parametrize("method", ["betting", "bernstein"])
def test_sequences_hold_the_mean_at_every_time_at_once(method):
    """Anytime validity: the share of runs whose interval EVER misses the mean stays under alpha."""
    rng = np.random.default_rng(5)
    x = np.clip(rng.beta(6, 4, (300, 60)), 0, 1)  # mean 0.6
    low, high = sequence(x, 0.1, method)
    ever_missed = ((low > 0.6) | (high < 0.6)).any(axis=1).mean()
    assert ever_missed <= 0.1
    assert np.nanmean(high[:, -1] - low[:, -1]) < np.nanmean(high[:, 9] - low[:, 9]) < 1  # it narrows


def test_bad_observations_and_methods_are_refused():
    with pytest.raises(ValueError, match=r"observations must lie in \[0, 1\]"):
        bernstein(np.array([[0.2, 1.3]]), 0.05)
    with pytest.raises(ValueError, match="confidence sequence must be one of betting, bernstein, got 'wald'"):
        sequence(np.array([[0.2]]), 0.05, "wald")
    for kwargs, message in (
        ({"alpha": 0.7}, r"alpha must be in \(0, 0.5\]"),
        ({"half_width": 0}, r"half width must be in \(0, 0.5\)"),
        ({"look_every": 0}, "look interval must be 1..1000"),
        ({"method": "naive"}, "must be one of betting, bernstein"),
    ):
        with pytest.raises(ValueError, match=message):
            SequentialPlan(**kwargs)


def test_deal_passes_cover_every_prompt_and_keep_category_shares():
    from drawbench.prompts import load_drawbench

    prompts = load_drawbench()
    ids, cats = prompts["id"].astype(str).tolist(), prompts["category"].tolist()
    batches = deal(random.Random(3), ids, cats, 45, 40)
    assert len(batches) == 40 and all(len(b) == len(set(b)) == 45 for b in batches)
    first_pass = batches_per_pass(len(ids), 45)
    assert set().union(*batches[:first_pass]) == set(ids)  # one full pass within ceil(200 / 45) = 5 batches
    stream = [k for b in batches for k in b]
    for p in range(len(stream) // len(ids)):  # every pass holds every prompt exactly once
        assert sorted(stream[p * len(ids) : (p + 1) * len(ids)]) == sorted(ids)
    category = dict(zip(ids, cats))
    share = Counter(cats)
    for b in batches[:4]:  # stratified: each category about its share of the batch (a straddling batch may move a few)
        got = Counter(category[k] for k in b)
        assert all(abs(got[c] - 45 * n / len(ids)) <= 2 for c, n in share.items())
    with pytest.raises(ValueError, match="a sequential batch holds 1..200 ordinary tasks"):
        deal(random.Random(0), ids, cats, 201, 1)


def test_stopping_rule_waits_for_the_pass_and_names_its_reason():
    plan = SequentialPlan(half_width=0.05, look_every=2)
    low = np.array(
        [[0.55, 0.56, 0.57, 0.58], [0.40, 0.45, 0.46, 0.46], [0.30, 0.35, 0.40, 0.41], [0.1, 0.2, 0.3, 0.3]]
    )
    high = np.array([[0.9, 0.8, 0.7, 0.7], [0.60, 0.55, 0.55, 0.55], [0.8, 0.7, 0.6, 0.6], [0.9, 0.8, 0.7, 0.7]])
    covered = np.array([[False, True, True, True]] * 4)
    t, reason = stops(low, high, covered, plan, cap=4)
    # row 0 excludes 1/2 from the start, but the first look after the pass is t = 2; row 1 is precise
    # (0.45-0.55) at its first look; row 2 is neither until the cap; row 3 reaches the cap too
    assert t.tolist() == [2, 2, 4, 4]
    assert [REASONS[r] for r in reason] == ["decided", "precise", "cap", "cap"]
    t, reason = stops(low, high, np.zeros_like(covered), plan, cap=4)
    assert t.tolist() == [0, 0, 0, 0] and reason.tolist() == [-1] * 4  # no full pass, no stop (not even the cap)


def test_simulation_ci_size_meets_the_goal_and_catches_peeking():
    """The docs' comparison at 120 replicates (seconds): the default plan saves >= 40 % of the fixed
    design's ratings at 0.6 and 0.7 with no more errors, its final intervals cover; the peeking arm
    (a fixed-sample interval re-checked at every look) is shown failing, so a broken sequence would be too."""
    from selfcheck.sequential.simulate import PEEKING, Sizes, run
    from selfcheck.sequential.table import goal_failures

    frame = pd.DataFrame(
        run(Sizes(replicates=120, fixed_resamples=200, plans=(SequentialPlan(),)), seed=0, log=lambda m: None)
    )
    assert goal_failures(frame, tolerance=2 * math.sqrt(95 * 5 / 120)) == []
    default = frame[frame["default"]].set_index("rate")
    assert (default.loc[[0.6, 0.7], "savings"] >= 40).all() and (default["coverage_prompts"] >= 95).all()
    peeking = frame[frame["design"] == PEEKING].set_index("rate")
    assert peeking.loc[0.5, "error"] > 10 and peeking.loc[0.5, "coverage_population"] < 90


def _sequential_study(out, plan: SequentialPlan, raters: int = 40):
    from human_eval_fixtures import sd_folders

    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study

    a, b = sd_folders()
    return create_study(
        out,
        StudySettings(
            protocol="drawbench_sbs",
            a=f"folder:{a}",
            b=f"folder:{b}",
            prompts="drawbench:Colors,Counting",
            images_per_set=1,
            plan=PlanSettings(raters=raters, batch_size=12, control_share=0.1, design="sequential", sequential=plan),
        ),
    )


def _answer_batch(store, rater: str, rng: random.Random, prefer_b: float, controls_right: bool = True) -> None:
    """A simulated rater answering every task of their batch through the store: on ordinary tasks
    model B (sd-v1-5) with probability prefer_b, else A, sometimes indifferent; checks right or wrong."""
    for t in store.tasks(rater):
        if t.is_control:
            side = "A" if controls_right else "B"
        else:
            side = "tie" if rng.random() < 0.15 else ("B" if rng.random() < prefer_b else "A")
        shown = "tie" if side == "tie" else "left" if (side == "A") == t.a_on_left else "right"
        store.submit(rater, t.task_id, {"quality": shown, "alignment": shown}, 3000)


def test_a_real_study_stops_by_its_rule_while_raters_answer_through_the_store(tmp_path, capsys):
    """A sequential study of the real SD v1.4 / v1.5 DrawBench images (Colors + Counting): simulated
    raters answer one batch each through the store, preferring v1.5; after every batch the app's
    state is read back; the study stops once the sequence excludes 1/2, never before a full pass;
    a flagged rater's batch does not count; a new rater is then turned away, the report states
    the reason and the interval, and an edited study.json plan is refused."""
    import json

    from human_eval.export import answers_frame
    from human_eval.sequential_page import ENDED, ended, study_state
    from imagen_bench.cli import main as cli

    study = _sequential_study(tmp_path / "s", SequentialPlan())
    meta = json.loads((study.root / "study.json").read_text())
    seq = meta["settings"]["plan"]["sequential"]
    assert seq == {
        "alpha": 0.05,
        "half_width": 0.03,
        "look_every": 1,
        "method": "betting",
        "question": "quality",
        "cap_batches": 40,
        "tasks_per_batch": 12,
        "n_prompts": meta["prompts"]["n"],
    }
    store = study.store()
    rng = random.Random(1)
    raters = sorted(store.token_hashes()[1])
    assert all(len(store.tasks(r)) == 12 and {t.batch for t in store.tasks(r)} == {1} for r in raters)
    _answer_batch(store, raters[0], rng, 0.85, controls_right=False)  # fails the checks: answered, never counted
    state = None
    for n, rater in enumerate(raters[1:], start=1):
        assert not ended(study, store)
        _answer_batch(store, rater, rng, 0.85)
        state = study_state(study, store, answers_frame(study.root))
        assert len(state.low) == n and not state.batches.set_index("rater").loc[raters[0], "counted"]
        if state.reason:
            break
    assert state.reason == "decided" and state.high[-1] < 0.5  # v1.5 (model B) preferred: A's rate below 1/2
    assert state.stop_at == n and state.covered[n - 1] and n >= math.ceil(meta["prompts"]["n"] / 10) and n < 39
    assert (state.low[: n - 1] <= 0.5).all() or not state.covered[: n - 1].all()  # not stopped earlier by the rule
    assert ended(study, store)
    assert "Stopped after" in state.describe() and "B preferred" in state.describe()

    late = raters[n + 1]  # a rater who had begun before the stop may finish; the batch comes after the stop
    _answer_batch(store, late, rng, 0.85)
    after = study_state(study, store, answers_frame(study.root))
    assert (after.stop_at, after.reason, after.interval()) == (state.stop_at, state.reason, state.interval())

    report = tmp_path / "report"
    assert cli(["report", str(study.root), "--out", str(report), "--resamples", "100", "--power-studies", "10"]) == 0
    page = (report / "index.html").read_text()
    low, high = state.interval()
    assert f"Stopped after {n} counted batches because the interval excludes 1/2 (B preferred)" in page
    assert f"interval at the stop [{low:.3f}, {high:.3f}]" in page
    findings = page.split('<ul class="findings">', 1)[1]  # the summary leads with what the study's rule found
    assert findings.startswith(f"<li>Sequential study {study.key} (question &#x27;quality&#x27;): Stopped after {n}")

    meta["settings"]["plan"]["sequential"]["half_width"] = 0.2  # an edit after creation changes nothing: refused
    (study.root / "study.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="a plan cannot change once made"):
        study_state(study, store, answers_frame(study.root))
    assert ENDED.startswith("This study has collected")
    store.close()


def test_indifferent_raters_stop_when_the_interval_is_narrow(tmp_path):
    from human_eval.export import answers_frame
    from human_eval.sequential_page import study_state

    study = _sequential_study(tmp_path / "s", SequentialPlan(half_width=0.2, look_every=2), raters=30)
    store = study.store()
    rng = random.Random(2)
    for rater in sorted(store.token_hashes()[1]):
        _answer_batch(store, rater, rng, 0.5)
        state = study_state(study, store, answers_frame(study.root))
        if state.reason:
            break
    assert state.reason == "precise" and state.stop_at % 2 == 0
    low, high = state.interval()
    assert low < 0.5 < high and high - low <= 0.4
    store.close()


def test_sequential_options_are_checked(tmp_path, capsys):
    from human_eval_fixtures import sd_folders

    from imagen_bench.cli import main as cli

    a, b = sd_folders()
    base = [
        "study",
        "create",
        "--a",
        f"folder:{a}",
        "--images-per-set",
        "1",
        "--prompts",
        "drawbench:Colors",
        "--out",
        str(tmp_path / "s"),
    ]
    for extra, message in (
        (
            ["--protocol", "drawbench_sbs", "--b", f"folder:{b}", "--alpha", "0.1"],
            "--alpha applies to --design sequential only",
        ),
        (["--protocol", "coco_alignment", "--design", "sequential"], "the sequential design compares A with B"),
        (
            ["--protocol", "drawbench_sbs", "--b", f"folder:{b}", "--design", "sequential", "--question", "realism"],
            "sequential question must be one of quality, alignment",
        ),
        (
            [
                "--protocol",
                "drawbench_sbs",
                "--b",
                f"folder:{b}",
                "--design",
                "sequential",
                "--raters",
                "2",
                "--batch-size",
                "10",
            ],
            "one full pass over the 23 prompts takes 3 batches of 9; use --raters 3 or more",
        ),
        (
            ["--protocol", "drawbench_sbs", "--b", f"folder:{b}", "--design", "sequential"],
            "a sequential batch holds 1..23 ordinary tasks (the study's prompts), got 48",
        ),
        (
            ["--protocol", "drawbench_sbs", "--b", f"folder:{b}", "--design", "sequential", "--half-width", "0.6"],
            r"half width must be in (0, 0.5)",
        ),
    ):
        assert cli(base + extra) == 2, extra
        assert message in capsys.readouterr().err
        assert not (tmp_path / "s").exists()


def test_app_shows_the_live_sequence_and_turns_away_raters_after_the_stop(tmp_path, monkeypatch):
    """Through the Streamlit app (AppTest): the admin page shows the sequence and the verdict; once
    stopped, a rater who has not begun sees that the study has ended, one mid-batch may go on."""
    from human_eval_fixtures import APP, tokens
    from streamlit.testing.v1 import AppTest

    from human_eval.sequential_page import ENDED

    def app(**params) -> AppTest:
        monkeypatch.setenv("HUMAN_EVAL_STUDY", str(study.root))
        at = AppTest.from_file(str(APP), default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        return at.run()

    study = _sequential_study(tmp_path / "s", SequentialPlan())
    store = study.store()
    raters = sorted(store.token_hashes()[1])
    rng = random.Random(3)
    mid = raters[-1]
    first = store.tasks(mid)[0]
    store.submit(mid, first.task_id, {"quality": "tie", "alignment": "tie"}, 2500)  # began before the stop
    admin = app(admin=tokens(study)["admin"])
    assert not admin.exception and "Still running after 0 counted batches" in admin.info[0].value
    for rater in raters[:12]:
        _answer_batch(store, rater, rng, 0.95)
    admin = app(admin=tokens(study)["admin"])
    assert not admin.exception and not admin.error
    assert "Sequential design: the live confidence sequence" in [h.value for h in admin.subheader]
    assert "Stopped after" in admin.success[0].value and "B preferred" in admin.success[0].value
    fresh = app(t=tokens(study)["raters"][raters[20]])
    assert not fresh.exception and [i.value for i in fresh.info] == [ENDED] and not fresh.radio
    going_on = app(t=tokens(study)["raters"][mid])
    assert not going_on.exception and len(going_on.radio) == 2  # the next task of the batch they began
    store.close()


def _rows(rater: str, prompt: str, answer: str, control_right: bool, minute: int) -> list[dict]:
    at = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=minute)
    common = dict(
        study="s",
        protocol="drawbench_sbs",
        rater=rater,
        question="quality",
        model_a="a",
        model_b="b",
        category="Colors",
        response_ms=3000,
        answered_at=at,
    )
    return [
        common | dict(task_id=f"{rater}-o", answer=answer, prompt_id=prompt, is_control=False, control_correct=None),
        common
        | dict(
            task_id=f"{rater}-c",
            answer="A" if control_right else "B",
            prompt_id="99",
            is_control=True,
            control_correct=control_right,
        ),
    ]


def test_the_cap_is_reached_when_every_planned_batch_is_in_flagged_ones_too():
    """Three planned batches, the third rater fails the checks: the study stops at the cap when that
    third batch is in, at the last counted batch, not earlier (no look is ever moved back)."""
    from human_eval.sequential import record, state

    settings = {
        "control_threshold": 0.8,
        "plan": {
            "design": "sequential",
            "sequential": record(
                SequentialPlan(half_width=0.01), "quality", cap_batches=3, tasks_per_batch=2, n_prompts=2
            ),
        },
    }
    two = pd.DataFrame(_rows("r1", "1", "tie", True, 1) + _rows("r2", "2", "A", True, 2))
    running = state(two, settings, 0.8)
    assert (
        running.reason is None
        and running.stop_at == 0
        and len(running.low) == 2
        and running.covered.tolist() == [False, True]
    )
    three = pd.concat([two, pd.DataFrame(_rows("r3", "1", "A", False, 3))], ignore_index=True)
    capped = state(three, settings, 0.8)
    assert (capped.reason, capped.stop_at) == ("cap", 2) and capped.batches["counted"].tolist() == [True, True, False]
    assert capped.estimate == 0.75 and "the cap was reached" in capped.describe()


def test_bradley_terry_orders_and_ranking_finds_the_decided_chain():
    """The simulation's fit and rule are the app's (common.bradley_terry, human_eval.ranking)."""
    from common.bradley_terry import fit
    from human_eval.ranking import ranked
    from selfcheck.sequential.ranking import BT_ITERATIONS, PRIOR

    wins = np.zeros((1, 3, 3))
    wins[0, 2, 1], wins[0, 1, 2] = 60, 40  # 2 beats 1, 1 beats 0, 2 beats 0
    wins[0, 1, 0], wins[0, 0, 1] = 70, 30
    wins[0, 2, 0], wins[0, 0, 2] = 80, 20
    assert np.argsort(-fit(wins, prior=PRIOR, iterations=BT_ITERATIONS)[0]).tolist() == [2, 1, 0]
    decided = np.zeros((2, 3, 3), bool)
    decided[:, 2, 1] = decided[:, 1, 0] = True  # both replicates: 2 > 1 > 0 ...
    decided[1, 1, 0] = False  # ... except the second, where 1 vs 0 is open
    assert ranked(decided).tolist() == [list(itertools.permutations(range(3))).index((2, 1, 0)), -1]


def test_several_models_information_driven_pairs_spend_fewer_ratings():
    """Four models, adjacent preference 0.6, 20 replicates (seconds): both sequential designs find the
    true order every time with every pair's interval covering, information-driven pair choice with
    fewer ratings than round robin, both far fewer than rating every pair in full."""
    from selfcheck.sequential.ranking import run
    from selfcheck.sequential.simulate import Sizes

    rows = pd.DataFrame(
        run(Sizes(ranking_replicates=20, ranking_adjacent=(0.6,), fixed_resamples=100), seed=0, log=lambda m: None)
    )
    by = rows.set_index("design")["savings"]
    fixed, robin, informed = by.index
    assert (rows["right_order"] == 100).all() and (rows.loc[rows["design"] != fixed, "coverage_all_pairs"] >= 90).all()
    assert by[informed] > by[robin] + 10 and by[robin] > 30

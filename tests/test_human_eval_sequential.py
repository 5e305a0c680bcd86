"""Sequential A-vs-B studies (issue 30 item 4): the confidence sequences, the deal of batches, the
stopping rule, and the CI size of `imagen-bench sequential` (the docs' table at 120 replicates)."""
from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
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
    for t, xi in enumerate(x, start=1):
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
    for kwargs, message in (({"alpha": 0.7}, r"alpha must be in \(0, 0.5\]"), ({"half_width": 0}, r"half width must be in \(0, 0.5\)"),
                            ({"look_every": 0}, "look interval must be 1..1000"), ({"method": "naive"}, "must be one of betting, bernstein")):
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
        assert sorted(stream[p * len(ids):(p + 1) * len(ids)]) == sorted(ids)
    category = dict(zip(ids, cats))
    share = Counter(cats)
    for b in batches[:4]:  # stratified: each category about its share of the batch (a straddling batch may move a few)
        got = Counter(category[k] for k in b)
        assert all(abs(got[c] - 45 * n / len(ids)) <= 2 for c, n in share.items())
    with pytest.raises(ValueError, match="a sequential batch holds 1..200 ordinary tasks"):
        deal(random.Random(0), ids, cats, 201, 1)


def test_stopping_rule_waits_for_the_pass_and_names_its_reason():
    plan = SequentialPlan(half_width=0.05, look_every=2)
    low = np.array([[0.55, 0.56, 0.57, 0.58], [0.40, 0.45, 0.46, 0.46], [0.30, 0.35, 0.40, 0.41], [0.1, 0.2, 0.3, 0.3]])
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
    import pandas as pd

    from selfcheck.sequential.simulate import PEEKING, Sizes, run
    from selfcheck.sequential.table import goal_failures

    frame = pd.DataFrame(run(Sizes(replicates=120, fixed_resamples=200, plans=(SequentialPlan(),)), seed=0, log=lambda m: None))
    assert goal_failures(frame, tolerance=2 * math.sqrt(95 * 5 / 120)) == []
    default = frame[frame["default"]].set_index("rate")
    assert (default.loc[[0.6, 0.7], "savings"] >= 40).all() and (default["coverage_prompts"] >= 95).all()
    peeking = frame[frame["design"] == PEEKING].set_index("rate")
    assert peeking.loc[0.5, "error"] > 10 and peeking.loc[0.5, "coverage_population"] < 90

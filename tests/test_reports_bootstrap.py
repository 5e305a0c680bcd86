"""Intervals: Wilson and preference rates by hand, the vectorised bootstrap against a slow loop,
and the coverage of the default interval in simulated studies with a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.bootstrap import (
    DEFAULT_RESAMPLES,
    CrossedBootstrap,
    crossed_system,
    crossed_variance,
    nnls3,
    resample_indices,
    wilson,
)
from reports.preference import CIConfig, RatingsAnalysis, sbs_table
from reports.simulate import RaterModel, StudyDesign, simulate


def test_wilson_matches_hand_computation():
    # 8 successes of 10, z = 1.959964: centre = (0.8 + z^2/20) / (1 + z^2/10) = 0.716745,
    # half = z / (1 + z^2/10) * sqrt(0.8*0.2/10 + z^2/400) = 0.226577
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.716745 - 0.226577, abs=1e-5)
    assert high == pytest.approx(0.716745 + 0.226577, abs=1e-5)


def _frame(answers: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(prompt_id, category, rater, answer) -> contract-2 frame for one pair and question."""
    return pd.DataFrame(
        [
            {
                "study": "s",
                "protocol": "drawbench_sbs",
                "task_id": f"t{p}",
                "rater": r,
                "question": "quality",
                "answer": a,
                "model_a": "m1",
                "model_b": "m2",
                "prompt_id": p,
                "category": c,
                "is_control": False,
                "control_correct": None,
                "response_ms": 1,
                "answered_at": None,
            }
            for p, c, r, a in answers
        ]
    )


def test_preference_rates_match_hand_result():
    df = _frame(
        [
            ("1", "Colors", "r1", "A"),
            ("1", "Colors", "r2", "tie"),
            ("2", "Colors", "r1", "B"),
            ("2", "Colors", "r2", "A"),
            ("3", "Text", "r1", "A"),
            ("3", "Text", "r2", "A"),
            ("4", "Text", "r1", "tie"),
            ("4", "Text", "r2", "B"),
        ]
    )
    table = sbs_table(RatingsAnalysis(df, CIConfig(resamples=200))).set_index("category")
    # All: 4 A, 2 tie, 2 B of 8 -> (4 + 1) / 8 = 0.625; without ties 4 / 6
    assert table.loc["All", ["share_A", "share_tie", "share_B"]].tolist() == [0.5, 0.25, 0.25]
    assert table.loc["All", "pref_A"] == pytest.approx(0.625)
    assert table.loc["All", "pref_A_no_ties"] == pytest.approx(4 / 6)
    assert table.loc["All", "n_decisive"] == 6
    # Colors: A, tie, B, A -> (2 + 0.5) / 4; Text: A, A, tie, B -> 2.5 / 4
    assert table.loc["Colors", "pref_A"] == pytest.approx(0.625)
    assert table.loc["Text", "pref_A_no_ties"] == pytest.approx(2 / 3)
    assert table.loc["All", ["pref_A_wilson_low", "pref_A_wilson_high"]].tolist() == pytest.approx(
        list(wilson(5.0, 8))
    )
    assert table.loc["All", "pref_A_low"] <= 0.625 <= table.loc["All", "pref_A_high"]


def _loop_replicates(prompt, rater, y, seed, n_prompts, n_raters, resamples):
    """Obviously correct: build each resampled data set explicitly by copying answers."""
    p_idx, r_idx = resample_indices(seed, n_prompts, n_raters, resamples)
    by_prompt = [y[prompt == i] for i in range(n_prompts)]
    by_rater = [y[rater == j] for j in range(n_raters)]
    row, col, two_way = [], [], []
    for b in range(resamples):
        row.append(np.concatenate([by_prompt[i] for i in p_idx[b]]).mean())
        col.append(np.concatenate([by_rater[j] for j in r_idx[b]]).mean())
        cells = [y[(prompt == i) & (rater == j)] for i in p_idx[b] for j in r_idx[b]]
        two_way.append(np.concatenate(cells).mean())
    return np.array(row), np.array(col), np.array(two_way)


def test_vectorised_bootstrap_equals_slow_loop():
    rng = np.random.default_rng(3)
    n_prompts, n_raters, resamples = 7, 5, 40
    prompt = np.repeat(np.arange(n_prompts), n_raters)  # fully crossed: every (prompt, rater) pair present
    rater = np.tile(np.arange(n_raters), n_prompts)
    y = rng.choice([0.0, 0.5, 1.0], size=len(prompt))
    boot = CrossedBootstrap(n_prompts, n_raters, resamples, seed=11)
    row, col = boot.one_way_replicates(prompt, rater, y)
    loop_row, loop_col, loop_two = _loop_replicates(prompt, rater, y, 11, n_prompts, n_raters, resamples)
    np.testing.assert_allclose(row, loop_row, rtol=1e-12)
    np.testing.assert_allclose(col, loop_col, rtol=1e-12)
    np.testing.assert_allclose(boot.pigeonhole_replicates(prompt, rater, y), loop_two, rtol=1e-12)
    iv = boot.interval(prompt, rater, y)
    var, df = crossed_variance(prompt, rater, y, loop_row.var(ddof=1), loop_col.var(ddof=1), resamples)
    from scipy.stats import t

    m = y.mean()  # the logit-scale interval, with the independent, slow-to-import t quantile
    half = t.ppf(0.975, df) * np.sqrt(var) / (m * (1 - m))
    centre = np.log(m / (1 - m))
    assert (iv.low, iv.high) == pytest.approx(
        (1 / (1 + np.exp(half - centre)), 1 / (1 + np.exp(-half - centre))), rel=1e-12
    )
    assert iv.df == pytest.approx(df, rel=1e-12)
    q = np.quantile(loop_two, [0.025, 0.975])
    ph = boot.interval(prompt, rater, y, method="pigeonhole")
    assert (ph.low, ph.high) == pytest.approx(tuple(q), rel=1e-12)


def test_satterthwaite_df_describes_the_variance_estimator_used():
    """Where the non-negative fit sets a component to 0 (here the raters', their variance observed
    at 0), Var is the least-squares fit on the components kept, c . observed with c from those
    columns alone, and the df is Satterthwaite's for that c; the unconstrained solve's c (the former
    df's) is not the estimator used: c . observed differs from Var."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(5)
    n_prompts, n_raters = 20, 5
    prompt, rater = np.tile(np.arange(n_prompts), n_raters), np.repeat(np.arange(n_raters), n_prompts)
    y = rng.choice([0.0, 0.5, 1.0], size=len(prompt))
    v_prompt = float(((np.bincount(prompt, y) / n_raters - y.mean()) ** 2).sum() / n_prompts**2)
    var, df = crossed_variance(prompt, rater, y, v_prompt, 0.0, 2000)
    system = crossed_system(prompt, rater, y, v_prompt, 0.0, 2000)
    components = nnls(system.expected, system.observed)[0]
    assert components[1] == 0 and (components[[0, 2]] > 0).all()
    kept = np.linalg.lstsq(system.expected[:, [0, 2]], np.eye(3), rcond=None)[0].T @ system.weights[[0, 2]]
    assert var == pytest.approx(components @ system.weights, rel=1e-10)
    assert var == pytest.approx(kept @ system.observed, rel=1e-10)
    terms = kept * system.observed
    assert df == pytest.approx(var**2 / (terms**2 / system.dfs).sum(), rel=1e-10)
    unconstrained = np.linalg.solve(system.expected.T, system.weights)
    assert unconstrained @ system.observed < 0.9 * var


def test_nnls3_matches_scipy():
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.normal(size=(3, 3)), rng.normal(size=3)
        np.testing.assert_allclose(nnls3(a, b), nnls(a, b)[0], atol=1e-9)


def test_unknown_method_lists_allowed():
    with pytest.raises(ValueError, match="crossed, pigeonhole, wilson"):
        CIConfig(method="bca")


# A DrawBench-like study: 60 prompts, 40 raters rating 30 prompts each; strong prompt
# heterogeneity (logit sd 1) and rater bias (logit sd 0.5), 20 % ties, true preference 0.58.
MODEL = RaterModel(preference=0.58, prompt_sd=1.0, rater_sd=0.5, tie_rate=0.2)
DESIGN = StudyDesign(n_prompts=60, n_raters=40, answers_per_rater=30)
RESAMPLES = DEFAULT_RESAMPLES  # the default the report uses (2000)


def coverage(studies: int, seed: int, method: str = "crossed") -> tuple[float, float]:
    """(share of studies whose interval covers the true preference, mean interval width)."""
    rng = np.random.default_rng(seed)
    hits, widths = 0, []
    for s in range(studies):
        sim = simulate(MODEL, DESIGN, rng)
        iv = CrossedBootstrap(DESIGN.n_prompts, DESIGN.n_raters, RESAMPLES, seed=s).interval(
            sim.prompt, sim.rater, sim.score, method
        )
        hits += iv.low <= MODEL.preference <= iv.high
        widths.append(iv.high - iv.low)
    return hits / studies, float(np.mean(widths))


def test_coverage_fast():
    # 300 studies: binomial sd of a 95 % coverage estimate is 1.26 %; band = about +-3 sd
    cov, width = coverage(300, seed=100)
    assert 0.91 <= cov <= 0.985, cov
    naive_cov, naive_width = coverage(100, seed=100, method="pigeonhole")
    assert naive_width > 1.1 * width  # the plain two-way bootstrap double counts the residual variance


@pytest.mark.slow
def test_coverage_slow():
    # 3000 studies: sd of the estimate 0.4 %; the brief's band 94-96 %
    cov, _ = coverage(3000, seed=200)
    assert 0.94 <= cov <= 0.96, cov

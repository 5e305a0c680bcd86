"""The intervals against known truths (selfcheck/coverage): the closed-form truths themselves against
large Monte Carlo samples, then a small version of `imagen-bench coverage` in which the suite's
intervals hold their coverage and stay in range, and the former ones visibly fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bench.metrics.stats import gaussian_kernel, polynomial_kernel
from imagen_bench.cli import main as cli
from reports.bootstrap import crossed_bounds, crossed_p
from reports.paired import SECOND_ORDER_MIN_BLOCKS
from selfcheck.coverage.crossed import FORMER, SUITE, calibration, simulate
from selfcheck.coverage.paired import paired_set_metrics
from selfcheck.coverage.simulate import QUICK, per_image, ranks, set_metrics
from selfcheck.coverage.truths import poly_expectations, rbf_expectations

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(3)
    d = 6
    a = rng.normal(size=(d, d))
    sigma = a @ a.T / d + 0.2 * np.eye(d)
    mu = rng.normal(size=d) * 0.5
    return rng, mu, sigma, rng.normal(size=(5, d))


def test_kernel_expectations_equal_monte_carlo(gaussian):
    """E k(g, y) and E k(g, g') for g ~ N(mu, S), for the cubic KID kernel and CMMD's Gaussian one,
    against 400,000 draws (standard errors ~0.2 %)."""
    rng, mu, sigma, ref = gaussian
    g = rng.multivariate_normal(mu, sigma, 400_000)
    g2 = rng.multivariate_normal(mu, sigma, 400_000)
    within, cross = poly_expectations(mu, sigma, ref)
    d = len(mu)
    assert polynomial_kernel(g, ref).mean(0) == pytest.approx(cross, rel=0.02)
    assert float(((g * g2).sum(1) / d + 1).__pow__(3).mean()) == pytest.approx(within, rel=0.02)
    s = 2.0
    within, cross = rbf_expectations(mu, sigma, ref, s)
    assert gaussian_kernel(g[:100_000], ref, s).mean(0) == pytest.approx(cross, rel=0.02, abs=1e-3)
    assert float(np.exp(-((g - g2) ** 2).sum(1) / (2 * s * s)).mean()) == pytest.approx(within, rel=0.02)


def test_per_image_intervals_stay_in_range_and_cover():
    """Every per-image interval inside its range; coverage of the suite's method >= 91 % in every
    exact cell (one 0/1 image per prompt) and >= 89 % in every simulated one (400 replicates: the
    lowest of 84 cells sits ~2.5 Monte Carlo SE below the truth); the former mean +- t SE below 50 %
    for rare events on 3 prompts and outside [0, 1] in most replicates somewhere."""
    rows = pd.DataFrame(per_image(dataclasses.replace(QUICK, replicates=400)))
    suite, former = rows[~rows["method"].str.contains("former")], rows[rows["method"].str.contains("former")]
    assert (suite["out_of_range"] == 0).all()
    assert suite["coverage"].min() >= 89.0, suite.sort_values("coverage").head(3).to_string()
    exact = suite[suite["replicates"] == "exact"]
    assert len(exact) == 28 and exact["coverage"].min() >= 91.0
    rare = former[
        former["scenario"].str.endswith(("p=0.02", "p=0.98")) & (former["n"] == 3) & (former["metric"] != "continuous")
    ]
    assert len(rare) == 6 and rare["coverage"].max() < 50 and former["out_of_range"].max() > 50


def test_set_metric_intervals_cover_and_the_former_bootstrap_does_not():
    """FD (jackknife over prompt blocks), KID, CMMD and PRDC (blocks) cover their conditional truths
    on Gaussian features; the former with-replacement bootstrap misses FD and KID badly."""
    sizes = dataclasses.replace(
        QUICK, replicates=120, old_replicates=40, old_resamples=40, prdc_truth_sets=200, prompts=60, reference=600
    )
    rows = pd.DataFrame(set_metrics(sizes, seed=1, former=("fd",)))
    suite, former = rows[rows["method"] != "bootstrap (former)"], rows[rows["method"] == "bootstrap (former)"]
    assert set(suite["metric"]) == {"fd", "kid", "cmmd", "precision", "recall", "density", "coverage"}
    assert suite["coverage"].min() >= 88.0, suite.sort_values("coverage").head(3).to_string()
    assert (suite["out_of_range"] == 0).all()
    fd = former[former["metric"] == "fd"]
    assert fd["coverage"].min() < 20  # it brackets FID-N (biased upward), not the Frechet distance


def test_paired_set_metric_comparison_holds_its_level():
    """The leaderboard's paired test of two entries' set metrics on the same prompts
    (reports.paired.block_difference) under no difference, against the exact truth 0: both entries
    at the reference's distribution (the degenerate point, where the FD / KID / CMMD jackknives are
    conservative) and both far from it. Its type I error stays within 5 % + 3 Monte Carlo SE for
    every metric; far from the reference the test is not conservative either (coverage <= 99 %).
    Both checks fail on a wrong test: the unpaired one (SE from the two entries' block values
    apart, the prompts' shared spread counted twice) covered 100 % for KID there, an SE halved
    69-85 %."""
    sizes = dataclasses.replace(QUICK, replicates=150, prompts=60, reference=600, blocks=SECOND_ORDER_MIN_BLOCKS)
    nulls = (("identical", "identical"), ("shift-large", "shift-large"))
    rows = pd.DataFrame(paired_set_metrics(sizes, seed=3, log=lambda _: None, pairs=nulls))
    assert set(rows["metric"]) == {"fd", "kid", "cmmd", "precision", "recall", "density", "coverage"}
    mmd = rows[rows["metric"].isin(["kid", "cmmd"])]  # the shipped KID / CMMD test: its second-order excess taken off
    assert mmd["method"].str.endswith("jackknife less its second-order excess").all()
    assert len(rows) == 14 and (rows["truth"] == 0).all()
    floor = 100 - (5 + 3 * 100 * np.sqrt(0.05 * 0.95 / 150))
    assert rows["coverage"].min() >= floor, rows.sort_values("coverage").head(3).to_string()
    far = rows[rows["scenario"] == "shift-large - shift-large"]
    assert far["coverage"].max() <= 99.0, far.to_string()


def test_holm_keeps_false_separations_among_identical_entries_rare():
    rows = {r["method"]: r for r in ranks(dataclasses.replace(QUICK, rank_tables=120), seed=2)}
    assert rows["Holm"]["false_separation"] <= 10.0 and rows["per-pair 5 % (former)"]["false_separation"] >= 40.0


def test_coverage_command_writes_its_table(tmp_path, capsys):
    out = tmp_path / "cov"
    assert cli(["coverage", "--quick", "--parts", "per-image", "--replicates", "50", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"coverage.csv", "coverage.md", "coverage.json"}
    text = (out / "coverage.md").read_text()
    assert "### wilson-eff" in text and "| binary | 3 |" in text and "imagen-bench coverage --quick" in text
    assert cli(["coverage", "--quick", "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["coverage", "--parts", "fid", "--out", str(tmp_path / "x")])
    assert (
        "parts must be a comma-separated subset of per-image, fd, kid, cmmd, prdc, paired, ranks"
        in capsys.readouterr().err
    )


def test_crossed_human_interval_holds_in_the_tail_and_the_former_does_not():
    """The report's preference-rate interval (reports.bootstrap, "crossed") in the tail, against a
    known truth (selfcheck/coverage/crossed.py, 10 raters x 50 prompts fully crossed, 2,000 resamples):
    at a true rate 0.8 (binary answers) it misses no more than nominal + 3 Monte Carlo SE at 95 % and
    99.17 % (1 - 0.05 / 6), and its intervals lying wholly above the truth (towards the bound) stay
    within their side's share (2.5 % and 0.5 % at 95 % and 99 %); the former raw-scale t interval
    piles its misses up there (4.1 % of 5.6 % at 95 %, 1.26 % of 1.42 % at 99 %). Under no
    preference the p-value's type I error holds at 0.05 and 0.01, and p < 0.05 exactly when the 95 %
    interval excludes 1/2."""

    def within(share: float, nominal: float, n: int) -> bool:  # percent, at most 3 Monte Carlo SE above
        return share <= nominal + 3 * 100 * np.sqrt(nominal / 100 * (1 - nominal / 100) / n)

    n = 5000
    sim = simulate(50, 10, 0.8, "binary", n, 2000, seed=0)
    suite, former = calibration(sim, 0.8, SUITE), calibration(sim, 0.8, FORMER)
    assert within(suite["miss 95"], 5.0, n) and within(suite["miss 99.17"], 100 * 0.05 / 6, n), suite
    assert within(suite["below 95"], 2.5, n) and within(suite["below 99"], 0.5, n), suite  # truth below the interval
    assert not within(former["below 95"], 2.5, n) and not within(former["below 99"], 0.5, n), former

    n = 3000
    sim = simulate(50, 10, 0.5, "3-way", n, 2000, seed=1)
    null = calibration(sim, 0.5, SUITE)
    assert within(null["type I 0.05"], 5.0, n) and within(null["type I 0.01"], 1.0, n), null
    se = np.sqrt(sim["var"])
    p = np.array([crossed_p(e, s, d) for e, s, d in zip(sim["estimate"], se, sim["df"])])
    low, high = np.array([crossed_bounds(e, s, d, 0.95) for e, s, d in zip(sim["estimate"], se, sim["df"])]).T
    np.testing.assert_array_equal(p < 0.05, (low > 0.5) | (high < 0.5))

"""The delete-a-block jackknife of an MMD^2 U-statistic, less its second-order excess
(bench.metrics.blocks.mmd_second_order), against the statistic's true variance measured by
simulation: many independent data sets, the spread of the statistic across them is the truth."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import blocks as B
from bench.metrics.stats import polynomial_kernel


def _simulate(
    shift: float, replicates: int = 2000, n: int = 60, groups: int = 10, dim: int = 4
) -> tuple[float, float, float]:
    """(Var of the statistic across data sets, mean jackknife variance, mean corrected variance)."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, dim))  # the reference is held fixed, as in the suite
    blocks = np.arange(n) % groups
    values, plain, corrected = [], [], []
    for _ in range(replicates):
        x = rng.normal(size=(n, dim)) + shift
        full, leave, excess = B.mmd_leave_out(polynomial_kernel, x, ref, blocks)
        v_j = (groups - 1) / groups * ((leave - leave.mean()) ** 2).sum()
        values.append(full)
        plain.append(v_j)
        corrected.append(v_j - excess)
    return float(np.var(values, ddof=1)), float(np.mean(plain)), float(np.mean(corrected))


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_the_corrected_jackknife_variance_is_the_statistics_variance(shift):
    """Identical distributions (shift 0): the U-statistic is degenerate and the plain jackknife
    counts its degenerate part 2 (G-1)/(G-2) = 2.25 times (1.6 times the total here); the correction brings it to the truth.
    A mean shift (linear part dominant): both near the truth. Monte Carlo error ~3 %: 12 % is ~4 SE."""
    truth, plain, corrected = _simulate(shift)
    if shift == 0.0:
        assert plain / truth > 1.4  # 1.6 here: the fixed finite reference leaves a small linear part
    assert corrected / truth == pytest.approx(1.0, abs=0.12)


def test_the_skew_corrected_interval_balances_its_misses_on_skewed_block_values():
    """Block values of k-NN metrics (density, coverage) are right-skewed; the symmetric t interval
    on their mean then misses the truth on the high side several times as often as on the low side.
    Known truth: means of G = 20 Gamma(2, 1) values (skewness 1.41, true mean 2), 8,000 data sets.
    The t interval misses ~6:1 (1,131 / 182 in 20,000); Hall's transformation ~1.7:1 at 94.9 %."""
    rng = np.random.default_rng(3)
    draws = rng.gamma(2.0, 1.0, (8000, 20))
    t_high = t_low = h_high = h_low = 0
    for v in draws:
        se = v.std(ddof=1) / np.sqrt(20)
        lo, hi = B.t_interval(v.mean(), se, 19, 0.95, None, None)
        t_high, t_low = t_high + (hi < 2.0), t_low + (lo > 2.0)
        lo, hi = B.skew_t_interval(v, 0.95, 0.0, None)
        h_high, h_low = h_high + (hi < 2.0), h_low + (lo > 2.0)
    assert t_high > 4 * t_low  # the symmetric interval's one-sided misses
    assert 0.935 <= 1 - (h_high + h_low) / 8000 <= 0.965
    assert h_high <= 2.2 * h_low


def test_the_skew_corrected_interval_is_the_t_interval_without_skew_and_stays_in_range():
    v = np.array([0.1, 0.3, 0.5, 0.7, 0.9])  # no skew: Hall's transformation is the identity
    se = v.std(ddof=1) / np.sqrt(5)
    assert B.skew_t_interval(v, 0.95, None, None) == pytest.approx(B.t_interval(0.5, se, 4, 0.95, None, None))
    lo, hi = B.skew_t_interval(np.array([0.0, 0.0, 0.0, 0.02, 0.9]), 0.95, 0.0, 1.0)
    assert 0.0 <= lo <= hi <= 1.0

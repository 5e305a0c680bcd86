"""The former set-metric interval, kept only as the known-bad arm of `imagen-bench coverage`:
resample the generated features with replacement (the reference fixed) and take the replicates'
percentile spread around their median, moved onto the estimate ("re-centred"). Duplicates in a
resample turn KID's U-statistic into the V-statistic and shrink k-NN radii, so the spread sits off
the estimand; the coverage table shows it failing (docs/intervals.md). Not used by any metric.

Also the former crossed human-rating interval (crossed_former*): raw-scale t with the unconstrained
fit's degrees of freedom, the known-bad arm of the crossed tail table (selfcheck/coverage/crossed.py)."""

from __future__ import annotations

import numpy as np
from scipy.special import stdtr, stdtrit

from bench.metrics.stats import feature_stats
from reports.bootstrap import crossed_system, satterthwaite


def frechet_bootstrap(
    mu_ref: np.ndarray, sigma_ref: np.ndarray, features: np.ndarray, resamples: int, seed: int = 0, level: float = 0.95
) -> tuple[float, float, np.ndarray]:
    """Percentile interval of the Frechet distance from resampling the generated features (N, D)
    with replacement, the reference statistics held fixed (it is computed once, from many more
    images, and is the same for every cell compared). Returns (low, high, the R replicates).
    Reuses the reference's square root across resamples: one eigh per resample instead of two.
    Note: each replicate is an FID at the same N, so the interval is about FID-N; FID-N is biased
    upward as N shrinks, and the interval does not remove that bias."""
    f = np.asarray(features, np.float64)
    n = len(f)
    if n < 2:
        raise ValueError(f"FID bootstrap needs at least 2 images, got {n}")
    w, v = np.linalg.eigh(np.asarray(sigma_ref, np.float64))
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S_ref^{1/2}
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for r in range(resamples):
        mu, sigma = feature_stats(f[rng.integers(0, n, n)])
        a = root @ sigma @ root
        trace = float(np.sqrt(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0, None)).sum())
        diff = mu_ref - mu
        out[r] = diff @ diff + np.trace(sigma_ref) + np.trace(sigma) - 2 * trace
    low, high = np.quantile(out, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), out


def recentred(value: float, replicates: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, shift): the bootstrap replicates' percentile spread around their median, moved to
    sit around the estimate; shift = median - value.

    Why: a resample drawn with replacement holds ~63 % distinct images, and duplicates move every set
    metric the same way FID-N's small-sample bias does (FID, KID and precision up / recall and
    coverage down: on 200 SD images FID 102.8 gave replicates 124-138, and the self-comparison FID 0
    gave 44-61). The plain percentile interval then need not even contain the estimate. The spread
    is what resampling measures well; the shift is recorded beside it (a bias-correction assumption:
    the same shift at the estimate)."""
    reps = np.asarray(replicates, float)
    lo, med, hi = np.quantile(reps, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return float(value + lo - med), float(value + hi - med), float(med - value)


def resampled(fn, features: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """(R, K) replicates of fn (features -> K numbers) over resamples of the rows of `features`
    (N, D) with replacement (intervals: recentred). Used for KID and precision / recall / density /
    coverage, the reference held fixed as for FID (frechet_bootstrap)."""
    f = np.asarray(features, np.float64)
    rng = np.random.default_rng(seed)
    reps = np.array(
        [np.atleast_1d(fn(f[rng.integers(0, len(f), len(f))])) for _ in range(resamples)], dtype=float
    )  # (R, K)
    return reps


def crossed_former_df(
    prompt: np.ndarray, rater: np.ndarray, y: np.ndarray, v_prompt: float, v_rater: float, resamples: float, var: float
) -> float:
    """The former crossed human-rating interval's degrees of freedom for its variance `var` (the same
    as now, reports.bootstrap.crossed_variance): Satterthwaite's df from the coefficients of the
    unconstrained solve even when the non-negative fit put a component at 0. With it the interval
    was mean +- t_df SE on the raw scale (crossed_former_bounds); the known-bad arm of the crossed
    tail table (selfcheck/coverage/crossed.py)."""
    system = crossed_system(prompt, rater, y, v_prompt, v_rater, resamples)
    coef = np.linalg.pinv(system.expected).T @ system.weights
    return satterthwaite(var, coef * system.observed, system.dfs)


def crossed_former_bounds(estimate: np.ndarray, se: np.ndarray, df: np.ndarray, level: float) -> tuple:
    """mean +- t_df SE clipped to [0, 1] (the former crossed interval), elementwise."""
    half = stdtrit(df, 0.5 + level / 2) * se
    return np.maximum(0.0, estimate - half), np.minimum(1.0, estimate + half)


def crossed_former_p(estimate: np.ndarray, se: np.ndarray, df: np.ndarray, null: float = 0.5) -> np.ndarray:
    """The p-value dual to crossed_former_bounds: 2 t_df(-|estimate - null| / SE)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, 2 * stdtr(df, -np.abs(estimate - null) / se), (estimate == null).astype(float))

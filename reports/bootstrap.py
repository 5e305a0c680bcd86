"""Confidence intervals for a mean of ratings collected in a prompts x raters crossed design.

An answer k has a score y_k (side by side: A = 1, tie = 0.5, B = 0; caption: yes/somewhat/no =
1/0.5/0), a prompt i(k) and a rater j(k). The estimand is the population mean of y over prompts
and raters (both are samples from larger populations); the estimate is the answer mean
theta = sum(y) / N. Model (any exchangeable crossed random-effects model has this ANOVA form):
    y_k = mu + a_i + b_j + e_k,   Var a = sA2, Var b = sB2, Var e = sE2 (e includes the Bernoulli
    noise and the prompt x rater interaction), so
    Var(theta) = (sA2 * sum_i n_i^2 + sB2 * sum_j n_j^2 + sE2 * N) / N^2.

Methods (registry METHODS):
- "crossed" (default): two one-way bootstraps (resample prompts; resample raters) and the
  answer-level (iid) variance. Each one-way bootstrap variance double counts the other factor and
  the residual (Owen 2007, "The pigeonhole bootstrap"; McCullagh 2000), so the naive two-way
  bootstrap over-covers. We write the expected value of each of the three variances as a linear
  function of (sA2, sB2, sE2) for the observed design (exact quadratic forms below), solve for
  the components (non-negative least squares) and plug them into Var(theta). For the usual sparse
  design this reduces to V_row + V_col - V_iid ("one-way variances minus the residual").
  Interval: theta +- t_df * sqrt(Var), clipped to the score range [0, 1]. Var is a linear
  combination sum_k c_k V_k of the prompt, rater and iid variances, which are sums of squares over
  R prompts, C raters and N answers; Satterthwaite's degrees of freedom
  df = Var^2 / sum_k (c_k V_k)^2 / df_k with df_k = R-1, C-1, N-1. (The variance is estimated from
  few prompts and raters; a z quantile under-covers by ~1 % at R=60, C=40.)
- "pigeonhole": the plain two-way bootstrap (prompts and raters resampled together), percentile
  interval. Conservative; kept for comparison.
- "wilson": Wilson score interval treating the N answers as independent Bernoulli trials (ties as
  half a success). Ignores prompt and rater clustering; shown alongside for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri, stdtrit  # normal and Student t quantiles (scipy.stats is slow to import)

from common.errors import check_choice

METHODS = ("crossed", "pigeonhole", "wilson")
DEFAULT_METHOD = "crossed"
# 2000 resamples: Monte Carlo error of a bootstrap variance is ~sqrt(2/B) = 3 %, i.e. ~1.5 % on
# the interval width; the benchmark runs 10 000.
DEFAULT_RESAMPLES = 2000
# Every --resamples (report, leaderboard, power): below 100 a 95 % percentile tail holds 2 replicates
# and a bootstrap variance is off by ~14 %; above 100,000 the resample indices alone take resamples x
# prompts x 8 bytes (1.3 GB at PartiPrompts' 1,632 prompts) for an interval whose Monte Carlo error
# is already below 0.5 %. (10**9 asked numpy for 150+ GiB.)
RESAMPLES_RANGE = (100, 100_000)
PIGEONHOLE_BLOCK = 64  # resamples per block in the pigeonhole method: bounds memory to 64 x N floats


def check_method(method: str) -> str:
    return check_choice("CI method", method, METHODS)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    se: float  # standard error behind the interval (nan for percentile intervals)
    method: str
    n: int  # answers
    n_prompts: int
    n_raters: int
    resamples: int  # 0 for closed-form intervals
    seed: int | None
    level: float

    def describe(self) -> str:
        boot = f", {self.resamples} resamples, seed {self.seed}" if self.resamples else ""
        return (
            f"{self.method} {self.level:.0%} CI over N={self.n} answers, {self.n_prompts} prompts, "
            f"{self.n_raters} raters{boot}"
        )


def z_value(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(ndtri(0.5 + level / 2.0))  # two-sided: z = Phi^-1(1 - alpha/2)


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = z_value(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(centre - half), float(centre + half)


def resample_indices(seed: int, n_prompts: int, n_raters: int, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap draws: for each resample, n_prompts prompt indices and n_raters rater indices
    drawn uniformly with replacement (independent streams for prompts and raters)."""
    rng_prompts, rng_raters = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return (
        rng_prompts.integers(0, n_prompts, size=(resamples, n_prompts)),
        rng_raters.integers(0, n_raters, size=(resamples, n_raters)),
    )


def multiplicities(indices: np.ndarray, n_units: int) -> np.ndarray:
    """[resamples, n_units] how often each unit was drawn in each resample."""
    flat = indices + n_units * np.arange(len(indices))[:, None]
    return np.bincount(flat.ravel(), minlength=indices.size).reshape(len(indices), n_units).astype(float)


class CrossedBootstrap:
    """Bootstrap weights for every prompt and every rater of a study, drawn once so that all
    subsets (categories, questions, model pairs) are resampled in the same bootstrap worlds.
    A weight is how often a unit was drawn (resample_indices); memory 8 * resamples *
    (n_prompts + n_raters) bytes."""

    def __init__(self, n_prompts: int, n_raters: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0):
        if resamples < 2:
            raise ValueError(f"resamples must be >= 2, got {resamples}")
        self.n_prompts, self.n_raters, self.resamples, self.seed = n_prompts, n_raters, resamples, seed
        prompt_idx, rater_idx = resample_indices(seed, n_prompts, n_raters, resamples)
        self.prompt_weights = multiplicities(prompt_idx, n_prompts)
        self.rater_weights = multiplicities(rater_idx, n_raters)

    def one_way_replicates(
        self, prompt: np.ndarray, rater: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """theta*_b for the prompt-only and the rater-only bootstrap: sum_i w_bi S_i / sum_i w_bi n_i.
        Resamples in which the subset drew no unit at all (possible for a small category) are nan."""
        reps_prompt, reps_rater = self._one_way_batch([(prompt, rater, y)])
        return reps_prompt[:, 0], reps_rater[:, 0]

    def _one_way_batch(
        self, subsets: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One-way replicates [resamples, subsets] for many (prompt, rater, y) subsets: per factor one
        matrix product of the weights with every subset's per-unit sums and counts."""
        out = []
        for factor, weights in ((0, self.prompt_weights), (1, self.rater_weights)):
            size = weights.shape[1]
            sums = [np.bincount(s[factor], s[2], size) for s in subsets]
            counts = [np.bincount(s[factor], minlength=size).astype(float) for s in subsets]
            both = weights @ np.column_stack(sums + counts)
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append(both[:, : len(subsets)] / both[:, len(subsets) :])
        return out[0], out[1]

    def pigeonhole_replicates(self, prompt: np.ndarray, rater: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Two-way replicates: answer k gets weight w_b,i(k) * w_b,j(k); theta*_b = sum w y / sum w."""
        reps = np.empty(self.resamples)
        for start in range(0, self.resamples, PIGEONHOLE_BLOCK):
            sl = slice(start, start + PIGEONHOLE_BLOCK)
            w = self.prompt_weights[sl][:, prompt] * self.rater_weights[sl][:, rater]
            with np.errstate(invalid="ignore", divide="ignore"):
                reps[sl] = (w @ y) / w.sum(axis=1)
        return reps

    def interval(
        self, prompt: np.ndarray, rater: np.ndarray, y: np.ndarray, method: str = DEFAULT_METHOD, level: float = 0.95
    ) -> Interval:
        """CI for mean(y); prompt and rater are integer codes into this bootstrap's units."""
        return self.intervals([(prompt, rater, y)], method, level)[0]

    def intervals(
        self,
        subsets: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        method: str = DEFAULT_METHOD,
        level: float = 0.95,
    ) -> list[Interval]:
        """Intervals for several (prompt codes, rater codes, y) subsets, batched (same resamples for all)."""
        check_method(method)
        z_value(level)  # validates level
        subsets = [
            (np.asarray(p, dtype=np.int64), np.asarray(r, dtype=np.int64), np.asarray(y, dtype=float))
            for p, r, y in subsets
        ]
        for prompt, rater, y in subsets:
            if len(y) == 0:
                raise ValueError("no answers to compute an interval from")
            if prompt.max() >= self.n_prompts or rater.max() >= self.n_raters:
                raise ValueError("prompt/rater codes exceed the units this bootstrap was drawn for")
        reps = self._one_way_batch(subsets) if method == "crossed" and subsets else None
        return [
            self._interval(p, r, y, method, level, None if reps is None else (reps[0][:, k], reps[1][:, k]))
            for k, (p, r, y) in enumerate(subsets)
        ]

    def _interval(
        self,
        prompt: np.ndarray,
        rater: np.ndarray,
        y: np.ndarray,
        method: str,
        level: float,
        one_way: tuple[np.ndarray, np.ndarray] | None,
    ) -> Interval:
        theta = float(y.mean())
        base = dict(
            estimate=theta,
            n=len(y),
            n_prompts=len(np.unique(prompt)),
            n_raters=len(np.unique(rater)),
            seed=self.seed,
            level=level,
            method=method,
        )
        if method == "wilson":
            low, high = wilson(float(y.sum()), len(y), level)
            return Interval(low=low, high=high, se=float("nan"), resamples=0, **base)
        if method == "pigeonhole":
            reps = self.pigeonhole_replicates(prompt, rater, y)
            alpha = (1 - level) / 2  # percentile interval: the alpha/2 and 1 - alpha/2 quantiles
            low, high = np.nanquantile(reps, [alpha, 1 - alpha])
            return Interval(
                low=float(low), high=float(high), se=float(np.nanstd(reps, ddof=1)), resamples=self.resamples, **base
            )
        rep_prompt, rep_rater = one_way
        var, df = crossed_variance(
            prompt, rater, y, float(np.nanvar(rep_prompt, ddof=1)), float(np.nanvar(rep_rater, ddof=1)), self.resamples
        )
        se = float(np.sqrt(var))
        z = float(stdtrit(df, 0.5 + level / 2.0)) if np.isfinite(df) else z_value(level)
        return Interval(
            low=max(0.0, theta - z * se), high=min(1.0, theta + z * se), se=se, resamples=self.resamples, **base
        )


def crossed_variance(
    prompt: np.ndarray, rater: np.ndarray, y: np.ndarray, v_prompt: float, v_rater: float, resamples: float = np.inf
) -> tuple[float, float]:
    """Var(theta) from the prompt-bootstrap variance v_prompt, the rater-bootstrap variance
    v_rater and the iid variance, via the variance components (see module docstring).

    With P = I - 11'/N, Z_A / Z_B the answer->prompt / answer->rater incidence matrices, the
    linearised bootstrap variance of the prompt bootstrap is ||Z_A' P y||^2 / N^2, whose
    expectation is tr(Z_A' P G P Z_A) / N^2 with G = sA2 Z_A Z_A' + sB2 Z_B Z_B' + sE2 I, i.e.
      sA2: sum n_i^2 - 2 sum n_i^3 / N + (sum n_i^2)^2 / N^2
      sB2: sum_ij m_ij^2 - 2 sum_k n_i(k) n_j(k) / N + sum n_i^2 sum n_j^2 / N^2
      sE2: N - sum n_i^2 / N            (all / N^2; m_ij = answers by rater j on prompt i)
    and symmetrically for raters; the iid variance sum (y - theta)^2 / N^2 has expectation
    (sA2 (N - sum n_i^2/N) + sB2 (N - sum n_j^2/N) + sE2 (N - 1)) / N^2.
    `resamples` = B behind v_prompt / v_rater (inf for exact variances).
    Returns (Var(theta), Satterthwaite degrees of freedom; inf when Var is 0).
    """
    n = len(y)
    theta = y.mean()
    n_i = np.bincount(prompt).astype(float)
    n_j = np.bincount(rater).astype(float)
    n_i, n_j = n_i[n_i > 0], n_j[n_j > 0]
    si2, sj2 = (n_i**2).sum(), (n_j**2).sum()
    cross = float((np.bincount(prompt)[prompt] * np.bincount(rater)[rater]).sum())
    _, cell_counts = np.unique(prompt * (int(rater.max()) + 1) + rater, return_counts=True)
    m2 = float((cell_counts.astype(float) ** 2).sum())
    shared = m2 - 2 * cross / n + si2 * sj2 / n**2
    expected = (
        np.array(
            [
                [si2 - 2 * (n_i**3).sum() / n + si2**2 / n**2, shared, n - si2 / n],
                [shared, sj2 - 2 * (n_j**3).sum() / n + sj2**2 / n**2, n - sj2 / n],
                [n - si2 / n, n - sj2 / n, n - 1.0],
            ]
        )
        / n
    )  # rows scaled by N (not N^2) to keep the system well conditioned
    v_iid = float(((y - theta) ** 2).sum()) / n**2
    observed = np.array([v_prompt, v_rater, v_iid]) * n
    components = nnls3(expected, np.nan_to_num(observed))  # sA2, sB2, sE2 >= 0
    weights = np.array([si2, sj2, n]) / n**2  # Var(theta) = weights . (sA2, sB2, sE2)
    var = float(components @ weights)
    # Satterthwaite: Var is (up to clipping) the linear combination c . observed of the three
    # variances, c = K^-T weights; each observed variance is a sum of squares over R prompts,
    # C raters or N answers, i.e. ~ chi^2 with R-1, C-1, N-1 degrees of freedom; the two one-way
    # variances are also Monte Carlo estimates from B resamples: 1/df = 1/(R-1) + 1/(B-1).
    coef = np.linalg.pinv(expected).T @ weights
    dfs = 1.0 / (
        1.0 / np.maximum([len(n_i) - 1, len(n_j) - 1, n - 1], 1) + np.array([1.0, 1.0, 0.0]) / (resamples - 1)
    )
    denom = float(((coef * observed) ** 2 / dfs).sum())
    return var, (var**2 / denom if denom > 0 else float("inf"))


def nnls3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares min ||a x - b||, x >= 0, for a few unknowns: the solution is the
    unconstrained least-squares fit on some subset of the unknowns (the others 0), so try every
    subset and keep the best feasible fit (2^3 = 8 small solves)."""
    k = a.shape[1]
    best, best_resid = np.zeros(k), float(np.sum(b**2))
    for mask in range(1, 2**k):
        cols = [i for i in range(k) if mask >> i & 1]
        x_sub = np.linalg.lstsq(a[:, cols], b, rcond=None)[0]
        if (x_sub < 0).any():
            continue
        x = np.zeros(k)
        x[cols] = x_sub
        resid = float(np.sum((a @ x - b) ** 2))
        if resid < best_resid - 1e-15 * max(1.0, best_resid):
            best, best_resid = x, resid
    return best

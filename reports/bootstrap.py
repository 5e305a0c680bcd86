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
  Interval (crossed_bounds): t_df on the logit scale, logit(theta) +- t_df * SE / (theta (1 - theta)),
  mapped back, so always inside (0, 1); the p-value of a rate p0 (crossed_p, default 1/2) is the same
  t statistic, so p < 1 - level exactly when the interval excludes p0. Why the logit scale: the
  variance of a mean of bounded scores shrinks towards the bounds (answer noise ~ p (1 - p),
  logit-normal prompt and rater effects ~ (p (1 - p))^2), so a study whose estimate lies on the far
  side of the truth also has a smaller SE, and the raw-scale t interval's misses piled up there (true
  rate 0.8, 25 raters x 200 prompts, at 99.17 %: 0.77 % of intervals wholly above the truth, 0.17 %
  below); the logit is the usual scale for a proportion from a clustered design (R survey's
  svyciprop, method "logit"). Var is a linear combination sum_k c_k V_k of the prompt, rater and
  iid variances, which are sums of squares over R prompts, C raters and N answers; Satterthwaite's
  degrees of freedom df = Var^2 / sum_k (c_k V_k)^2 / df_k with df_k = R-1, C-1, N-1 and c the
  coefficients of the estimator actually used: where the non-negative fit sets a component to 0
  (the rater one in about half the studies with 5 raters), the least-squares fit on the others.
  (The variance rests on few prompts and raters: a z quantile under-covers by ~1 % at R=60, C=40;
  the unconstrained fit's coefficients gave df 5-7 at 5 raters x 20 prompts and 97-98 % coverage
  at 95 %. Measured in docs/intervals.md, "Crossed human-rating intervals in the tail".)
- "pigeonhole": the plain two-way bootstrap (prompts and raters resampled together), percentile
  interval. Conservative; kept for comparison.
- "wilson": Wilson score interval treating the N answers as independent Bernoulli trials (ties as
  half a success). Ignores prompt and rater clustering; shown alongside for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import (  # scipy.stats is slow to import
    expit,
    logit,
    ndtri,  # normal quantile
    stdtr,  # Student t CDF
    stdtrit,  # Student t quantile
)

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
    df: float = float("nan")  # degrees of freedom of the crossed interval's t (nan for the others)

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

    def one_way_variances(
        self, subsets: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(prompt-bootstrap variances, rater-bootstrap variances) of mean(y), one per (prompt, rater,
        y) subset, from this bootstrap's resamples (the inputs of crossed_variance)."""
        reps_prompt, reps_rater = self._one_way_batch(subsets)
        return np.nanvar(reps_prompt, axis=0, ddof=1), np.nanvar(reps_rater, axis=0, ddof=1)

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
        var = self.one_way_variances(subsets) if method == "crossed" and subsets else None
        return [
            self._interval(p, r, y, method, level, None if var is None else (float(var[0][k]), float(var[1][k])))
            for k, (p, r, y) in enumerate(subsets)
        ]

    def _interval(
        self,
        prompt: np.ndarray,
        rater: np.ndarray,
        y: np.ndarray,
        method: str,
        level: float,
        one_way: tuple[float, float] | None,
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
        var, df = crossed_variance(prompt, rater, y, *one_way, self.resamples)
        se = float(np.sqrt(var))
        low, high = crossed_bounds(theta, se, df, level)
        return Interval(low=low, high=high, se=se, resamples=self.resamples, df=df, **base)


def crossed_bounds(estimate: float, se: float, df: float, level: float = 0.95) -> tuple[float, float]:
    """The crossed interval from its estimate (a mean of scores in [0, 1]), SE and degrees of
    freedom: logit(estimate) +- t_df * se / (estimate (1 - estimate)), mapped back by expit (the
    delta method on the logit scale; see the module docstring). No spread (se 0, or every score at
    one bound): the point."""
    if se <= 0 or not 0.0 < estimate < 1.0:
        return float(estimate), float(estimate)
    t = float(stdtrit(df, 0.5 + level / 2.0))  # df inf: the normal quantile
    half = t * se / (estimate * (1.0 - estimate))
    centre = float(logit(estimate))
    return float(expit(centre - half)), float(expit(centre + half))


def crossed_p(estimate: float, se: float, df: float, null: float = 0.5) -> float:
    """Two-sided p-value of "the rate is `null`" dual to crossed_bounds: the same logit-scale t
    statistic, (logit(estimate) - logit(null)) * estimate (1 - estimate) / se against t_df, so
    p < 1 - level exactly when the level interval excludes `null`. No spread: 1 at the null, else 0."""
    if not 0.0 < null < 1.0:
        raise ValueError(f"the null rate must lie in (0, 1), got {null}")
    if se <= 0 or not 0.0 < estimate < 1.0:
        return 1.0 if estimate == null else 0.0
    t = abs(float(logit(estimate) - logit(null))) * estimate * (1.0 - estimate) / se
    return float(2.0 * stdtr(df, -t))


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
    system = crossed_system(prompt, rater, y, v_prompt, v_rater, resamples)
    components = nnls3(system.expected, system.observed)  # sA2, sB2, sE2 >= 0
    var = float(components @ system.weights)  # Var(theta) = weights . (sA2, sB2, sE2)
    # Satterthwaite for the estimator used: Var = c . observed with c the coefficients of the
    # least-squares fit on the components the non-negative fit kept (those at 0 are not estimated)
    kept = components > 0
    coef = np.zeros(3)
    if kept.any():
        coef = np.linalg.pinv(system.expected[:, kept]).T @ system.weights[kept]
    return var, satterthwaite(var, coef * system.observed, system.dfs)


@dataclass(frozen=True)
class CrossedSystem:
    """The moment equations of crossed_variance for one subset: expected @ (sA2, sB2, sE2) =
    observed (the prompt-bootstrap, rater-bootstrap and iid variances, rows scaled by N);
    Var(theta) = weights . (sA2, sB2, sE2); dfs: the degrees of freedom behind each observed
    variance (R-1, C-1 with the bootstrap's B-1; N-1)."""

    expected: np.ndarray  # (3, 3)
    observed: np.ndarray  # (3,)
    weights: np.ndarray  # (3,)
    dfs: np.ndarray  # (3,)


def satterthwaite(var: float, terms: np.ndarray, dfs: np.ndarray) -> float:
    """Satterthwaite's degrees of freedom of var = sum(terms), each term a multiple of a chi^2 / df
    variable: var^2 / sum(term^2 / df); inf when no term varies."""
    denom = float((terms**2 / dfs).sum())
    return var**2 / denom if denom > 0 else float("inf")


def crossed_system(
    prompt: np.ndarray, rater: np.ndarray, y: np.ndarray, v_prompt: float, v_rater: float, resamples: float = np.inf
) -> CrossedSystem:
    """The moment equations behind crossed_variance (see its docstring) for this subset's design."""
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
    # each observed variance is a sum of squares over R prompts, C raters or N answers, i.e.
    # ~ chi^2 with R-1, C-1, N-1 degrees of freedom; the two one-way variances are also Monte Carlo
    # estimates from B resamples: 1/df = 1/(R-1) + 1/(B-1)
    dfs = 1.0 / (
        1.0 / np.maximum([len(n_i) - 1, len(n_j) - 1, n - 1], 1) + np.array([1.0, 1.0, 0.0]) / (resamples - 1)
    )
    return CrossedSystem(
        expected=expected,
        observed=np.nan_to_num(np.array([v_prompt, v_rater, v_iid]) * n),
        weights=np.array([si2, sj2, n]) / n**2,
        dfs=dfs,
    )


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

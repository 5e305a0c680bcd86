"""Intervals for means of per-image metrics over prompts, kept inside the metric's range, and the
multiple-comparison correction the ranks use. Pure numpy / scipy (the report side imports no torch).

The estimand is the mean of the metric over the population of prompts the set stands for (the
several samples of one prompt are a cluster; the prompt is the unit that was sampled). The old
interval, mean +- t x bootstrap SE, left the range at a few prompts (shapes accuracy
0.778 [-0.185, 1.74] on 3 prompts) and collapsed to a point when every image scored the same
(coverage 6 % for a true rate of 0.02 on 3 prompts; `imagen-bench coverage`).

Method "wilson-eff" (the default; chosen by the simulation in docs/intervals.md): the metric is
scaled to [0, 1], u = (y - low) / (high - low); its cluster-robust variance is
    v = P / (P - 1) * sum_i (S_i - u_bar n_i)^2 / N^2   (S_i, n_i: prompt i's sum and images)
and the Wilson score interval is taken at the effective sample size n_eff = u_bar (1 - u_bar) / v
(Kish's design effect; Korn & Graubard 1998, "Confidence intervals for proportions with small
expected number of positive counts estimated from survey data"), with their degrees-of-freedom
correction n_eff * (z / t(P-1))^2 because v rests on only P prompts. When every prompt has one image
and the values are 0/1, the binomial variance is exact and plain Wilson on N applies. When all
values are equal (v = 0), nothing tells the design effect: n_eff = P (z / t)^2 (prompts counted,
not images). A design effect below 1 is not taken (n_eff <= N, NCHS's rule for proportions): a
[0, 1] value near 0 or 1 is skewed, and its spread on few prompts is under-estimated. The interval
always lies inside [low, high].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri, stdtrit

METHODS = ("wilson-eff", "t")  # "t": mean +- t(P-1) cluster SE, clipped to the range (shown for comparison)
DEFAULT_METHOD = "wilson-eff"


@dataclass(frozen=True)
class MeanInterval:
    mean: float
    low: float
    high: float
    se: float  # cluster-robust standard error of the mean (in the metric's units)
    n_prompts: int
    n: int
    method: str


def cluster_sums(prompt: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-prompt sums S_i, per-prompt counts n_i) for values y (N,) of prompts (N,)."""
    _, index = np.unique(np.asarray(prompt), return_inverse=True)
    y = np.asarray(y, np.float64)
    return np.bincount(index, weights=y), np.bincount(index).astype(np.float64)


def cluster_variance(sums: np.ndarray, counts: np.ndarray) -> float:
    """Cluster-robust (linearised) variance of the ratio mean sum S / sum n over P >= 2 clusters."""
    p, n = len(sums), counts.sum()
    mean = sums.sum() / n
    return float(p / (p - 1) * ((sums - mean * counts) ** 2).sum() / n**2)


def wilson_bounds(u: float, n_eff: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion u at (effective) sample size n_eff, critical value z."""
    if n_eff < 1e-9:  # (round-off at u = 0 or 1 with a non-zero spread) nothing is known
        return 0.0, 1.0
    n_eff = min(n_eff, 1e12)  # a spread at round-off level: the interval is the point
    z2 = z * z
    centre = (u + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = z / (1 + z2 / n_eff) * np.sqrt(max(u * (1 - u), 0.0) / n_eff + z2 / (4 * n_eff**2))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bounded_mean(
    prompt: np.ndarray, y: np.ndarray, low: float, high: float, level: float = 0.95, method: str = DEFAULT_METHOD
) -> MeanInterval:
    """Mean of y (N,) over its prompts (N,) with an interval inside [low, high] (see module doc).
    Fewer than 2 prompts: the interval is nan (nothing to estimate the between-prompt spread from)."""
    if method not in METHODS:
        raise ValueError(f"interval method must be one of {', '.join(METHODS)}, got {method!r}")
    low, high = (-np.inf if low is None else float(low)), (np.inf if high is None else float(high))
    if not high > low or (method != "t" and not (np.isfinite(low) and np.isfinite(high))):
        raise ValueError(f"{method}: a mean needs a range low < high (finite for wilson-eff), got [{low}, {high}]")
    y = np.asarray(y, np.float64)
    sums, counts = cluster_sums(prompt, y)
    p, n = len(sums), len(y)
    mean = float(y.mean())
    if p < 2:
        return MeanInterval(mean, float("nan"), float("nan"), float("nan"), p, n, method)
    if method == "t" and not (
        np.isfinite(low) and np.isfinite(high)
    ):  # open on a side: kept inside the finite one only
        se = float(np.sqrt(cluster_variance(sums, counts)))
        half = float(stdtrit(p - 1, 0.5 + level / 2)) * se
        return MeanInterval(mean, max(low, mean - half), min(high, mean + half), se, p, n, method)
    width = high - low
    u_sums = (sums - low * counts) / width
    u = float(u_sums.sum() / n)
    v = cluster_variance(u_sums, counts)
    se = float(np.sqrt(v)) * width
    z, t = float(ndtri(0.5 + level / 2)), float(stdtrit(p - 1, 0.5 + level / 2))
    if method == "t":
        lo, hi = max(0.0, u - t * np.sqrt(v)), min(1.0, u + t * np.sqrt(v))
    else:
        binary_iid = bool(np.isin(y, (low, high)).all() and (counts == 1).all())
        if binary_iid:
            n_eff = float(n)
        elif v <= 0 or u * (1 - u) <= 0:  # every prompt alike: no spread to estimate the design effect from
            n_eff = p * (z / t) ** 2  # count prompts, not images (their samples may agree because they share a prompt)
        else:  # design effect below 1 is not taken (NCHS's rule for proportions: n_eff <= N)
            n_eff = min(u * (1 - u) / v, float(n)) * (z / t) ** 2
        lo, hi = wilson_bounds(u, n_eff, z)
    return MeanInterval(mean, low + lo * width, low + hi * width, se, p, n, method)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error <= alpha when every adjusted p < alpha is
    called significant; Holm 1979). nan p-values are left nan and not counted in the family."""
    p = np.asarray(pvalues, np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out

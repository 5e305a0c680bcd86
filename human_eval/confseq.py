"""Anytime-valid confidence sequences for the mean of observations in [0, 1] (a sequential study's
rater-batch means), after Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
betting" (JRSS-B 2023, arXiv 2010.09686). Vectorised over replicates: x has shape (R, T), row r
the observations of one study in the order they arrived; every function returns (R, T) arrays, the
interval after 1, 2, ..., T observations. Valid at every t at once: P(exists t: mean not in C_t) <=
alpha (Ville's inequality), so a study may stop whenever the interval says so.

Shared predictable pieces (WSR eq. 15-17): with mu_0 = 1/2, s2_0 = 1/4,
    mu_t = (1/2 + sum_{i<=t} x_i) / (t + 1),   s2_t = (1/4 + sum_{i<=t} (x_i - mu_i)^2) / (t + 1),
    lam_t = sqrt(2 log(2/alpha) / (s2_{t-1} t log(1 + t)))        (uses x_1..x_{t-1} only)

betting (WSR sec. 4, hedged capital): for a candidate mean m, two bettors wager on x above / below m,
    K+_t(m) = prod_i (1 + min(lam_i, c/m) (x_i - m)),  K-_t(m) = prod_i (1 - min(lam_i, c/(1-m)) (x_i - m)),
with c = 1/2 (wealth never drops below half per step). Under mean m their average is a nonnegative
martingale from 1, so C_t = {m : (K+_t(m) + K-_t(m)) / 2 < 1/alpha}; computed on a grid of m and
widened by one grid step on each side (the true boundary lies between a rejected and a kept point).

bernstein (WSR thm. 2, predictable plug-in empirical Bernstein), closed form:
    l_t = min(lam_t, c),  centre_t = sum l_i x_i / sum l_i,
    half_t = (log(2/alpha) + sum 4 (x_i - mu_{i-1})^2 psi(l_i)) / sum l_i,  psi(l) = (-log(1 - l) - l) / 4.
"""

from __future__ import annotations

import numpy as np

METHODS = ("betting", "bernstein")
C = 0.75  # bet truncation (WSR: any c in (0, 1); they suggest 1/2 or 3/4): a step keeps >= 1/4 of the wealth
GRID = 2001  # candidate means 0, 0.0005, ..., 1 for the betting interval


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"confidence sequence must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def _check(x: np.ndarray, alpha: float) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.size and (np.isnan(x).any() or x.min() < 0 or x.max() > 1):
        raise ValueError("confidence sequence observations must lie in [0, 1]")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return x


def predictable_bets(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(lam, mu_prev): lam_t and mu_{t-1} for every t, each computed from x_1..x_{t-1} only."""
    r, t_max = x.shape
    t = np.arange(1, t_max + 1)
    mu = (0.5 + np.cumsum(x, axis=1)) / (t + 1)  # mu_t
    mu_prev = np.concatenate([np.full((r, 1), 0.5), mu[:, :-1]], axis=1)
    s2 = (0.25 + np.cumsum((x - mu) ** 2, axis=1)) / (t + 1)  # s2_t
    s2_prev = np.concatenate([np.full((r, 1), 0.25), s2[:, :-1]], axis=1)
    lam = np.sqrt(2 * np.log(2 / alpha) / (s2_prev * t * np.log1p(t)))
    return lam, mu_prev


def bernstein(x, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    x = _check(x, alpha)
    lam, mu_prev = predictable_bets(x, alpha)
    lam = np.minimum(lam, C)
    psi = (-np.log1p(-lam) - lam) / 4
    sum_lam = np.cumsum(lam, axis=1)
    centre = np.cumsum(lam * x, axis=1) / sum_lam
    half = (np.log(2 / alpha) + np.cumsum(4 * (x - mu_prev) ** 2 * psi, axis=1)) / sum_lam
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


class Betting:
    """The betting sequence of `rows` independent streams, one observation at a time per stream
    (a study's batches; one stream per model pair when several pairs are rated): update(rows, x)
    adds x[k] to stream rows[k] and returns the streams' intervals. Same numbers as betting()."""

    def __init__(self, rows: int, alpha: float, grid: int = GRID):
        _check(np.empty((1, 0)), alpha)
        self.alpha, self.m = alpha, np.linspace(0, 1, grid)
        with np.errstate(divide="ignore"):
            self.cap_up, self.cap_down = (
                C / self.m,
                C / (1 - self.m),
            )  # inf at m = 0 / m = 1: no truncation needed there
        self.n, self.total, self.ss = (
            np.zeros(rows, int),
            np.zeros(rows),
            np.zeros(rows),
        )  # count, sum x_i, sum (x_i - mu_i)^2
        self.log_up, self.log_down = np.zeros((rows, grid)), np.zeros((rows, grid))

    def update(self, rows, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _check(x, self.alpha)[0]
        if len(rows) == len(self.n) and (rows == np.arange(len(rows))).all():
            rows = slice(None)  # every stream: views, not gathered copies
        t = self.n[rows] + 1
        s2_prev = (0.25 + self.ss[rows]) / t  # s2_{t-1}: from x_1..x_{t-1} only
        lam = np.sqrt(2 * np.log(2 / self.alpha) / (s2_prev * t * np.log1p(t)))
        dev = x[:, None] - self.m
        for log, bet in (
            (self.log_up, np.minimum(lam[:, None], self.cap_up) * dev),
            (self.log_down, -np.minimum(lam[:, None], self.cap_down) * dev),
        ):
            if isinstance(rows, slice):
                log += np.log1p(bet)  # in place (a[:] += b would copy the whole array back onto itself)
            else:
                log[rows] += np.log1p(bet)
        self.n[rows], self.total[rows] = t, self.total[rows] + x
        self.ss[rows] += (x - (0.5 + self.total[rows]) / (t + 1)) ** 2
        return self.interval(rows)

    def interval(self, rows) -> tuple[np.ndarray, np.ndarray]:
        keep = np.logaddexp(self.log_up[rows], self.log_down[rows]) - np.log(2) < np.log(1 / self.alpha)
        grid, step = len(self.m), 1 / (len(self.m) - 1)
        first, last = np.argmax(keep, axis=1), grid - 1 - np.argmax(keep[:, ::-1], axis=1)
        any_kept = keep.any(axis=1)
        return (
            np.where(any_kept, np.maximum(self.m[first] - step, 0), np.nan),
            np.where(any_kept, np.minimum(self.m[last] + step, 1), np.nan),
        )


def betting(x, alpha: float, grid: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    x = _check(x, alpha)
    state, rows = Betting(x.shape[0], alpha, grid), np.arange(x.shape[0])
    low, high = np.empty(x.shape), np.empty(x.shape)
    for t in range(x.shape[1]):
        low[:, t], high[:, t] = state.update(rows, x[:, t])
    return low, high


def sequence(x, alpha: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (R, T): the confidence sequence of `method` after every observation. An
    empty set (every candidate mean rejected: probability <= alpha under the assumptions) is nan."""
    check_method(method)
    return betting(x, alpha) if method == "betting" else bernstein(x, alpha)

"""Bradley-Terry strengths of several models from pairwise answers: the one fit and the one Fisher
information that the report's ranking (reports.ranking), the sequential ranking design of the rating
app (human_eval.ranking) and its simulation (selfcheck.sequential.ranking) use.

P(m beats k) = pi_m / (pi_m + pi_k); a tie counts as half a win for each side. Fitted by Hunter's
(2004) MM algorithm, pi_m <- W_m / sum_k n_mk / (pi_m + pi_k), renormalised each step so that
mean(log pi) = 0; W_m = wins of m, n_mk = comparisons between m and k. Strength: s_m = log pi_m
(0 = the average model). `prior` adds that many wins each way to every pair before fitting: a pair
not yet compared then says "alike" instead of nothing, and a model that has won nothing keeps a
finite strength (the sequential design fits after every batch, from the first one on).

Fisher information of the strengths (each comparison a Bernoulli trial, p_mk = expit(s_m - s_k)):
    I = sum_{m<k} n_mk p_mk (1 - p_mk) (e_m - e_k)(e_m - e_k)^T,
a graph Laplacian, singular along the all-ones direction (strengths are only known up to a common
shift); its pseudo-inverse is the large-sample covariance of the centred strengths, and
(e_m - e_k)^T I^+ (e_m - e_k) the variance of the difference s_m - s_k.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import expit

MM_ITERATIONS = 2000  # MM converges linearly; 2000 steps reach ~1e-10 on well-connected designs
MM_TOLERANCE = 1e-10
MIN_STRENGTH = 1e-9  # a model with no wins (in a bootstrap resample) has pi -> 0; floor it to keep logs finite


def fit(wins: np.ndarray, prior: float = 0.0, iterations: int = MM_ITERATIONS) -> np.ndarray:
    """log pi for a batch of win matrices: wins[..., m, k] = (weighted) wins of m over k. Returns [..., M]."""
    wins = np.asarray(wins, dtype=float)
    if prior:
        wins = wins + prior * (1 - np.eye(wins.shape[-1]))
    games = wins + np.swapaxes(wins, -1, -2)  # n_mk
    total_wins = wins.sum(axis=-1)  # W_m
    pi = np.ones(wins.shape[:-1])
    for _ in range(iterations):
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.nansum(games / (pi[..., :, None] + pi[..., None, :]), axis=-1)
            new = np.maximum(np.where(denom > 0, total_wins / denom, 1.0), MIN_STRENGTH)
        new /= np.exp(np.log(new).mean(axis=-1, keepdims=True))  # geometric mean 1
        done = np.nanmax(np.abs(new - pi)) < MM_TOLERANCE
        pi = new
        if done:
            break
    return np.log(pi)


def pairs(k: int) -> list[tuple[int, int]]:
    """The k (k - 1) / 2 pairs (i, j), i < j, in a fixed order: pair ids index this list."""
    return list(itertools.combinations(range(k), 2))


def differences(k: int) -> np.ndarray:
    """(P, k): row p is e_i - e_j for pair p = (i, j)."""
    out = np.zeros((k * (k - 1) // 2, k))
    for p, (i, j) in enumerate(pairs(k)):
        out[p, i], out[p, j] = 1.0, -1.0
    return out


def information(strength: np.ndarray, games: np.ndarray) -> np.ndarray:
    """Fisher information [..., k, k] of the strengths [..., k] from games[..., P], the comparisons
    made (or planned: the information of a comparison does not depend on its answer) per pair."""
    u = differences(strength.shape[-1])
    p = expit(strength @ u.T)  # [..., P]: P(i beats j)
    return np.einsum("...p,pk,pl->...kl", games * p * (1 - p), u, u)


def difference_covariance(strength: np.ndarray, games: np.ndarray) -> np.ndarray:
    """[..., P, P]: the covariance of the pair differences s_i - s_j (pair order of `pairs`) under
    the information of `games`; entry [p, q] = u_p^T I^+ u_q."""
    u = differences(strength.shape[-1])
    return np.einsum("pk,...kl,ql->...pq", u, np.linalg.pinv(information(strength, games), hermitian=True), u)

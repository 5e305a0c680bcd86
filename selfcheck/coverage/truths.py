"""Known truths for the coverage self-check: Gaussian features whose set metrics have closed forms.

Every set-metric interval is conditional on the reference (the suite computes the reference once
and holds it fixed), so each truth is the metric's expectation given the drawn reference sample Y
(M, D), over generated features g ~ N(mu, S):

    FD     FD(N(mu, S), N(mean Y, cov Y)): the Frechet distance to the reference statistics, exact.
    KID    E[MMD^2_u | Y] = E k(g, g') - 2 mean_j E k(g, y_j) + U_yy(Y) with k(a, b) = (a.b / d + 1)^3:
             E k(g, y)  = A^3 + 3 A B,   A = mu.y / d + 1,  B = y' S y / d^2   (g.y ~ N(mu.y, y' S y))
             E k(g, g') = sum_j C(3, j) m_j / d^j with m_1 = a, m_2 = tr S^2 + 2 b + a^2,
                          m_3 = a^3 + 6 a b + 3 a tr S^2 + 6 mu' S^2 mu,  a = mu.mu, b = mu' S mu
           (tests/test_coverage.py checks both against 10^6-sample Monte Carlo).
    MMD-RBF (CMMD's kernel exp(-|a - b|^2 / 2 s^2)), the standard Gaussian integrals:
             E k(g, y)  = det(I + S / s^2)^(-1/2) exp(-(mu - y)' (S + s^2 I)^-1 (mu - y) / 2)
             E k(g, g') = det(I + 2 S / s^2)^(-1/2)
    PRDC   no closed form: E[metric of m generated images | Y] by Monte Carlo over many fresh sets.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.stats import feature_stats, frechet_distance, polynomial_kernel


def frechet_truth(mu: np.ndarray, sigma: np.ndarray, ref: np.ndarray) -> float:
    mu_ref, sigma_ref = feature_stats(ref)
    return frechet_distance(mu_ref, sigma_ref, mu, sigma)


def _u_within(k: np.ndarray) -> float:
    n = len(k)
    return float((k.sum() - np.trace(k)) / (n * (n - 1)))


def poly_expectations(mu: np.ndarray, sigma: np.ndarray, ref: np.ndarray) -> tuple[float, np.ndarray]:
    """(E k(g, g'), E k(g, y_j) for every reference row (M,)) for the cubic KID kernel."""
    d = len(mu)
    a_vec = ref @ mu / d + 1
    b_vec = np.einsum("ij,jk,ik->i", ref, sigma, ref) / d**2
    cross = a_vec**3 + 3 * a_vec * b_vec
    a, b, tr2 = float(mu @ mu), float(mu @ sigma @ mu), float(np.trace(sigma @ sigma))
    m1, m2 = a, tr2 + 2 * b + a * a
    m3 = a**3 + 6 * a * b + 3 * a * tr2 + 6 * float(mu @ sigma @ sigma @ mu)
    within = 1 + 3 * m1 / d + 3 * m2 / d**2 + m3 / d**3
    return within, cross


def kid_truth(mu: np.ndarray, sigma: np.ndarray, ref: np.ndarray) -> float:
    within, cross = poly_expectations(mu, sigma, ref)
    return within - 2 * float(cross.mean()) + _u_within(polynomial_kernel(ref, ref))


def rbf_expectations(mu: np.ndarray, sigma: np.ndarray, ref: np.ndarray, s: float) -> tuple[float, np.ndarray]:
    d = len(mu)
    eye = np.eye(d)
    det1 = np.linalg.slogdet(eye + sigma / s**2)[1]
    det2 = np.linalg.slogdet(eye + 2 * sigma / s**2)[1]
    delta = mu[None, :] - ref
    quad = np.einsum("ij,jk,ik->i", delta, np.linalg.inv(sigma + s**2 * eye), delta)
    return float(np.exp(-0.5 * det2)), np.exp(-0.5 * det1 - 0.5 * quad)


def rbf_truth(mu: np.ndarray, sigma: np.ndarray, ref: np.ndarray, s: float) -> float:
    within, cross = rbf_expectations(mu, sigma, ref, s)
    gamma = 1.0 / (2 * s**2)
    sq = (ref * ref).sum(1)
    k = np.exp(-gamma * np.clip(sq[:, None] + sq[None, :] - 2 * ref @ ref.T, 0, None))
    return within - 2 * float(cross.mean()) + _u_within(k)

"""Pure functions: features -> statistics -> distances (FID, KID). float64 numpy throughout.

FID (Heusel et al. 2017):  ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})
KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged
over random subsets (mean and std over subsets are reported).
"""
from __future__ import annotations

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> mean (D,), covariance (D, D) with the unbiased 1/(N-1) normalisation, float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an (N >= 2, D) feature matrix, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^{1/2}) for symmetric PSD S1, S2 (D, D), via symmetric eigendecompositions:
    S1 S2 is similar to A = S1^{1/2} S2 S1^{1/2}, which is symmetric PSD, so the trace is the sum of
    sqrt(eigenvalues of A). Two `eigh` calls instead of a general `sqrtm` of S1 S2: ~20x faster at
    D = 2048 (scipy's sqrtm took ~85 s per FID on one core here) and well-defined when N < D makes
    the covariances singular, where sqrtm needed an eps retry. Eigenvalues below zero are round-off
    of a singular matrix and are clipped to 0."""
    w1, v1 = np.linalg.eigh(sigma1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T  # S1^{1/2}
    a = root1 @ sigma2 @ root1
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2}), the trace term by trace_sqrt_product
    (equal to pytorch-fid / clean-fid's sqrtm form; the tests compare it with scipy's sqrtm)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        raise ValueError("FID: a covariance matrix has non-finite entries (NaN/inf features?)")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> np.ndarray:
    """k(x, y) = (gamma x.y + coef)^degree; gamma defaults to 1 / D. (N, D), (M, D) -> (N, M)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> float:
    """Unbiased MMD^2 for equal-size samples (m each):
    [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"MMD needs two samples of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    kxx, kyy, kxy = (polynomial_kernel(a, b, degree, gamma, coef) for a, b in ((x, x), (y, y), (x, y)))
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
                              degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> tuple[float, float, int]:
    """(mean, std over subsets (ddof=1, as torchmetrics), effective subset size). Each subset draws
    min(subset_size, N_real, N_fake) rows without replacement from each set (clean-fid's rule)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 images on each side, got {real.shape[0]} reference and {fake.shape[0]} generated")
    rng = np.random.default_rng(seed)
    vals = np.array([
        mmd2_unbiased(real[rng.choice(real.shape[0], m, replace=False)], fake[rng.choice(fake.shape[0], m, replace=False)], degree, gamma, coef)
        for _ in range(subsets)
    ])
    return float(vals.mean()), float(vals.std(ddof=1)) if subsets > 1 else 0.0, m


# CMMD (Jayasumana et al. 2024, "Rethinking FID"): MMD^2 with a Gaussian RBF kernel on L2-normalised
# CLIP image embeddings, sigma = 10 and the result scaled by 1000 (the paper's constants). The
# estimator here is the unbiased one (diagonals left out of the within-set means, any set sizes);
# the released code averages over all pairs including i = j, which differs by O(1 / n).
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def gaussian_kernel(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA) -> np.ndarray:
    """k(a, b) = exp(-|a - b|^2 / (2 sigma^2)); (N, D), (M, D) -> (N, M)."""
    return np.exp(-_pairwise(x, y) ** 2 / (2 * sigma**2))


def gaussian_mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA) -> float:
    """sum_{i!=j} k(x_i,x_j) / (n(n-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / (nm),
    k(a, b) = exp(-|a - b|^2 / (2 sigma^2)); x (n, D), y (m, D), n, m >= 2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 samples on each side, got {n} and {m}")
    kxx, kyy, kxy = (gaussian_kernel(a, b, sigma) for a, b in ((x, x), (y, y), (x, y)))
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def cmmd(real: np.ndarray, fake: np.ndarray) -> float:
    """CMMD = 1000 x unbiased Gaussian MMD^2 (sigma 10) between L2-normalised embeddings."""
    def unit(a):
        a = np.asarray(a, np.float64)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    return CMMD_SCALE * gaussian_mmd2_unbiased(unit(real), unit(fake))


# -- fidelity and diversity apart ---------------------------------------------------------------
# Precision / recall (Kynkaanniemi et al. 2019, "Improved precision and recall", k = 3): the real
# manifold is the union of balls around each real feature with radius = distance to its k-th nearest
# real neighbour; precision = share of generated samples inside it, recall = share of real samples
# inside the generated manifold (built the same way from the generated features).
# Density / coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics", k = 5):
# density = (1 / kM) sum_j #{real balls containing fake j}; coverage = share of real samples whose
# ball contains at least one generated sample. Distances are Euclidean on the feature space.

def _pairwise(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(N, M) Euclidean distances between rows of a (N, D) and b (M, D), float64, in row chunks."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    bb = (b * b).sum(1)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        x = a[i : i + chunk]
        d2 = (x * x).sum(1)[:, None] + bb[None, :] - 2.0 * x @ b.T
        out[i : i + chunk] = np.sqrt(np.clip(d2, 0.0, None))
    return out


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """(N,) distance of each row to its k-th nearest other row (the row itself excluded)."""
    f = np.asarray(features, dtype=np.float64)
    if not 1 <= k < len(f):
        raise ValueError(f"k = {k} needs more than k samples, got {len(f)}")
    d = _pairwise(f, f)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself (distance 0)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of generated features `fake` (M, D) against `real` (N, D)."""
    d = _pairwise(real, fake)  # (N, M)
    precision = float((d <= knn_radii(real, k)[:, None]).any(axis=0).mean())
    recall = float((d <= knn_radii(fake, k)[None, :]).any(axis=1).mean())
    return precision, recall


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(density, coverage) of generated features `fake` (M, D) against `real` (N, D)."""
    radii = knn_radii(real, k)[:, None]
    inside = _pairwise(real, fake) <= radii  # (N, M): fake j inside real i's ball
    density = float(inside.sum() / (k * inside.shape[1]))
    coverage = float(inside.any(axis=1).mean())
    return density, coverage

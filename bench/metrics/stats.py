"""Pure functions: features -> statistics -> distances (FID, KID). float64 numpy throughout.

FID (Heusel et al. 2017):  ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})
KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged
over random subsets (mean and std over subsets are reported).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> mean (D,), covariance (D, D) with the unbiased 1/(N-1) normalisation, float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an (N >= 2, D) feature matrix, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as in pytorch-fid / clean-fid:
    if sqrtm(S1 S2) is singular (non-finite), retry with eps * I added to both covariances; a
    complex result whose diagonal imaginary part exceeds 1e-3 is an error (numerical failure),
    below that the imaginary part is round-off and dropped."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrtm has imaginary component {np.max(np.abs(covmean.imag)):.3g} (too few images for the feature dimension?)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


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

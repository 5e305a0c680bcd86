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


def psd_root(sigma: np.ndarray) -> np.ndarray:
    """S^{1/2} (D, D) of a symmetric PSD S by a symmetric eigendecomposition, negative round-off clipped to 0."""
    w, v = np.linalg.eigh(np.asarray(sigma, np.float64))
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, root1: np.ndarray | None = None) -> float:
    """Tr((S1 S2)^{1/2}) for symmetric PSD S1, S2 (D, D), via symmetric eigendecompositions:
    S1 S2 is similar to A = S1^{1/2} S2 S1^{1/2}, which is symmetric PSD, so the trace is the sum of
    sqrt(eigenvalues of A). Two `eigh` calls instead of a general `sqrtm` of S1 S2: ~20x faster at
    D = 2048 (scipy's sqrtm took ~85 s per FID on one core here) and well-defined when N < D makes
    the covariances singular, where sqrtm needed an eps retry. Eigenvalues below zero are round-off
    of a singular matrix and are clipped to 0. `root1`: psd_root(S1) when the caller has it (one
    reference, many cells: its eigendecomposition once)."""
    root1 = psd_root(sigma1) if root1 is None else root1
    a = root1 @ sigma2 @ root1
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0, None)).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, root1: np.ndarray | None = None
) -> float:
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
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, root1))


# The k-NN set metrics and the all-pairs kernel sums (CMMD, KID's blocks) make their distances and
# kernel values BLOCK_ENTRIES at a time (rows x columns; 2^24 float64 = 128 MiB), never the whole
# N x M matrix: at the 30 K protocol size that matrix is 7.2 GB, and PRDC needed several at once.
# Each distance equals the dense matrix's up to the last bit (BLAS may block a smaller product
# differently), so PRDC's counts equal the dense computation's except at exact ties and sums agree to
# rounding (tests/test_metrics_fid.py; time and memory at 30 K: `imagen-bench perf --only setmetrics`).
BLOCK_ENTRIES = 2**24


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


def row_slices(n_rows: int, n_cols: int) -> list[slice]:
    """Row ranges of an (n_rows, n_cols) matrix, each at most BLOCK_ENTRIES entries (one row at least)."""
    step = max(1, BLOCK_ENTRIES // max(n_cols, 1))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _row_blocks(a: np.ndarray, b: np.ndarray):
    """(row slice of a, (rows, M) distances to all of b) over a's rows, BLOCK_ENTRIES at a time."""
    for rows in row_slices(len(a), len(b)):
        yield rows, _pairwise(a[rows], b)


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> np.ndarray:
    """k(x, y) = (gamma x.y + coef)^degree; gamma defaults to 1 / D. (N, D), (M, D) -> (N, M)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def same_prompt_pairs(kernel, x: np.ndarray, prompts: np.ndarray | None) -> tuple[float, int]:
    """(sum of k(x_i, x_j) over ordered pairs i != j of images of one prompt, their number) for x
    (N, D) with prompt codes (N,); (0, 0) with one image per prompt or no codes. An unbiased MMD^2
    of images drawn several per prompt leaves these pairs out: two images of one prompt are more
    alike than two of the generated distribution, and with s images per prompt they are a share
    (s - 1) / (N - 1) of all pairs, biasing the estimate upward by that share times the difference
    (about one standard error at 200 prompts x 5 images; docs/intervals.md, "KID")."""
    if prompts is None:
        return 0.0, 0
    _, index, counts = np.unique(np.asarray(prompts, np.float64), return_inverse=True, return_counts=True)
    total, pairs = 0.0, 0
    for g in np.flatnonzero(counts > 1):
        rows = x[index == g]
        k = kernel(rows, rows)
        total += float(k.sum() - np.trace(k))
        pairs += len(rows) * (len(rows) - 1)
    if pairs == len(x) * (len(x) - 1):
        raise ValueError(
            f"MMD with same-prompt pairs left out needs images of at least 2 prompts, got {len(x)} of one"
        )
    return total, pairs


def mmd2_unbiased(
    x: np.ndarray,
    y: np.ndarray,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    y_prompts: np.ndarray | None = None,
) -> float:
    """Unbiased MMD^2 for equal-size samples (m each):
    [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2; with
    `y_prompts` (m,) the y-y mean leaves out pairs of one prompt (same_prompt_pairs; the same value
    with one image per prompt)."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"MMD needs two samples of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    kxx, kyy, kxy = (polynomial_kernel(a, b, degree, gamma, coef) for a, b in ((x, x), (y, y), (x, y)))
    same, pairs = same_prompt_pairs(lambda a, b: polynomial_kernel(a, b, degree, gamma, coef), y, y_prompts)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy) - same) / (m * (m - 1) - pairs)
        - 2 * kxy.sum() / m**2
    )


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    fake_prompts: np.ndarray | None = None,
) -> tuple[float, float, int]:
    """(mean, std over subsets (ddof=1, as torchmetrics), effective subset size). Each subset draws
    min(subset_size, N_real, N_fake) rows without replacement from each set (clean-fid's rule). With
    `fake_prompts` (N_fake,) prompt codes, pairs of one prompt are left out of the generated side's
    mean (same_prompt_pairs): clean-fid's and torch-fidelity's value with one image per prompt."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError(
            f"KID needs at least 2 images on each side, got {real.shape[0]} reference and {fake.shape[0]} generated"
        )
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x, pick = real[rng.choice(real.shape[0], m, replace=False)], rng.choice(fake.shape[0], m, replace=False)
        prompts = None if fake_prompts is None else np.asarray(fake_prompts)[pick]
        vals.append(mmd2_unbiased(x, fake[pick], degree, gamma, coef, prompts))
    vals = np.array(vals)
    return float(vals.mean()), float(vals.std(ddof=1)) if subsets > 1 else 0.0, m


# CMMD (Jayasumana et al. 2024, "Rethinking FID"): MMD^2 with a Gaussian RBF kernel on L2-normalised
# CLIP image embeddings, sigma = 10 and the result scaled by 1000 (the paper's constants). The
# estimator here is the unbiased one (diagonals left out of the within-set means, any set sizes);
# the released code averages over all pairs including i = j, which differs by O(1 / n).
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def gaussian_kernel(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA) -> np.ndarray:
    """k(a, b) = exp(-|a - b|^2 / (2 sigma^2)); (N, D), (M, D) -> (N, M)."""
    return np.exp(-(_pairwise(x, y) ** 2) / (2 * sigma**2))


def gaussian_mmd2_unbiased(
    x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA, y_prompts: np.ndarray | None = None
) -> float:
    """sum_{i!=j} k(x_i,x_j) / (n(n-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / (nm),
    k(a, b) = exp(-|a - b|^2 / (2 sigma^2)); x (n, D), y (m, D), n, m >= 2; with `y_prompts` (m,) the
    y-y mean leaves out pairs of one prompt (same_prompt_pairs)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 samples on each side, got {n} and {m}")
    kernel = lambda a, b: gaussian_kernel(a, b, sigma)  # noqa: E731
    same, pairs = same_prompt_pairs(kernel, y, y_prompts)
    return float(
        kernel_sum(kernel, x, x, True) / (n * (n - 1))
        + (kernel_sum(kernel, y, y, True) - same) / (m * (m - 1) - pairs)
        - 2 * kernel_sum(kernel, x, y, False) / (n * m)
    )


def kernel_sum(kernel, a: np.ndarray, b: np.ndarray, off_diagonal: bool) -> float:
    """sum_{i,j} k(a_i, b_j) (with off_diagonal, a is b and i = j is left out), BLOCK_ENTRIES kernel
    values at a time: CMMD at 30 K images would otherwise hold three 7.2 GB matrices."""
    total = 0.0
    for rows in row_slices(len(a), len(b)):
        k = kernel(a[rows], b)
        total += k.sum() - (np.trace(k, offset=rows.start) if off_diagonal else 0.0)
    return total


CMMD_ESTIMATORS = ("unbiased", "released")


def gaussian_mmd2_released(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA) -> float:
    """The released CMMD code's estimator (google-research/google-research @4c42994, cmmd/distance.py,
    `mmd`): the minimum-variance (biased, V-statistic) MMD^2 of Gretton et al. 2012 eq. 5, every pair
    averaged, i = j included: mean k(x, x') + mean k(y, y') - 2 mean k(x, y)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    kernel = lambda a, b: gaussian_kernel(a, b, sigma)  # noqa: E731
    n, m = len(x), len(y)
    return float(
        kernel_sum(kernel, x, x, False) / n**2
        + kernel_sum(kernel, y, y, False) / m**2
        - 2 * kernel_sum(kernel, x, y, False) / (n * m)
    )


def cmmd(
    real: np.ndarray, fake: np.ndarray, estimator: str = "unbiased", fake_prompts: np.ndarray | None = None
) -> float:
    """CMMD = 1000 x Gaussian MMD^2 (sigma 10) between L2-normalised embeddings; `estimator`
    "unbiased" (U-statistic, diagonals left out, and with `fake_prompts` (N_fake,) pairs of one
    prompt: same_prompt_pairs) or "released" (the released code's V-statistic, every pair)."""

    def unit(a):
        a = np.asarray(a, np.float64)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    if estimator == "released":
        return CMMD_SCALE * gaussian_mmd2_released(unit(real), unit(fake))
    return CMMD_SCALE * gaussian_mmd2_unbiased(unit(real), unit(fake), y_prompts=fake_prompts)


# -- fidelity and diversity apart ---------------------------------------------------------------
# Precision / recall (Kynkaanniemi et al. 2019, "Improved precision and recall", k = 3): the real
# manifold is the union of balls around each real feature with radius = distance to its k-th nearest
# real neighbour; precision = share of generated samples inside it, recall = share of real samples
# inside the generated manifold (built the same way from the generated features).
# Density / coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics", k = 5):
# density = (1 / kM) sum_j #{real balls containing fake j}; coverage = share of real samples whose
# ball contains at least one generated sample. Distances are Euclidean on the feature space.


def knn_radii_many(features: np.ndarray, ks: tuple[int, ...]) -> list[np.ndarray]:
    """[(N,) distance of each row to its k-th nearest other row, for each k in ks]: one pass over the
    distances (the row itself, at distance 0, is index 0 of its sorted row)."""
    f = np.asarray(features, dtype=np.float64)
    if not all(1 <= k < len(f) for k in ks):
        raise ValueError(f"k = {max(ks)} needs more than k samples, got {len(f)}")
    out = [np.empty(len(f)) for _ in ks]
    for rows, d in _row_blocks(f, f):
        part = np.partition(d, sorted(set(ks)), axis=1)
        for o, k in zip(out, ks):
            o[rows] = part[:, k]
    return out


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """(N,) distance of each row to its k-th nearest other row (the row itself excluded)."""
    return knn_radii_many(features, (k,))[0]


def prdc_groups(
    real: np.ndarray,
    fake: np.ndarray,
    groups: np.ndarray,
    k_pr: int = 3,
    k_dc: int = 5,
    real_radii: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Precision, recall (Kynkaanniemi et al. 2019, k_pr) and density, coverage (Naeem et al. 2020,
    k_dc) of each group of generated images against all of `real`: name -> (G,) values in the order
    of np.unique(groups). fake (N, D), groups (N,) labels, real (M, D); `real_radii` = the reference's
    (k_pr, k_dc) radii when the caller has them. Recall's generated radii are within each group.
    Memory: a few BLOCK_ENTRIES blocks plus O(G (N + M)) flags, whatever N and M."""
    real, fake, groups = np.asarray(real, np.float64), np.asarray(fake, np.float64), np.asarray(groups)
    cols = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    r_pr, r_dc = real_radii if real_radii is not None else knn_radii_many(real, (k_pr, k_dc))
    r_fake = np.empty(len(fake))  # each generated image's k_pr-NN radius among its own group
    for c in cols:
        if len(c) <= k_pr:
            raise ValueError(
                f"recall needs more than k_pr = {k_pr} generated images per group, got {len(c)}: use fewer blocks"
            )
        r_fake[c] = knn_radii(fake[c], k_pr)
    in_manifold = np.zeros(len(fake), bool)  # generated j inside some reference ball (precision)
    balls = np.zeros(len(fake))  # reference k_dc-balls holding generated j (density)
    recalled = np.zeros((len(cols), len(real)), bool)  # reference i inside a ball of group g (recall)
    covered = np.zeros((len(cols), len(real)), bool)  # reference i's k_dc-ball holds an image of group g (coverage)
    for rows, d in _row_blocks(real, fake):  # d: (rows, N)
        in_pr, in_dc, in_fake = d <= r_pr[rows, None], d <= r_dc[rows, None], d <= r_fake[None, :]
        in_manifold |= in_pr.any(axis=0)
        balls += in_dc.sum(axis=0)
        for g, c in enumerate(cols):
            recalled[g, rows] = in_fake[:, c].any(axis=1)
            covered[g, rows] = in_dc[:, c].any(axis=1)
    return {
        "precision": np.array([in_manifold[c].mean() for c in cols]),
        "recall": recalled.mean(axis=1),
        "density": np.array([balls[c].sum() / (k_dc * len(c)) for c in cols]),
        "coverage": covered.mean(axis=1),
    }


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of generated features `fake` (M, D) against `real` (N, D)."""
    r = prdc_groups(real, fake, np.zeros(len(fake)), k, k)
    return float(r["precision"][0]), float(r["recall"][0])


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(density, coverage) of generated features `fake` (M, D) against `real` (N, D)."""
    r = prdc_groups(real, fake, np.zeros(len(fake)), 1, k)
    return float(r["density"][0]), float(r["coverage"][0])

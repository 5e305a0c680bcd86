"""Intervals for set metrics from disjoint, prompt-stratified blocks of the generated images
(features -> blocks -> estimates -> interval; pure numpy). The reference is held fixed: every
interval is conditional on the reference set, which is computed once and shared by every cell
compared (docs/metrics.md, "Intervals for set metrics").

Why blocks, not the bootstrap: a with-replacement resample duplicates images; a duplicate is its
own nearest neighbour (k-NN radii shrink, so precision / recall / density / coverage move) and
turns KID's U-statistic into the biased V-statistic; re-centring the replicates then moved KID's
whole interval below 0 (issue 28). The self-check `imagen-bench coverage` measures both.

Blocks: the generated images' prompts (all samples of one prompt together) are dealt round-robin
in a fixed hash order into G blocks, so two entries on the same prompts get the same blocks and
can be compared block by block (paired pseudo-values).

    FID / FD       FD_N on all N images (the protocol value), and the delete-a-block jackknife
                   FD_J = G FD_N - (G-1) mean_g FD_(-g): if E[FD_N] = FD + c / N, FD_J removes c / N
                   (the two-point form of Chong & Forsyth's FID-infinity). Interval for FD:
                   FD_J +- t(G-1) SE_J, SE_J^2 = (G-1)/G sum_g (FD_(-g) - mean)^2, floored at 0.
    KID, CMMD      unbiased MMD^2 (U-statistic); SE by the delete-a-block jackknife over generated
                   blocks (block sums of the kernel, O(G^2) per leave-out). KID's protocol value
                   is the mean over S random subsets (clean-fid); its expectation given the data is
                   the all-images U-statistic, so its variance adds the subsets' Monte Carlo part
                   std^2 / S.
    PRDC           k-NN statistics have no valid bootstrap (Abadie & Imbens 2008). The estimand is
                   the metric of m = N / G generated images against the reference, estimated by the
                   mean over the G disjoint blocks (i.i.d. given the reference): mean +- t(G-1) sd /
                   sqrt(G), kept inside the metric's range.
"""
from __future__ import annotations

import hashlib

import numpy as np
from scipy.special import stdtrit

from .stats import prdc_groups, row_slices

MIN_BLOCKS = 5  # t(G-1) with fewer blocks is too wide to be useful; 20 is the default of the specs


def prompt_code(prompt_set: str, prompt_id: str) -> float:
    """A prompt's 52-bit code as float64 (exact below 2**53), kept beside its features so that
    blocks are formed by prompt under torch.distributed too (cat-reduced with the features)."""
    digest = hashlib.sha256(f"{prompt_set}\0{prompt_id}".encode()).hexdigest()
    return float(int(digest[:13], 16))


def assign_blocks(codes: np.ndarray, blocks: int) -> np.ndarray:
    """(N,) block index in [0, G) for N images with prompt codes (N,): the distinct prompts, in
    code order (a hash: no relation to category or id), dealt round-robin; all samples of a prompt
    share a block. Raises if there are fewer prompts than blocks."""
    codes = np.asarray(codes, np.float64)
    distinct, index = np.unique(codes, return_inverse=True)
    if blocks < MIN_BLOCKS or len(distinct) < blocks:
        raise ValueError(f"interval blocks: need {MIN_BLOCKS} <= blocks <= the number of prompts ({len(distinct)}), got {blocks}")
    return (np.arange(len(distinct)) % blocks)[index]


def block_key(codes: np.ndarray, blocks: int) -> str:
    """Names which prompts the blocks hold: equal keys, equal blocks (for paired comparisons)."""
    distinct = np.unique(np.asarray(codes, np.float64)).astype(np.int64)
    return hashlib.sha256(distinct.tobytes() + str(blocks).encode()).hexdigest()[:16]


def t_interval(centre: float, se: float, df: int, level: float, low: float | None, high: float | None) -> tuple[float, float]:
    """centre +- t(df) se, kept inside [low, high] (None: unbounded on that side)."""
    half = float(stdtrit(df, 0.5 + level / 2)) * se
    lo, hi = centre - half, centre + half
    if low is not None:
        lo, hi = max(lo, low), max(hi, low)
    if high is not None:
        lo, hi = min(lo, high), min(hi, high)
    return float(lo), float(hi)


def jackknife(full: float, leave_out: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(bias-corrected value, SE, pseudo-values (G,)) of the delete-a-group jackknife:
    pseudo_g = G full - (G-1) leave_out_g; value = mean pseudo; SE^2 = var(pseudo) / G."""
    g = len(leave_out)
    pseudo = g * full - (g - 1) * np.asarray(leave_out, np.float64)
    return float(pseudo.mean()), float(pseudo.std(ddof=1) / np.sqrt(g)), pseudo


# -- Frechet distance ----------------------------------------------------------------------------

def reference_root(sigma_ref: np.ndarray) -> np.ndarray:
    """S_ref^{1/2} (D, D) by a symmetric eigendecomposition, negative round-off clipped to 0."""
    w, v = np.linalg.eigh(np.asarray(sigma_ref, np.float64))
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _fd_given_root(mu_ref, sigma_ref_trace, root_ref, mu, sigma) -> float:
    a = root_ref @ sigma @ root_ref
    trace = float(np.sqrt(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0, None)).sum())
    diff = mu_ref - mu
    return float(diff @ diff + sigma_ref_trace + np.trace(sigma) - 2 * trace)


def _fd_few(mu_ref, sigma_ref_trace, root_ref, x: np.ndarray) -> float:
    """The same FD for the features x (n, D) themselves, when n <= D: with M = (x - mean) S_ref^{1/2}
    / sqrt(n - 1), S_ref^{1/2} S S_ref^{1/2} = M^T M has the nonzero eigenvalues of the n x n M M^T,
    and Tr S = |x - mean|^2 / (n - 1): one n x n eigendecomposition instead of a D x D one (FID-N at
    N < 2,048, where the covariance has rank n - 1 anyway)."""
    mu = x.mean(0)
    c = (x - mu) / np.sqrt(len(x) - 1)  # (n, D): S = c^T c
    m = c @ root_ref  # (n, D)
    trace = float(np.sqrt(np.clip(np.linalg.eigvalsh(m @ m.T), 0, None)).sum())
    diff = mu_ref - mu
    return float(diff @ diff + sigma_ref_trace + float((c * c).sum()) - 2 * trace)


def frechet_blocks(mu_ref: np.ndarray, sigma_ref: np.ndarray, feats: np.ndarray, blocks: np.ndarray, level: float = 0.95,
                   root: np.ndarray | None = None) -> dict:
    """FD_N, the jackknife FD_J with its interval, and the pseudo-values, for generated features
    (N, D) in blocks (N,) against fixed reference statistics. `root` = S_ref^{1/2} when the caller
    has it (one reference, many cells). One eigendecomposition per leave-one-block-out set: D x D
    from moments by subtraction, or n x n from the features themselves when n <= D (_fd_few)."""
    f = np.asarray(feats, np.float64)
    if root is None:
        root = reference_root(sigma_ref)
    tr_ref = float(np.trace(sigma_ref))
    n, dim = f.shape
    s1, s2 = (f.sum(0), f.T @ f) if n > dim else (None, None)

    def fd(keep: np.ndarray) -> float:
        if keep.sum() <= dim:
            return _fd_few(mu_ref, tr_ref, root, f[keep])
        count, t1 = keep.sum(), s1 - f[~keep].sum(0)
        t2, mu = s2 - f[~keep].T @ f[~keep], t1 / count
        return _fd_given_root(mu_ref, tr_ref, root, mu, (t2 - count * np.outer(mu, mu)) / (count - 1))

    full = fd(np.ones(n, bool))
    ids = np.unique(blocks)
    leave = np.array([fd(blocks != g) for g in ids])
    value, se, pseudo = jackknife(full, leave)
    low, high = t_interval(value, se, len(ids) - 1, level, 0.0, None)
    return {"value_n": full, "value_debiased": value, "se": se, "ci_low": low, "ci_high": high, "pseudo": pseudo.tolist()}


# -- MMD (KID, CMMD) -----------------------------------------------------------------------------

def _block_kernel_sums(kernel, x: np.ndarray, y: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A (G, G): sums of k(x_i, x_j) over i in block a, j in block b, i != j; c (G,): sums of
    k(x_i, y_j) over i in block a and every reference y_j), in row chunks of x (stats.row_slices:
    bounded memory at any N)."""
    ids, b = np.unique(blocks, return_inverse=True)
    g = len(ids)
    onehot = np.eye(g)[b]  # (N, G)
    a, c = np.zeros((g, g)), np.zeros(g)
    for rows in row_slices(len(x), max(len(x), len(y))):
        kxx = kernel(x[rows], x)  # (rows, N)
        kxx[np.arange(kxx.shape[0]), np.arange(rows.start, rows.stop)] = 0.0  # i != j
        a += onehot[rows].T @ kxx @ onehot
        c += onehot[rows].T @ kernel(x[rows], y).sum(1)
    return a, c


def mmd_leave_out(kernel, x: np.ndarray, y: np.ndarray, blocks: np.ndarray) -> tuple[float, np.ndarray]:
    """(the generated-dependent part of the unbiased MMD^2 on all x, the same with each block left
    out (G,)): U_xx - 2 mean k(x, y). The reference-only term U_yy is the same in every leave-out
    (the reference is fixed) and cancels in the jackknife's spread."""
    a, c = _block_kernel_sums(kernel, np.asarray(x, np.float64), np.asarray(y, np.float64), blocks)
    sizes = np.bincount(np.unique(blocks, return_inverse=True)[1]).astype(float)
    n, m = sizes.sum(), len(y)

    def part(a_sum, c_sum, count):
        return a_sum / (count * (count - 1)) - 2 * c_sum / (count * m)

    full = part(a.sum(), c.sum(), n)
    leave = np.array([part(a.sum() - a[g].sum() - a[:, g].sum() + a[g, g], c.sum() - c[g], n - sizes[g]) for g in range(len(sizes))])
    return float(full), leave


def mmd_blocks(kernel, x: np.ndarray, y: np.ndarray, blocks: np.ndarray, value: float, extra_var: float = 0.0,
               level: float = 0.95, scale: float = 1.0) -> dict:
    """Interval for an unbiased MMD^2 `value` (already scaled by `scale`) of generated x (N, D)
    against the fixed reference y (M, D): value +- t(G-1) sqrt(scale^2 SE_J^2 + extra_var), where
    SE_J is the jackknife SE of the all-images U-statistic and extra_var the Monte Carlo variance of
    a subset-averaged value (KID: std^2 / subsets; 0 for the all-images estimator)."""
    full, leave = mmd_leave_out(kernel, x, y, blocks)
    _, se, pseudo = jackknife(full, leave)
    se = float(np.sqrt((scale * se) ** 2 + extra_var))
    low, high = t_interval(value, se, len(leave) - 1, level, None, None)
    return {"se": se, "ci_low": low, "ci_high": high, "pseudo": (scale * pseudo).tolist()}


# -- precision / recall / density / coverage -----------------------------------------------------

def prdc_blocks(real: np.ndarray, fake: np.ndarray, blocks: np.ndarray, k_pr: int, k_dc: int, level: float = 0.95,
                real_radii: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, dict]:
    """name -> {value, ci_low, ci_high, se, block_values, set_size} for precision, recall, density,
    coverage of each disjoint block of generated images (m ~ N / G each) against the whole
    reference: value = mean over blocks (the metric at m generated images), t(G-1) interval kept in
    [0, 1] ([0, inf) for density). The reference radii and the reference-x-generated distances are
    computed once per call; `real_radii` = (k_pr, k_dc radii of the reference, (M,) each) when the
    caller already has them (one reference, many cells)."""
    per = prdc_groups(real, fake, blocks, k_pr, k_dc, real_radii)  # streamed: bounded memory at any N
    ids = np.unique(blocks)
    out = {}
    for name, values in per.items():
        vals = np.asarray(values, np.float64)
        mean, se = float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(len(vals)))
        low, high = t_interval(mean, se, len(vals) - 1, level, 0.0, None if name == "density" else 1.0)
        out[name] = {"value": mean, "se": se, "ci_low": low, "ci_high": high, "pseudo": vals.tolist(),
                     "set_size": int(round(len(fake) / len(ids)))}
    return out

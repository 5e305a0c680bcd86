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
    KID, CMMD      unbiased MMD^2 (U-statistic), pairs of images of one prompt left out
                   (stats.same_prompt_pairs). SE by the delete-a-block jackknife over generated
                   blocks (block sums of the kernel, O(G^2) per leave-out); for KID less the
                   jackknife's known excess on the U-statistic's degenerate (second-order) part,
                   estimated from the U-centred block-pair kernel means (mmd_second_order;
                   MMD_INTERVALS says why not for CMMD). KID's interval: the studentised (bootstrap-t)
                   quantiles over resamples of whole-prompt units (mmd_blocks says why), where a
                   unit drawn twice is not paired with itself, so the resampled statistic stays a
                   U-statistic (the with-replacement bootstrap above paired duplicates). KID's
                   protocol value is the mean over S random subsets (clean-fid); its expectation
                   given the data is the all-images U-statistic, so its variance adds the subsets'
                   Monte Carlo part std^2 / S.
    PRDC           k-NN statistics have no valid bootstrap (Abadie & Imbens 2008). The estimand is
                   the metric of m = N / G generated images against the reference, estimated by the
                   mean over the G disjoint blocks (i.i.d. given the reference): mean +- t(G-1) sd /
                   sqrt(G), kept inside the metric's range.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit

from common.second_order import corrected_variance, mmd_second_order

from .stats import prdc_groups, psd_root, row_slices

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
        raise ValueError(
            f"interval blocks: need {MIN_BLOCKS} <= blocks <= the number of prompts ({len(distinct)}), got {blocks}"
        )
    return (np.arange(len(distinct)) % blocks)[index]


def block_key(codes: np.ndarray, blocks: int) -> str:
    """Names which prompts the blocks hold: equal keys, equal blocks (for paired comparisons)."""
    distinct = np.unique(np.asarray(codes, np.float64)).astype(np.int64)
    return hashlib.sha256(distinct.tobytes() + str(blocks).encode()).hexdigest()[:16]


def t_interval(
    centre: float, se: float, df: int, level: float, low: float | None, high: float | None
) -> tuple[float, float]:
    """centre +- t(df) se, kept inside [low, high] (None: unbounded on that side)."""
    half = float(stdtrit(df, 0.5 + level / 2)) * se
    lo, hi = centre - half, centre + half
    if low is not None:
        lo, hi = max(lo, low), max(hi, low)
    if high is not None:
        lo, hi = min(lo, high), min(hi, high)
    return float(lo), float(hi)


def skew_t_interval(values: np.ndarray, level: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Interval for the mean of G i.i.d. values (G,) that follows their skew: Hall's (1992) cubic
    transformation of the t statistic. With T = (mean - mu) / se and g the adjusted sample skewness,
    h(T) = T + a T^2 + a^2 T^3 / 3 + b (a = g / (3 sqrt G), b = g / (6 sqrt G)) is t-distributed to
    second order and monotone (h' = (1 + a T)^2), so mu lies in [mean - se h^-1(t), mean - se h^-1(-t)],
    h^-1(y) = ((1 + 3 a (y - b))^(1/3) - 1) / a. Right-skewed values move the interval up, where the
    symmetric t interval misses on the high side (the truth above it) several times as often as on
    the low side. Kept inside [low, high] (None: unbounded on that side)."""
    v = np.asarray(values, np.float64)
    n = len(v)
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    se = sd / np.sqrt(n)
    if n < 3 or sd == 0:
        return t_interval(mean, se, max(n - 1, 1), level, low, high)
    skew = float(((v - mean) ** 3).mean() / v.std() ** 3) * np.sqrt(n * (n - 1)) / (n - 2)  # adjusted (G1)
    a, b = skew / (3 * np.sqrt(n)), skew / (6 * np.sqrt(n))
    q = float(stdtrit(n - 1, 0.5 + level / 2))

    def inverse(y: float) -> float:
        return y - b if abs(a) < 1e-12 else float((np.cbrt(1 + 3 * a * (y - b)) - 1) / a)

    lo, hi = mean - se * inverse(q), mean - se * inverse(-q)
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


def frechet_blocks(
    mu_ref: np.ndarray,
    sigma_ref: np.ndarray,
    feats: np.ndarray,
    blocks: np.ndarray,
    level: float = 0.95,
    root: np.ndarray | None = None,
) -> dict:
    """FD_N, the jackknife FD_J with its interval, and the pseudo-values, for generated features
    (N, D) in blocks (N,) against fixed reference statistics. `root` = S_ref^{1/2} when the caller
    has it (one reference, many cells). One eigendecomposition per leave-one-block-out set: D x D
    from moments by subtraction, or n x n from the features themselves when n <= D (_fd_few)."""
    f = np.asarray(feats, np.float64)
    if root is None:
        root = psd_root(sigma_ref)
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
    return {
        "value_n": full,
        "value_debiased": value,
        "se": se,
        "ci_low": low,
        "ci_high": high,
        "pseudo": pseudo.tolist(),
    }


# -- MMD (KID, CMMD) -----------------------------------------------------------------------------

# Bootstrap units: groups of whole prompts, at most this many (the U x U kernel-sum matrix is built
# in row chunks of x, so memory stays bounded at any N; 200 units estimate a 2.5 % quantile well).
MAX_UNITS = 200
BOOTSTRAP_DRAWS = 999
DRAW_BATCH = 64  # draws computed together: M (64, 200, 20) and (64, G, 200) products


def bootstrap_units(codes: np.ndarray, blocks: int) -> tuple[np.ndarray, int]:
    """((N,) unit index in [0, U), U) for N images with prompt codes (N,): the distinct prompts in
    code order dealt round-robin into U = G floor(min(P, MAX_UNITS) / G) units, so a unit's block
    (assign_blocks) is its index mod G and every block holds U / G units."""
    distinct, index = np.unique(np.asarray(codes, np.float64), return_inverse=True)
    units = blocks * max(1, min(len(distinct), MAX_UNITS) // blocks)
    return (np.arange(len(distinct)) % units)[index], units


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


def cross_unit_leave_out(
    a: np.ndarray, c: np.ndarray, sizes: np.ndarray, picks: np.ndarray, blocks: int, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(T (D,), T without each block (D, G), the block-pair kernel sums (D, G, G) in the all-pairs
    normalisation with a zero diagonal, the block sizes (D, G)) for the generated-dependent part of the MMD^2 U-statistic between units of
    different origin, T = sum_{u != v, pick_u != pick_v} a_uv / sum s_u s_v - 2 sum_u c_u / (n m),
    for each row of `picks` (D, U): units of a (U, U) kernel-sum matrix with a zero diagonal, c (U,),
    sizes s (U,); the identity, or bootstrap draws with replacement (pairs of two copies of one
    unit are left out, as a U-statistic leaves out i = j). Position i belongs to block i mod G. The
    reference-only term is the same in every leave-out and draw (the reference is fixed) and
    cancels. Built from M (D, U, G), how often each unit fills a position of each block:
    block sums M^T a M, so no (D, U, U) gather. The last two are what mmd_second_order takes (the
    jackknife's second-order excess), for one entry or for the difference of two on the same blocks."""
    d, u = picks.shape
    counts = np.zeros((d, len(sizes), blocks))  # M: how often each unit fills a position of each block
    np.add.at(counts, (np.arange(d)[:, None], picks, np.arange(u) % blocks), 1.0)
    ct = counts.transpose(0, 2, 1)  # (D, G, U)
    ab = ct @ a @ counts  # (D, G, G); a's zero diagonal leaves out pairs of one origin
    sb = ct @ sizes  # (D, G)
    wb = sb[:, :, None] * sb[:, None, :] - (ct * sizes**2) @ counts  # pairs of two origins, weighted s_u s_v
    cb = ct @ c
    n, a_all, w_all = sb.sum(1), ab.sum((1, 2)), wb.sum((1, 2))
    full = a_all / w_all - 2 * cb.sum(1) / (n * m)
    diag = np.arange(blocks)
    kept = w_all[:, None] - 2 * wb.sum(2) + wb[:, diag, diag]
    with np.errstate(divide="ignore", invalid="ignore"):
        leave = (a_all[:, None] - 2 * ab.sum(2) + ab[:, diag, diag]) / kept - 2 * (cb.sum(1)[:, None] - cb) / (
            (n[:, None] - sb) * m
        )
    scaled = ab * (n * (n - 1) / w_all)[:, None, None]  # in the all-pairs normalisation mmd_second_order assumes
    scaled[:, diag, diag] = 0.0
    return full, leave, scaled, sb


@dataclass(frozen=True)
class MmdInterval:
    """How an MMD metric's interval is made, chosen per metric by the coverage simulation
    (docs/intervals.md), not by taste."""

    second_order: bool  # the jackknife variance less its second-order excess (mmd_second_order)
    bootstrap_t: bool  # studentised bootstrap quantiles over prompt units, else t(G-1)

    def method(self) -> str:
        """What a result records as its interval method (interval_details' ci_method)."""
        se = "the delete-a-block jackknife over prompt blocks" + (
            " less its second-order excess" if self.second_order else ""
        )
        if self.bootstrap_t:
            return f"cross-prompt U-statistic; studentised bootstrap over prompt units, SE {se}"
        return f"cross-prompt U-statistic; t(G-1), SE {se}"


# KID (cubic kernel): the corrected variance is unbiased (test_intervals_blocks.py), but near
# MMD^2 = 0 the t interval on it missed almost only with the truth above (34 / 0); the bootstrap-t
# balances the misses. CMMD (Gaussian kernel): the corrected variance is unbiased too (0.85-1.02 x
# the true variance over 300 simulated data sets), but the statistic is skewed (skewness 1.4 at
# identical distributions) and its variance estimate heavy-tailed (sd / mean 0.8-1.5, where t(19)
# assumes 0.32), so a t interval on it covered only 90-93 %; the bootstrap-t on either variance
# was short on one side under a large shift (93.2 %, 8 / 19) and long at identical distributions
# (98 %). The plain jackknife's t interval covers 95.5-98 % (conservative, never short).
MMD_INTERVALS = {"kid": MmdInterval(second_order=True, bootstrap_t=True), "cmmd": MmdInterval(False, False)}


def mmd_blocks(
    kernel,
    x: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    blocks: int,
    value: float,
    extra_var: float = 0.0,
    level: float = 0.95,
    scale: float = 1.0,
    *,
    interval: MmdInterval,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> dict:
    """Interval for an unbiased MMD^2 `value` (already scaled by `scale`) of generated x (N, D) with
    prompt codes (N,) against the fixed reference y (M, D), se = sqrt(scale^2 V + extra_var):
    with `interval.bootstrap_t` [value - q_hi se, value - q_lo se], else value +- t(G-1) se.

    V: the delete-a-block jackknife variance v_J (G prompt blocks) of the cross-unit U-statistic
    (cross_unit_leave_out), with `interval.second_order` less its second-order excess and kept
    between v_J (G-2) / (2 (G-1)) (all of it degenerate) and v_J; extra_var the Monte Carlo variance
    of a subset-averaged value (KID: std^2 / subsets; 0 for the all-images estimator).
    q_lo, q_hi: quantiles of t* = (T* + e* - T) / sqrt(V* + extra) over `draws` resamples of the U
    bootstrap units (bootstrap_units) with replacement, V* recomputed on each, e* ~ N(0, extra) the
    value's own Monte Carlo error (extra = extra_var / scale^2; scaling the all-images statistic's
    quantiles to the larger SE instead covered 96.6-97.2 % near 0, docs/intervals.md). Why not value +- t(G-1) se for
    KID: near MMD^2 = 0 the statistic is a degenerate U-statistic, right-skewed, and its variance
    estimate moves with it (correlation 0.8 in the coverage simulation): a low estimate comes with
    a small SE, so the symmetric interval missed almost only with the truth above it (34 / 0 at
    identical distributions, docs/intervals.md). The studentised bootstrap carries that dependence
    into its quantiles (Hall 1992)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    units, count = bootstrap_units(codes, blocks)
    a, c = _block_kernel_sums(kernel, x, y, units)
    np.fill_diagonal(a, 0.0)
    sizes = np.bincount(units, minlength=count).astype(float)

    def variance(picks: np.ndarray) -> tuple[np.ndarray, ...]:
        """(T (D,), V (D,), v_J (D,), pseudo-values (D, G), block-pair sums (D, G, G), block sizes
        (D, G)) for picks (D, U)."""
        full, leave, pair_sums, block_sizes = cross_unit_leave_out(a, c, sizes, picks, blocks, len(y))
        pseudo = blocks * full[:, None] - (blocks - 1) * leave
        v_j = pseudo.var(1, ddof=1) / blocks  # = (G-1)/G sum_g (T_(-g) - mean)^2 (jackknife)
        var = v_j
        if interval.second_order:
            var = corrected_variance(v_j, mmd_second_order(pair_sums, block_sizes), blocks)
        return full, var, v_j, pseudo, pair_sums, block_sizes

    full, var, v_j, pseudo, pair_sums, block_sizes = (v[0] for v in variance(np.arange(count)[None, :]))
    se = float(np.sqrt(scale**2 * var + extra_var))
    out = {
        "se": se,
        "se_jackknife": float(scale * np.sqrt(v_j)),
        "pseudo": (scale * pseudo).tolist(),
        # what a paired comparison on the same blocks needs to take the second-order excess off the
        # difference's jackknife variance (reports.paired.block_difference), in the value's units
        "second_order": {"pair_sums": (scale * pair_sums).tolist(), "sizes": block_sizes.tolist()},
    }
    if not interval.bootstrap_t:
        low, high = t_interval(value, se, blocks - 1, level, None, None)
        return {**out, "ci_low": low, "ci_high": high}
    rng = np.random.default_rng(seed)
    extra = extra_var / scale**2  # in the statistic's units
    studentised = []
    for start in range(0, draws, DRAW_BATCH):  # DRAW_BATCH draws at a time: bounded memory
        size = min(DRAW_BATCH, draws - start)
        with np.errstate(divide="ignore", invalid="ignore"):  # a draw of one unit only has no pair: 0 / 0
            t_full, t_var, *_ = variance(rng.integers(0, count, (size, count)))
        # the value's own Monte Carlo error (KID's subsets), drawn into each resample as into the value
        t_full = t_full + np.sqrt(extra) * rng.standard_normal(size)
        usable = np.isfinite(t_full) & np.isfinite(t_var) & (t_var + extra > 0)
        studentised.append((t_full[usable] - full) / np.sqrt(t_var[usable] + extra))
    studentised = np.concatenate(studentised)
    if len(studentised) < draws / 2:
        raise ValueError(f"MMD interval: only {len(studentised)} of {draws} bootstrap draws usable ({count} units)")
    q_lo, q_hi = np.quantile(studentised, [(1 - level) / 2, (1 + level) / 2])
    return {
        **out,
        "ci_low": float(value - q_hi * se),
        "ci_high": float(value - q_lo * se),
        "bootstrap_t": {"quantiles": [float(q_lo), float(q_hi)], "units": count, "draws": len(studentised)},
    }


# -- precision / recall / density / coverage -----------------------------------------------------


def prdc_blocks(
    real: np.ndarray,
    fake: np.ndarray,
    blocks: np.ndarray,
    k_pr: int,
    k_dc: int,
    level: float = 0.95,
    real_radii: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, dict]:
    """name -> {value, ci_low, ci_high, se, block_values, set_size} for precision, recall, density,
    coverage of each disjoint block of generated images (m ~ N / G each) against the whole
    reference: value = mean over blocks (the metric at m generated images), Hall's skew-corrected t(G-1)
    interval (skew_t_interval) kept in [0, 1] ([0, inf) for density). The reference radii and the reference-x-generated distances are
    computed once per call; `real_radii` = (k_pr, k_dc radii of the reference, (M,) each) when the
    caller already has them (one reference, many cells)."""
    per = prdc_groups(real, fake, blocks, k_pr, k_dc, real_radii)  # streamed: bounded memory at any N
    ids = np.unique(blocks)
    out = {}
    for name, values in per.items():
        vals = np.asarray(values, np.float64)
        mean, se = float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(len(vals)))
        low, high = skew_t_interval(vals, level, 0.0, None if name == "density" else 1.0)
        out[name] = {
            "value": mean,
            "se": se,
            "ci_low": low,
            "ci_high": high,
            "pseudo": vals.tolist(),
            "set_size": int(round(len(fake) / len(ids))),
        }
    return out

"""Coverage of every interval the suite prints, measured against known truths (`imagen-bench coverage`).

Per-image means (reports.intervals.bounded_mean): P prompts x s samples, true mean p, four kinds:
    binary            one 0/1 image per prompt (verifier, all-questions): coverage computed exactly
                      (every outcome x = 0..P weighted by its binomial probability, no Monte Carlo),
                      and whether ANY non-randomised interval could reach 93.5-96.5 % there (some
                      contiguous range of outcomes with that probability): at P = 3, p = 0.1 none can
    binary-clustered  3 images per prompt, prompt rates q_i ~ Beta with mean p and intra-prompt
                      correlation 0.3 (the shapes demo: 3 samples per prompt)
    bounded           3 images per prompt, values in [0, 1] ~ Beta(4 q_i, 4 (1 - q_i)) (OCR similarity, P(yes))
    continuous        3 images per prompt, CLIP-score-like: prompt means ~ N(10 + 30 p, 5^2) (CLIP
                      scores lie in 10-40), images ~ N(prompt mean, 5^2) clipped to [0, 100] (method
                      "t", which assumes roughly symmetric prompt means; truth: the clipped mean)
  arms: the metric's own method and "t-unclipped (former)" (mean +- t(P-1) x the prompt-bootstrap
  SE, here its B -> infinity limit, the cluster SE).

Set metrics (bench.metrics.blocks) on Gaussian features, the reference drawn once per scenario and
held fixed (the intervals are conditional on it; truths in truths.py): generated features come in
prompts (prompt centres ~ N(mu, 0.2 S), samples around them), so blocks are of prompts.
  scenarios: identical (mu = 0, S = reference's), shift-small / shift-large (mean moved),
  shrink (S x 0.8: diversity lost).
  arms: "blocks" (the suite's) and "bootstrap" (the former: resample generated features with
  replacement, percentile spread re-centred on the estimate).

Ranks: T tables of 10 identical entries on P prompts; the share of tables with any "separated" pair,
with and without Holm's correction.

Crossed human ratings (crossed.py): the report's preference-rate interval in the tail (95 %, 99 %,
99.17 %) and its p-value's type I error, prompts x raters designs with a known truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.special import stdtrit
from scipy.stats import binom, norm

from bench.metrics import blocks as B
from bench.metrics.stats import (
    feature_stats,
    frechet_distance,
    gaussian_kernel,
    kernel_inception_distance,
    knn_radii,
    polynomial_kernel,
    prdc_groups,
)
from reports.intervals import bounded_mean, holm
from reports.paired import paired_difference

from . import crossed
from .former import frechet_bootstrap, recentred, resampled
from .truths import frechet_truth, kid_truth, rbf_truth

LEVEL = 0.95
RATES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)
PROMPTS = (3, 12, 21, 200)
KINDS = {
    "binary": (1, "wilson-eff"),
    "binary-clustered": (3, "wilson-eff"),
    "bounded": (3, "wilson-eff"),
    "continuous": (3, "t"),
}  # kind -> (samples per prompt, the metric's interval method)
ICC = 0.3
PRDC_TRUTH_CHUNK = 2000  # truth sets drawn at once (2,000 x 50 features of d = 64: ~50 MB)


@dataclass(frozen=True)
class Sizes:
    """Simulation sizes (full: the docs' table; quick: the CI test)."""

    replicates: int = 1000  # per cell, new methods
    old_replicates: int = 100  # per cell, the former bootstrap (each replicate costs B metric evaluations)
    old_resamples: int = 100
    dim: int = 64
    reference: int = 3000
    prompts: int = 200
    samples: int = 5
    blocks: int = 20
    mmd_draws: int = 999  # KID / CMMD bootstrap-t draws per interval (blocks.BOOTSTRAP_DRAWS)
    # the PRDC truths are Monte Carlo means: at 2,000 sets their error was ~0.1 of an interval's standard
    # error, enough alone to tip a fair 25 / 25 split of misses to 30 / 20; at 40,000 it is ~0.02
    prdc_truth_sets: int = 40_000
    rank_tables: int = 1000
    crossed: crossed.CrossedSizes = crossed.CrossedSizes()  # own replicates (--replicates does not apply)


QUICK = Sizes(
    replicates=300,
    old_replicates=60,
    old_resamples=60,
    dim=16,
    reference=1000,
    prompts=100,
    samples=4,
    blocks=10,
    mmd_draws=199,
    prdc_truth_sets=400,
    rank_tables=200,
    crossed=crossed.QUICK,
)


def _row(family, metric, method, scenario, n, truth, lows, highs, range_low=None, range_high=None) -> dict:
    lows, highs = np.asarray(lows, float), np.asarray(highs, float)
    truth = np.broadcast_to(np.asarray(truth, float), lows.shape)
    below, above = highs < truth, lows > truth  # the truth lies above the interval / below it
    out = np.zeros(len(lows), bool)
    if range_low is not None:
        out |= lows < range_low - 1e-12
    if range_high is not None:
        out |= highs > range_high + 1e-12
    r = len(lows)
    cov = 1 - (below.sum() + above.sum()) / r
    misses = (int(below.sum()), int(above.sum()))
    lo_m, hi_m = min(misses), max(misses)
    return {
        "family": family,
        "metric": metric,
        "method": method,
        "scenario": scenario,
        "n": n,
        "truth": float(np.mean(truth)),
        "replicates": r,
        "coverage": round(100 * cov, 1),
        "miss_truth_above": misses[0],
        "miss_truth_below": misses[1],
        "out_of_range": round(100 * out.mean(), 1),
        "median_width": float(np.median(highs - lows)),
        "pass": bool(93.5 <= 100 * cov <= 96.5 and not out.any() and (hi_m <= 2 * max(lo_m, 1) or hi_m <= 5)),
    }


# -- per-image means ------------------------------------------------------------------------------


def _draw_per_image(rng, kind: str, p_true: float, n_prompts: int, reps: int) -> np.ndarray:
    s = KINDS[kind][0]
    if kind == "continuous":
        centre = rng.normal(10 + 30 * p_true, 5, (reps, n_prompts, 1))
        return np.clip(centre + rng.normal(0, 5, (reps, n_prompts, s)), 0, 100)
    a, b = p_true * (1 / ICC - 1), (1 - p_true) * (1 / ICC - 1)
    q = rng.beta(a, b, (reps, n_prompts, 1))
    if kind == "binary-clustered":
        return (rng.random((reps, n_prompts, s)) < q).astype(float)
    q = np.clip(q, 1e-6, 1 - 1e-6)
    return rng.beta(4 * q, 4 * (1 - q), (reps, n_prompts, s))


def _clipped_normal_mean(mu: float, sd: float, low: float, high: float) -> float:
    """E[clip(X, low, high)] for X ~ N(mu, sd^2): E max(X - a, 0) = (mu - a) Phi((mu - a)/sd) + sd phi((mu - a)/sd)."""

    def above(a):
        z = (mu - a) / sd
        return (mu - a) * norm.cdf(z) + sd * norm.pdf(z)

    return float(low + above(low) - above(high))


def _binary_exact(n_prompts: int, p_true: float) -> dict:
    """Exact coverage of bounded_mean on P independent 0/1 images: sum over outcomes x of
    Binom(x; P, p) [p in the interval for x]; attainable: some contiguous range of outcomes has a
    probability in [0.935, 0.965] (a non-randomised interval covers p for a contiguous range of x)."""
    prompt = np.arange(n_prompts)
    prob = binom.pmf(np.arange(n_prompts + 1), n_prompts, p_true)
    above = below = 0.0
    widths = []
    for x in range(n_prompts + 1):
        iv = bounded_mean(prompt, (np.arange(n_prompts) < x).astype(float), 0.0, 1.0, LEVEL)
        above += prob[x] * (iv.high < p_true)
        below += prob[x] * (iv.low > p_true)
        widths.append(iv.high - iv.low)
    cum = np.concatenate([[0.0], np.cumsum(prob)])
    attainable = any(
        0.935 <= cum[b + 1] - cum[a] <= 0.965 for a in range(n_prompts + 1) for b in range(a, n_prompts + 1)
    )
    return {
        "family": "per-image mean",
        "metric": "binary",
        "method": "wilson-eff",
        "scenario": f"binary p={p_true}",
        "n": n_prompts,
        "truth": p_true,
        "replicates": "exact",
        "coverage": round(100 * (1 - above - below), 1),
        "miss_truth_above": round(100 * above, 2),
        "miss_truth_below": round(100 * below, 2),
        "out_of_range": 0.0,
        "median_width": float(np.average(widths, weights=prob)),
        "attainable": attainable,
        "pass": bool(93.5 <= 100 * (1 - above - below) <= 96.5),
    }


def per_image(sizes: Sizes, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for kind, (s, method) in KINDS.items():
        high = 100.0 if kind == "continuous" else 1.0
        for n_prompts in PROMPTS:
            prompt = np.repeat(np.arange(n_prompts), s)
            t = float(stdtrit(n_prompts - 1, 0.5 + LEVEL / 2))
            for p_true in RATES:
                truth = (
                    _clipped_normal_mean(10 + 30 * p_true, np.sqrt(50.0), 0.0, 100.0)
                    if kind == "continuous"
                    else p_true
                )
                if kind == "binary":
                    rows.append(_binary_exact(n_prompts, p_true))
                y = _draw_per_image(rng, kind, p_true, n_prompts, sizes.replicates).reshape(sizes.replicates, -1)
                new, old = [], []
                for row in y:
                    iv = bounded_mean(prompt, row, 0.0, high, LEVEL, method)
                    new.append((iv.low, iv.high))
                    old.append((iv.mean - t * iv.se, iv.mean + t * iv.se))
                scen = f"{kind} p={p_true}"
                arms = (
                    (("t-unclipped (former)", old),)
                    if kind == "binary"
                    else ((method, new), ("t-unclipped (former)", old))
                )
                for name, bounds in arms:
                    lo, hi = np.array(bounds).T
                    rows.append(_row("per-image mean", kind, name, scen, n_prompts, truth, lo, hi, 0.0, high))
    return rows


# -- set metrics ----------------------------------------------------------------------------------


def _covariance(rng, d: int) -> np.ndarray:
    """An orthogonal rotation of a power-law spectrum (lambda_i ~ 1 / i, trace d): Inception-like."""
    lam = 1.0 / np.arange(1, d + 1)
    lam *= d / lam.sum()
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * lam) @ q.T


def _scenarios(sigma: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    d = len(sigma)
    e = np.ones(d) / np.sqrt(d)
    return {
        "identical": (np.zeros(d), sigma),
        "shift-small": (0.3 * e, sigma),
        "shift-large": (1.5 * e, sigma),
        "shrink": (np.zeros(d), 0.8 * sigma),
    }


def _generate(
    rng, mu, sigma, sizes: Sizes, prompts: int | None = None, centres: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(features (P s, D), prompt codes): prompt centres ~ N(mu, 0.2 S), samples ~ N(centre, 0.8 S).
    `centres`: the prompts' standard-normal draws (P, D) when several entries share prompts (a
    prompt's centre is then mu + sqrt(0.2) S^1/2 z for each entry's own mu and S)."""
    p = prompts or sizes.prompts
    chol = np.linalg.cholesky(sigma + 1e-12 * np.eye(len(sigma)))
    z = rng.normal(size=(p, len(mu))) if centres is None else centres
    centres = mu + np.sqrt(0.2) * z @ chol.T
    feats = (
        np.repeat(centres, sizes.samples, 0) + np.sqrt(0.8) * rng.normal(size=(p * sizes.samples, len(mu))) @ chol.T
    )
    return feats, np.repeat(np.arange(p, dtype=float), sizes.samples)


@dataclass(frozen=True)
class World:
    """The set-metric simulation's fixed part: the feature covariance and the reference sample with
    everything computed once from it (the intervals are conditional on the reference)."""

    sigma: np.ndarray  # (D, D) the reference distribution's covariance (mean 0)
    ref: np.ndarray  # (M, D) the reference sample
    mu_ref: np.ndarray
    sigma_ref: np.ndarray
    rbf_s: float  # CMMD's Gaussian kernel width
    u_yy: float  # CMMD's reference-only term
    radii: tuple[np.ndarray, np.ndarray]  # the reference's k-NN radii (k = 3, 5)

    @classmethod
    def draw(cls, rng, sizes: Sizes) -> World:
        d = sizes.dim
        sigma = _covariance(rng, d)
        ref = rng.multivariate_normal(np.zeros(d), sigma, sizes.reference)
        mu_ref, sigma_ref = feature_stats(ref)
        rbf_s = float(np.sqrt(2 * d))
        kyy = gaussian_kernel(ref, ref, rbf_s)
        u_yy = float((kyy.sum() - np.trace(kyy)) / (len(ref) * (len(ref) - 1)))
        return cls(sigma, ref, mu_ref, sigma_ref, rbf_s, u_yy, (knn_radii(ref, 3), knn_radii(ref, 5)))

    def truths(self, mu: np.ndarray, sig: np.ndarray) -> dict[str, float]:
        """The closed-form FD, KID and CMMD of generated features N(mu, sig) given the reference."""
        return {
            "fd": frechet_truth(mu, sig, self.ref),
            "kid": kid_truth(mu, sig, self.ref),
            "cmmd": rbf_truth(mu, sig, self.ref, self.rbf_s),
        }


def set_metrics(
    sizes: Sizes,
    seed: int = 0,
    only: tuple[str, ...] = ("fd", "kid", "cmmd", "prdc"),
    former: tuple[str, ...] = ("fd", "kid", "cmmd"),
) -> list[dict]:
    """Coverage rows of the suite's set-metric intervals (`only`) and of the former bootstrap (`former`)."""
    rng = np.random.default_rng(seed)
    world = World.draw(rng, sizes)
    sigma, ref, mu_ref, sigma_ref = world.sigma, world.ref, world.mu_ref, world.sigma_ref
    rbf_s, u_yy, radii = world.rbf_s, world.u_yy, world.radii
    rows = []
    n = sizes.prompts * sizes.samples
    kid_subsets, kid_size = 20, n // 2
    for scen, (mu, sig) in _scenarios(sigma).items():
        truths = world.truths(mu, sig)
        new = {m: [] for m in only}
        for _ in range(sizes.replicates):
            feats, codes = _generate(rng, mu, sig, sizes)
            blocks = B.assign_blocks(codes, sizes.blocks)
            if "fd" in only:
                r = B.frechet_blocks(mu_ref, sigma_ref, feats, blocks, LEVEL)
                new["fd"].append((r["ci_low"], r["ci_high"]))
            if "kid" in only:
                seed = int(rng.integers(1 << 30))
                mean, std, _ = kernel_inception_distance(ref, feats, kid_subsets, kid_size, seed, fake_prompts=codes)
                r = B.mmd_blocks(
                    polynomial_kernel,
                    feats,
                    ref,
                    codes,
                    sizes.blocks,
                    mean,
                    std**2 / kid_subsets,
                    LEVEL,
                    interval=B.MMD_INTERVALS["kid"],
                    draws=sizes.mmd_draws,
                )
                new["kid"].append((r["ci_low"], r["ci_high"]))
            if "cmmd" in only:
                # = gaussian_mmd2_unbiased(ref, feats, rbf_s, codes), the reference term cached
                cross = codes[:, None] != codes[None, :]  # pairs of two prompts
                value = (
                    u_yy
                    + gaussian_kernel(feats, feats, rbf_s)[cross].mean()
                    - 2 * gaussian_kernel(feats, ref, rbf_s).mean()
                )
                r = B.mmd_blocks(
                    partial(gaussian_kernel, sigma=rbf_s),
                    feats,
                    ref,
                    codes,
                    sizes.blocks,
                    value,
                    0.0,
                    LEVEL,
                    interval=B.MMD_INTERVALS["cmmd"],
                    draws=sizes.mmd_draws,
                )
                new["cmmd"].append((r["ci_low"], r["ci_high"]))
            if "prdc" in only:
                r = B.prdc_blocks(ref, feats, blocks, 3, 5, LEVEL, real_radii=radii)
                new["prdc"].append({k: (v["ci_low"], v["ci_high"]) for k, v in r.items()})
        for metric in only:
            if metric == "prdc":
                truth = _prdc_truth(rng, mu, sig, ref, sizes)
                for name, t in truth.items():
                    lo, hi = np.array([b[name] for b in new["prdc"]]).T
                    rows.append(
                        _row("set metric", name, "blocks", scen, n, t, lo, hi, 0.0, None if name == "density" else 1.0)
                    )
            else:
                lo, hi = np.array(new[metric]).T
                rows.append(
                    _row(
                        "set metric",
                        metric,
                        "blocks" if metric != "fd" else "jackknife blocks",
                        scen,
                        n,
                        truths[metric],
                        lo,
                        hi,
                        0.0 if metric == "fd" else None,
                    )
                )
        rows += _old_arms(
            rng,
            mu,
            sig,
            ref,
            mu_ref,
            sigma_ref,
            sizes,
            scen,
            truths,
            tuple(m for m in former if m in only),
            rbf_s,
            kid_size,
        )
    return rows


def _prdc_truth(rng, mu, sig, ref, sizes: Sizes) -> dict[str, float]:
    """E[metric of m = P s / G generated images | reference]: the mean over many fresh sets of
    P / G prompts each, drawn PRDC_TRUTH_CHUNK sets at a time (one block per set)."""
    per_block = sizes.prompts // sizes.blocks
    radii = (knn_radii(ref, 3), knn_radii(ref, 5))
    sums: dict[str, float] = {}
    for start in range(0, sizes.prdc_truth_sets, PRDC_TRUTH_CHUNK):
        sets = min(PRDC_TRUTH_CHUNK, sizes.prdc_truth_sets - start)
        feats, codes = _generate(rng, mu, sig, sizes, prompts=per_block * sets)
        blocks = codes.astype(int) % sets  # set t holds prompts t, t + T, ...: per_block prompts each
        for name, values in prdc_groups(ref, feats, blocks, 3, 5, radii).items():
            sums[name] = sums.get(name, 0.0) + float(np.sum(values))
    return {name: total / sizes.prdc_truth_sets for name, total in sums.items()}


def _old_arms(rng, mu, sig, ref, mu_ref, sigma_ref, sizes, scen, truths, former, rbf_s, kid_size) -> list[dict]:
    """The former with-replacement bootstrap, re-centred (former.recentred), as the known-bad arm."""
    rows, n = [], sizes.prompts * sizes.samples
    old = {m: [] for m in former}
    kyy = gaussian_kernel(ref, ref, rbf_s)
    u_yy = (kyy.sum() - np.trace(kyy)) / (
        len(ref) * (len(ref) - 1)
    )  # the reference's term, the same in every resample
    for _ in range(sizes.old_replicates):
        feats, _ = _generate(rng, mu, sig, sizes)
        seed = int(rng.integers(1 << 30))
        if "fd" in old:
            mu_g, sigma_g = feature_stats(feats)
            value = frechet_distance(mu_ref, sigma_ref, mu_g, sigma_g)
            _, _, reps = frechet_bootstrap(mu_ref, sigma_ref, feats, sizes.old_resamples, seed)
            old["fd"].append(recentred(value, reps)[:2])
        if "kid" in old:

            def kid(f, seed=seed):
                return kernel_inception_distance(ref, f, 5, kid_size, seed)[0]

            old["kid"].append(recentred(kid(feats), resampled(kid, feats, sizes.old_resamples, seed)[:, 0])[:2])
        if "cmmd" in old:

            def mmd(f):  # = gaussian_mmd2_unbiased(ref, f, rbf_s), the reference's term computed once
                kxx = gaussian_kernel(f, f, rbf_s)
                return (
                    u_yy
                    + (kxx.sum() - np.trace(kxx)) / (len(f) * (len(f) - 1))
                    - 2 * gaussian_kernel(f, ref, rbf_s).mean()
                )

            old["cmmd"].append(recentred(mmd(feats), resampled(mmd, feats, sizes.old_resamples, seed)[:, 0])[:2])
    for metric, bounds in old.items():
        lo, hi = np.array(bounds).T
        rows.append(
            _row(
                "set metric",
                metric,
                "bootstrap (former)",
                scen,
                n,
                truths[metric],
                lo,
                hi,
                0.0 if metric == "fd" else None,
            )
        )
    return rows


# -- ranks ----------------------------------------------------------------------------------------


def ranks(sizes: Sizes, seed: int = 0, entries: int = 10, n_prompts: int = 21) -> list[dict]:
    """Share of tables of `entries` identical models (a 0/1 metric, prompt rates ~ Beta(mean 0.6,
    ICC 0.3), 3 samples per prompt) in which some pair is called different at 5 %."""
    rng = np.random.default_rng(seed)
    prompt = np.repeat(np.arange(n_prompts), 3)
    any_raw = any_holm = 0
    for _ in range(sizes.rank_tables):
        q = rng.beta(
            0.6 * (1 / ICC - 1), 0.4 * (1 / ICC - 1), n_prompts
        )  # the prompts' difficulty, shared by every entry
        ys = (rng.random((entries, n_prompts * 3)) < np.repeat(q, 3)).astype(float)
        ps = [
            paired_difference(prompt, ys[a], ys[b], resamples=200, seed=a * entries + b)["p"]
            for a in range(entries)
            for b in range(a + 1, entries)
        ]
        ps = np.nan_to_num(np.asarray(ps, float), nan=1.0)
        any_raw += bool((ps < 0.05).any())
        any_holm += bool((holm(ps) < 0.05).any())
    t = sizes.rank_tables
    return [
        {
            "family": "ranks",
            "metric": "any false separation",
            "method": m,
            "scenario": f"{entries} identical entries",
            "n": n_prompts,
            "replicates": t,
            "false_separation": round(100 * k / t, 1),
            "pass": bool(k / t <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / t)),
        }
        for m, k in (("per-pair 5 % (former)", any_raw), ("Holm", any_holm))
    ]

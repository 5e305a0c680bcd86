"""Paired comparisons for ablations: each cell against its baseline cell, the one that differs only
in the varied parameter (default: guidance, baseline = its smallest value, e.g. w = 1), on the same
prompts and seeds. Pairing removes the prompt-to-prompt variance that makes two independent
intervals overlap, so "w = 5 beats w = 1" can be read on 80 prompts where unpaired CIs cannot.

Reads RUN/metrics_image.parquet (per-image values, as the sweep wrote them). Pure functions:
pairs -> per-prompt sums -> bootstrap over prompts; binary metrics also get McNemar's exact test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import (
    stdtr,  # Student t CDF
    stdtrit,  # Student t quantile (scipy.stats is slow to import)
)

from common.runs import CELL_AXES
from common.second_order import corrected_variance, mmd_second_order

from .bootstrap import multiplicities, resample_indices
from .intervals import holm
from .runs import image_metric_meta

PAIR_KEYS = ("prompt_set", "prompt_id", "sample")
DEFAULT_RESAMPLES = 10_000  # percentile-bootstrap tails at 95 % need ~10^4 replicates to be stable to ~0.5 pt
PROMPT_BOOTSTRAP_TEST = "paired prompt bootstrap, t(P-1)"  # what a per-image pair's "test" column says
# A paired KID / CMMD test takes the second-order excess off only with at least this many blocks: its
# excess is estimated from G (G - 3) / 2 block pairs, and with fewer the corrected test's type I error
# exceeded 5 % (simulated null pairs: G = 5 6.0-9.2 %, G = 10 3.4-7.2 %, G = 20 2.9-5.7 %;
# docs/intervals.md). Below it the plain jackknife, which is conservative, is kept.
SECOND_ORDER_MIN_BLOCKS = 20


def baselines(cells: pd.DataFrame, vary: str) -> dict[str, str]:
    """cell_id -> the cell_id equal in every other CELL_AXES parameter whose `vary`
    is the smallest value among such cells; cells that are their own baseline are left out, and so
    are cells without a value of `vary` (image folders, diffusers models without that axis)."""
    if vary not in cells.columns:
        raise ValueError(f"cannot pair on {vary!r}: cells have {sorted(c for c in cells.columns if c != 'cell_id')}")
    if not pd.api.types.is_numeric_dtype(cells[vary]):
        raise ValueError(f"cannot pair on {vary!r}: it is not numeric (the baseline is its smallest value)")
    cells = cells[cells[vary].notna()]
    others = [c for c in CELL_AXES if c in cells.columns and c != vary]
    key = pd.Series(["|".join(map(str, row)) for row in cells[others].itertuples(index=False)], index=cells.index)
    out = {}
    for _, group in cells.groupby(key, sort=False):
        base = group.loc[group[vary].astype(float).idxmin(), "cell_id"]
        out.update({cid: base for cid in group["cell_id"] if cid != base})
    return out


def mcnemar_exact(better: int, worse: int) -> float:
    """Two-sided exact McNemar p-value: under H0 each discordant pair is better or worse with p 1/2."""
    from scipy.stats import binomtest  # scipy.stats takes ~0.5 s to import: only when a test runs

    n = better + worse
    return 1.0 if n == 0 else float(binomtest(better, n, 0.5).pvalue)


def prompt_bootstrap(
    prompt: np.ndarray, y: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean of y, interval low, high) from resampling prompts, the unit that was sampled (the
    several samples, or paired differences, of one prompt stay together). prompt, y: (N,).

    Interval: mean +- t(P-1) * se, se = the bootstrap replicates' sd x sqrt(P / (P-1)) (the
    bootstrap variance of a mean of P clusters is (P-1)/P of the unbiased one). Why not the plain
    percentile interval: at DrawBench sizes it under-covers (93.1 % at P = 21 and 94.4 % at P = 100
    prompts for a nominal 95 %, simulated); this one covers 94.9-95.4 % at both (tests/test_leaderboard.py)."""
    codes, index = np.unique(prompt, return_inverse=True)
    n_prompts = len(codes)
    sums = np.bincount(index, weights=y.astype(float), minlength=n_prompts)  # (P,) per-prompt sums
    counts = np.bincount(index, minlength=n_prompts).astype(float)
    mean = float(y.mean())
    if n_prompts < 2:
        return mean, float("nan"), float("nan")
    prompt_idx, _ = resample_indices(seed, n_prompts, 1, resamples)  # the report's bootstrap draws (one rater: unused)
    draws = multiplicities(prompt_idx, n_prompts)  # (R, P) how often each prompt was drawn
    replicates = (draws @ sums) / (draws @ counts)
    se = float(replicates.std(ddof=1)) * np.sqrt(n_prompts / (n_prompts - 1))
    half = float(stdtrit(n_prompts - 1, (1 + level) / 2)) * se
    return mean, mean - half, mean + half


def paired_p(mean: float, low: float, high: float, n_prompts: int, level: float = 0.95) -> float:
    """Two-sided p of "no difference" that matches the interval: t = mean / se with the se behind
    prompt_bootstrap's interval ((high - low) / 2 / t quantile) and P - 1 degrees of freedom; 1 when
    the differences do not vary (se 0, mean 0), 0 when they are all the same non-zero value."""
    if not np.isfinite(low) or n_prompts < 2:
        return float("nan")
    se = (high - low) / 2 / float(stdtrit(n_prompts - 1, (1 + level) / 2))
    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * stdtr(n_prompts - 1, -abs(mean) / se))


def block_difference(values_a, values_b, level: float = 0.95, second_order: tuple[dict, dict] | None = None) -> dict:
    """Entry a minus entry b for a set metric computed in the same G prompt blocks (values (G,) each:
    the blocks' pseudo-values, or their metric values for block means): the mean of the G
    block-by-block differences with its t(G-1) interval and p. The blocks are disjoint sets of
    prompts, so their differences are independent; pairing removes the prompt-to-prompt variance the
    two entries share.

    second_order (KID, CMMD): each entry's recorded {"pair_sums" (G, G), "sizes" (G,)}
    (bench.metrics.blocks.mmd_blocks). The difference of two MMD^2 U-statistics on the same blocks
    is one with the kernel-sum difference, so its jackknife variance over-counts the degenerate part
    as one entry's does: mmd_second_order of the difference of the pair sums is taken off
    (corrected_variance) at G >= SECOND_ORDER_MIN_BLOCKS. Without it (the plain jackknife) the test
    is conservative, type I error 0.4-1.2 % near the reference's distribution at G = 20. Checked
    against known truth differences by `imagen-bench coverage --parts paired` (docs/intervals.md)."""
    d = np.asarray(values_a, np.float64) - np.asarray(values_b, np.float64)
    g = len(d)
    mean, var = float(d.mean()), float(d.var(ddof=1) / g)
    test = "block differences, t(G-1)"
    if second_order is not None:
        (a, b), sizes = ((np.asarray(s["pair_sums"], np.float64) for s in second_order), second_order[0]["sizes"])
        if a.shape != (g, g) or b.shape != (g, g) or not np.allclose(sizes, second_order[1]["sizes"]):
            raise ValueError(
                f"second-order parts of {g} blocks on the same prompts expected, got {a.shape}, {b.shape}"
            )
        if g >= SECOND_ORDER_MIN_BLOCKS:
            var = float(corrected_variance(var, mmd_second_order(a - b, np.asarray(sizes, np.float64)), g))
            test += ", jackknife less its second-order excess"
        else:
            test += f", plain jackknife (its second-order excess is taken off from {SECOND_ORDER_MIN_BLOCKS} blocks)"
    se = float(np.sqrt(var))
    half = float(stdtrit(g - 1, 0.5 + level / 2)) * se
    p = (1.0 if mean == 0 else 0.0) if se == 0 else float(2 * stdtr(g - 1, -abs(mean) / se))
    return {"N pairs": g, "difference": mean, "CI low": mean - half, "CI high": mean + half, "p": p, "test": test}


def paired_difference(
    prompt: np.ndarray,
    y: np.ndarray,
    y_base: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Mean of y - y_base over pairs, with the prompt-bootstrap interval (prompt_bootstrap) and its
    p-value (paired_p). For 0/1 values also the discordant counts and McNemar's exact p."""
    d = y.astype(float) - y_base.astype(float)
    mean, lo, hi = prompt_bootstrap(prompt, d, resamples, seed, level)
    row = {
        "N pairs": len(d),
        "baseline": float(y_base.mean()),
        "value": float(y.mean()),
        "difference": mean,
        "CI low": lo,
        "CI high": hi,
        "p": paired_p(mean, lo, hi, len(np.unique(prompt)), level),
    }
    if np.isin(y, (0.0, 1.0)).all() and np.isin(y_base, (0.0, 1.0)).all():
        better, worse = int(((y == 1) & (y_base == 0)).sum()), int(((y == 0) & (y_base == 1)).sum())
        row.update({"better": better, "worse": worse, "McNemar p": mcnemar_exact(better, worse)})
    return row


def paired_table(
    run_dir: str | Path,
    cells: pd.DataFrame,
    vary: str = "guidance",
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (metric, cell with a baseline): the cell's and the baseline's mean on their
    shared (prompt, sample) pairs, the difference with its interval (inside +-(high - low) of the
    metric's range) and p, Holm's p across the metric's rows, and for 0/1 metrics the discordant
    counts and McNemar's p. Empty if the run has no per-image metrics or no pairs."""
    path = Path(run_dir) / "metrics_image.parquet"
    pairs = baselines(cells, vary) if vary in cells.columns else {}
    if not path.is_file() or not pairs:
        return pd.DataFrame()
    images = pd.read_parquet(path)
    metas = image_metric_meta([run_dir])  # a difference lies in +-(high - low) of the metric's range
    values = images.set_index(["cell_id", "metric", *PAIR_KEYS])["value"]
    param = cells.set_index("cell_id")[vary]
    rows = []
    for metric in sorted(images["metric"].unique()):
        for cell, base in pairs.items():
            try:
                a, b = values.xs((cell, metric), level=(0, 1)), values.xs((base, metric), level=(0, 1))
            except KeyError:
                continue
            joined = pd.concat({"y": a, "base": b}, axis=1, join="inner").dropna()
            if joined.empty:
                continue
            prompt = joined.index.get_level_values("prompt_id").to_numpy()
            stats = paired_difference(
                prompt, joined["y"].to_numpy(), joined["base"].to_numpy(), resamples, seed, level
            )
            low, high = metas.get(metric, {}).get("range") or [None, None]
            if low is not None and high is not None:
                stats["CI low"], stats["CI high"] = max(stats["CI low"], low - high), min(stats["CI high"], high - low)
            rows.append(
                {
                    "metric": metric,
                    "cell_id": cell,
                    "baseline cell": base,
                    vary: param[cell],
                    f"baseline {vary}": param[base],
                    **stats,
                }
            )
    table = pd.DataFrame(rows)
    if not table.empty:  # Holm across the table's comparisons of each metric (family-wise error <= 5 %)
        table["p (Holm)"] = table.groupby("metric")["p"].transform(lambda p: holm(p.to_numpy()))
    return table

"""Paired comparisons of two entries on the same prompts, against known truth differences
(`imagen-bench coverage --parts paired`).

The leaderboard compares two entries' set metrics (FD, KID, CMMD, precision / recall / density /
coverage) by reports.paired.block_difference: the t(G-1) interval and p of the mean of the G
block-by-block differences of the values each result recorded (block_values: the jackknife
pseudo-values, or the block means; for KID and CMMD the variance less its second-order excess,
from each result's recorded block-pair kernel sums). Here two entries share their prompts: each prompt's centre
is drawn once (standard normal z) and each entry places it by its own scenario (mu + sqrt(0.2)
S^1/2 z), with its own samples around it, as two models given the same prompt. The truth of
A - B is the difference of the two entries' conditional truths (truths.py; for precision /
recall / density / coverage the Monte Carlo means of simulate._prdc_truth), exactly 0 when both
entries follow one scenario (no Monte Carlo: the null pairs measure the test's type I error).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bench.metrics import blocks as B
from bench.metrics.stats import gaussian_kernel, polynomial_kernel
from reports.paired import block_difference

from .simulate import LEVEL, Sizes, World, _generate, _prdc_truth, _row, _scenarios

# (A, B) scenario pairs: three nulls from the degenerate point (both entries equal the reference)
# outwards, then three true differences
PAIRS = (
    ("identical", "identical"),
    ("shift-small", "shift-small"),
    ("shift-large", "shift-large"),
    ("shift-small", "identical"),
    ("shrink", "identical"),
    ("shift-large", "shift-small"),
)
# KID's recorded block values are its pseudo-values, the same whichever interval is drawn after them:
# the bootstrap-t's draws are skipped here (they cost ~0.1 s per entry and change no block value)
_KID_VALUES = B.MmdInterval(second_order=True, bootstrap_t=False)


def _block_values(world: World, feats: np.ndarray, codes: np.ndarray, sizes: Sizes) -> dict[str, tuple]:
    """metric -> ((G,) the block values a result records for these generated features, the recorded
    second-order parts (KID, CMMD) or None)."""
    blocks = B.assign_blocks(codes, sizes.blocks)
    out = {"fd": (B.frechet_blocks(world.mu_ref, world.sigma_ref, feats, blocks, LEVEL)["pseudo"], None)}
    rbf = partial(gaussian_kernel, sigma=world.rbf_s)
    for name, kernel, interval in (("kid", polynomial_kernel, _KID_VALUES), ("cmmd", rbf, B.MMD_INTERVALS["cmmd"])):
        r = B.mmd_blocks(kernel, feats, world.ref, codes, sizes.blocks, 0.0, interval=interval)
        out[name] = (r["pseudo"], r["second_order"])
    for name, r in B.prdc_blocks(world.ref, feats, blocks, 3, 5, LEVEL, real_radii=world.radii).items():
        out[name] = (r["pseudo"], None)
    return {k: (np.asarray(v, np.float64), second) for k, (v, second) in out.items()}


def paired_set_metrics(
    sizes: Sizes, seed: int = 0, log=print, pairs: tuple[tuple[str, str], ...] = PAIRS
) -> list[dict]:
    """Coverage rows (family "paired set metric") of block_difference for each (A, B) scenario pair."""
    rng = np.random.default_rng(seed)
    world = World.draw(rng, sizes)
    scenarios = _scenarios(world.sigma)
    truths = {name: world.truths(*scenarios[name]) for name in {s for pair in pairs for s in pair}}
    prdc_needed = {s for a, b in pairs if a != b for s in (a, b)}
    for name in sorted(prdc_needed):
        truths[name].update(_prdc_truth(rng, *scenarios[name], world.ref, sizes))
    rows, n = [], sizes.prompts * sizes.samples
    for a, b in pairs:
        bounds: dict[str, list[tuple[float, float]]] = {}
        tests: dict[str, str] = {}  # metric -> block_difference's test
        for _ in range(sizes.replicates):
            z = rng.normal(size=(sizes.prompts, sizes.dim))  # the shared prompts
            va = _block_values(world, *_generate(rng, *scenarios[a], sizes, centres=z), sizes)
            vb = _block_values(world, *_generate(rng, *scenarios[b], sizes, centres=z), sizes)
            for metric, (values_a, second_a) in va.items():
                values_b, second_b = vb[metric]
                r = block_difference(values_a, values_b, LEVEL, (second_a, second_b) if second_a else None)
                bounds.setdefault(metric, []).append((r["CI low"], r["CI high"]))
                tests[metric] = r["test"]
        for metric, intervals in bounds.items():
            truth = 0.0 if a == b else truths[a][metric] - truths[b][metric]
            lo, hi = np.array(intervals).T
            rows.append(_row("paired set metric", metric, tests[metric], f"{a} - {b}", n, truth, lo, hi))
        log(f"coverage: paired {a} - {b} done")
    return rows

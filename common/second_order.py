"""The delete-a-block jackknife's second-order excess for MMD^2 statistics (KID, CMMD), and the
variance less it: one rule for one entry's interval (bench.metrics.blocks.mmd_blocks) and for the
paired difference of two entries on the same prompt blocks (reports.paired.block_difference).

Near MMD^2 = 0 the statistic is dominated by its degenerate (second-order) part, which the
jackknife counts about 2 (G-1)/(G-2) times (Efron & Stein 1981); docs/intervals.md measures what
removing it does to coverage.
"""

from __future__ import annotations

import numpy as np


def mmd_second_order(a: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """E[v_J] - Var for the degenerate part of the generated-generated U-statistic, with blocks as
    the i.i.d. units (G blocks of ~m = N / G images each); a (..., G, G), sizes (..., G) -> (...).

    Hoeffding: with B_ab = A_ab / (m_a m_b) the mean kernel between blocks a != b, the statistic's
    cross-block part is alpha U_G, U_G = mean_{a != b} B_ab, alpha = G (G-1) m^2 / (N (N-1)), and
    U_G = theta + linear + D with D = mean_{a != b} H_ab, H the degenerate kernel (E[H_ab | a] = 0),
    tau^2 = E H_ab^2. Var D = 2 tau^2 / (G (G-1)). Leaving block g out, D_(-g) - mean_h D_(-h) =
    -2 (R_g - mean R) / ((G-1)(G-2)), R_g = sum_b H_gb, and E sum_g (R_g - mean R)^2 = (G-1)(G-2)
    tau^2, so the jackknife v_J = (G-1)/G sum_g (T_(-g) - mean)^2 counts D as alpha'^2 4 tau^2 /
    (G (G-2)), about 2 (G-1)/(G-2) times its variance (Efron & Stein 1981: the jackknife variance
    is biased upward by the higher ANOVA terms); alpha' is alpha for G-1 blocks. The linear and
    degenerate parts are uncorrelated, so the excess is that difference alone. tau^2 is estimated
    without bias by the U-centred B (Szekely & Rizzo 2014, the unbiased HSIC of Song et al. 2012):
    tau^2 = sum_{a != b} B~_ab^2 / (G (G-3)). It matters most when the distributions are nearly
    equal (the linear part vanishes): there the plain jackknife covered 99 % (docs/intervals.md)."""
    g = sizes.shape[-1]
    if g < 4:
        return np.zeros(sizes.shape[:-1])
    diag = np.arange(g)
    b = a / (sizes[..., :, None] * sizes[..., None, :])
    b[..., diag, diag] = 0.0
    rows = b.sum(-1)
    total = b.sum((-2, -1))[..., None, None]
    centred = b - rows[..., :, None] / (g - 2) - rows[..., None, :] / (g - 2) + total / ((g - 1) * (g - 2))
    centred[..., diag, diag] = 0.0
    tau2 = (centred**2).sum((-2, -1)) / (g * (g - 3))
    n, m = sizes.sum(-1), sizes.mean(-1)
    alpha = g * (g - 1) * m * m / (n * (n - 1))
    alpha_out = (g - 1) * (g - 2) * m * m / ((n - m) * (n - m - 1))
    return alpha_out**2 * 4 * tau2 / (g * (g - 2)) - alpha**2 * 2 * tau2 / (g * (g - 1))


def corrected_variance(v_j, excess, blocks: int):
    """The jackknife variance v_J less its second-order excess, kept between v_J (G-2) / (2 (G-1))
    (the whole statistic degenerate: the jackknife counts it 2 (G-1)/(G-2) times) and v_J (a
    negative excess estimate removes nothing). Arrays or floats, elementwise."""
    return np.minimum(v_j, np.maximum(v_j - excess, v_j * (blocks - 2) / (2 * (blocks - 1))))

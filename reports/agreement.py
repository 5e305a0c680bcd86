"""Inter-rater agreement: Krippendorff's alpha (nominal, ordinal, interval), any number of raters,
missing values allowed.

    alpha = 1 - (n - 1) * sum_ck o_ck delta2_ck / sum_ck n_c n_k delta2_ck
with the coincidence matrix o_ck = sum_u (pairs of values c, k in unit u) / (m_u - 1) over units
with m_u >= 2 values, n_c = sum_k o_ck, n = sum_c n_c, and the difference function delta2:
nominal [c != k]; ordinal (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2; interval (c - k)^2.
(Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("nominal", "ordinal", "interval")
# side-by-side answers on an ordered scale: B < tie < A (ties are the midpoint)
SIDE_ORDER = {"B": 0.0, "tie": 0.5, "A": 1.0}
CAPTION_ORDER = {"no": 0.0, "somewhat": 0.5, "yes": 1.0}


def krippendorff_alpha(units: np.ndarray | list, values: np.ndarray | list, metric: str = "nominal") -> float:
    """Alpha from long-form data: one (unit, value) pair per rating; values numeric (the order
    and, for interval, the distances matter) . Units with a single rating do not count."""
    if metric not in METRICS:
        raise ValueError(f"unknown agreement metric {metric!r}; choose from {', '.join(METRICS)}")
    unit_codes = pd.factorize(np.asarray(units))[0]
    levels, value_codes = np.unique(np.asarray(values, dtype=float), return_inverse=True)
    counts = np.zeros((unit_codes.max() + 1 if len(unit_codes) else 0, len(levels)))
    np.add.at(counts, (unit_codes, value_codes), 1.0)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    if len(levels) < 2 or not len(m):
        return float("nan")  # no pairable values or no variation: alpha undefined
    # o = sum_u (U_u U_u' - diag(U_u)) / (m_u - 1)
    weighted = counts / (m - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    delta2 = _delta2(levels, n_c, metric)
    expected = (np.outer(n_c, n_c) * delta2).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * (coincidence * delta2).sum() / expected)


def _delta2(levels: np.ndarray, n_c: np.ndarray, metric: str) -> np.ndarray:
    if metric == "nominal":
        return 1.0 - np.eye(len(levels))
    if metric == "interval":
        return (levels[:, None] - levels[None, :]) ** 2
    cum = np.concatenate([[0.0], np.cumsum(n_c)])  # ordinal: sum_{g=c..k} n_g - (n_c + n_k)/2
    c, k = np.meshgrid(np.arange(len(levels)), np.arange(len(levels)), indexing="ij")
    lo, hi = np.minimum(c, k), np.maximum(c, k)
    return (cum[hi + 1] - cum[lo] - (n_c[c] + n_c[k]) / 2) ** 2


def agreement_table(answers: pd.DataFrame) -> pd.DataFrame:
    """Alpha per (protocol, question); a unit is the item rated: (study, model pair, prompt), since
    task ids are per rater; values on the ordered scale (side by side B / tie / A = 0 / 0.5 / 1;
    caption no / somewhat / yes = 0 / 0.5 / 1)."""
    rows = []
    for (protocol, question), group in answers.groupby(["protocol", "question"], sort=True):
        scale = CAPTION_ORDER if protocol == "coco_alignment" else SIDE_ORDER
        values = group["answer"].map(scale).to_numpy(dtype=float)
        units = (
            group["study"].astype(str)
            + "/"
            + group["model_a"].astype(str)
            + "/"
            + group["model_b"].astype(str)
            + "/"
            + group["prompt_id"].astype(str)
        ).to_numpy()
        per_unit = pd.Series(units).value_counts()
        row = {
            "protocol": protocol,
            "question": question,
            "units_with_2plus_ratings": int((per_unit >= 2).sum()),
            "ratings_in_those_units": int(per_unit[per_unit >= 2].sum()),
        }
        for metric in METRICS:
            row[f"alpha_{metric}"] = krippendorff_alpha(units, values, metric)
        rows.append(row)
    return pd.DataFrame(rows)

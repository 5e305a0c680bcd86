"""Bradley-Terry ranking of more than two models from side-by-side answers.

P(m beats k) = pi_m / (pi_m + pi_k), a tie half a win for each side, fitted by the MM algorithm of
common.bradley_terry (the one fit the sequential ranking design uses too). Reported strength:
log pi (0 = average model). Intervals: percentile intervals of the two-way bootstrap (prompts and
raters resampled; pigeonhole, hence conservative), every resample fitted at once (vectorised).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.bradley_terry import fit as fit_bradley_terry

from .bootstrap import PIGEONHOLE_BLOCK, CrossedBootstrap
from .preference import SIDE_SCORES, RatingsAnalysis

BT_MAX_RESAMPLES = 2000  # each BT resample costs an N-sized weight vector and an MM fit; cap time, stated in the table


def _check_connected(models: list[str], wins: np.ndarray) -> None:
    games = (wins + wins.T) > 0
    seen, pending = {0}, [0]
    while pending:
        m = pending.pop()
        for k in np.flatnonzero(games[m]):
            if k not in seen:
                seen.add(int(k))
                pending.append(int(k))
    if len(seen) < len(models):
        apart = sorted(models[i] for i in set(range(len(models))) - seen)
        raise ValueError(
            f"models {apart} were never compared (directly or through others) with {models[0]}; cannot rank"
        )


def bradley_terry_table(analysis: RatingsAnalysis, question: str) -> pd.DataFrame:
    """Ranking for one side-by-side question; empty if fewer than three models were compared."""
    df = analysis.answers
    rows = (df["protocol"] == "drawbench_sbs").to_numpy() & (df["question"] == question).to_numpy()
    sub = df[rows]
    models = sorted(set(sub["model_a"].unique()) | set(sub["model_b"].unique()))
    if len(models) < 3:
        return pd.DataFrame()
    index = {m: i for i, m in enumerate(models)}
    a, b = sub["model_a"].map(index).to_numpy(), sub["model_b"].map(index).to_numpy()
    score = sub["answer"].map(SIDE_SCORES).to_numpy(dtype=float)  # a's share of the win; b gets 1 - score
    m = len(models)
    # answer -> flat (winner, loser) cells: a over b with weight score, b over a with 1 - score
    cells = np.concatenate([a * m + b, b * m + a])
    shares = np.concatenate([score, 1 - score])
    wins = np.bincount(cells, shares, m * m).reshape(m, m)
    _check_connected(models, wins)
    strength = fit_bradley_terry(wins)
    boot: CrossedBootstrap = analysis.boot
    resamples = min(boot.resamples, BT_MAX_RESAMPLES)
    prompt, rater = analysis.prompt[rows], analysis.rater[rows]
    # answer k -> its contribution to the m x m win matrix (two cells: a over b, b over a)
    onehot = np.zeros((len(score), m * m))
    onehot[np.arange(len(score)), a * m + b] = score
    onehot[np.arange(len(score)), b * m + a] += 1 - score
    boot_wins = np.empty((resamples, m * m))
    for start in range(0, resamples, PIGEONHOLE_BLOCK):  # pigeonhole weights w_b,i(k) * w_b,j(k), in blocks
        sl = slice(start, min(start + PIGEONHOLE_BLOCK, resamples))
        boot_wins[sl] = (boot.prompt_weights[sl][:, prompt] * boot.rater_weights[sl][:, rater]) @ onehot
    boot_wins = boot_wins.reshape(resamples, m, m)
    boot_strength = fit_bradley_terry(boot_wins)
    alpha = (1 - analysis.config.level) / 2
    low, high = np.quantile(boot_strength, [alpha, 1 - alpha], axis=0)
    order = np.argsort(-strength)
    n_games = wins + wins.T
    return pd.DataFrame(
        {
            "question": question,
            "rank": np.arange(1, m + 1),
            "model": [models[i] for i in order],
            "log_strength": strength[order],
            "log_strength_low": low[order],
            "log_strength_high": high[order],
            "wins": wins.sum(axis=1)[order],
            "comparisons": n_games.sum(axis=1)[order],
            "resamples": resamples,
            "seed": boot.seed,
        }
    )

"""Tail calibration of the crossed human-rating interval (reports.bootstrap, method "crossed", the
report's default for preference rates), against a known truth (`imagen-bench coverage --parts crossed`).

Raters follow reports.simulate.RaterModel (answer A with probability (1 - t) expit(mu + u_i + b_j),
tie with t, B otherwise; prompt effects u_i ~ N(0, 1), rater bias b_j ~ N(0, 0.3^2) on the logit
scale; scores A / tie / B = 1 / 0.5 / 0): "3-way" with t = 20 % ties, "binary" with none. The truth
is the population preference over prompts and raters (mu solved for it). Designs are fully crossed,
every rater on every prompt: the paper's 25 raters x 200 DrawBench prompts per pair, and the small
studies users run (5-10 raters x 20-50 prompts). Each replicate gets fresh prompt and rater effects
and answers; the interval is the report's own (CrossedBootstrap's one-way variances from
`resamples` resamples, crossed_variance, crossed_bounds, crossed_p), a bootstrap draw shared by a
block of replicates (as the report shares one across its tables).

Per cell and method: the share of intervals missing the truth at 95 %, 99 % and 99.17 % (= 1 - 0.05/6,
one pair of six under Bonferroni), on each side, and at the null (truth 1/2) the type I error of the
p-value of "no preference" at 0.05, 0.01 and 0.001, each with its Monte Carlo SE, sqrt(q (1 - q) / R).
Arms: the suite's interval and the former one (raw-scale t, Satterthwaite df from the unconstrained
fit; former.crossed_former_df).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.bootstrap import DEFAULT_RESAMPLES, CrossedBootstrap, crossed_bounds, crossed_p, crossed_variance
from reports.simulate import SCORES, RaterModel, answers

from .former import crossed_former_bounds, crossed_former_df, crossed_former_p

LEVELS = (0.95, 0.99, 1 - 0.05 / 6)
ALPHAS = (0.05, 0.01, 0.001)
TIES = {"3-way": 0.2, "binary": 0.0}
SUITE, FORMER = "crossed: logit t, df of the fit used", "crossed (former): raw t, unconstrained df"


@dataclass(frozen=True)
class CrossedSizes:
    designs: tuple[tuple[int, int], ...] = ((200, 25), (50, 10), (20, 5))  # (prompts, raters), fully crossed
    truths: tuple[float, ...] = (0.5, 0.65, 0.8)
    answers: tuple[str, ...] = ("3-way", "binary")
    replicates: int = 20_000
    resamples: int = DEFAULT_RESAMPLES
    block: int = 50  # replicates sharing one bootstrap draw


QUICK = CrossedSizes(designs=((200, 25), (20, 5)), truths=(0.5, 0.8), answers=("3-way",), replicates=2000)


def simulate(
    n_prompts: int,
    n_raters: int,
    truth: float,
    answers_kind: str,
    replicates: int,
    resamples: int,
    seed: int,
    block: int = 50,
) -> dict[str, np.ndarray]:
    """Per replicate: the estimate, its crossed variance, the suite's df and the former df."""
    model = RaterModel(preference=truth, tie_rate=TIES[answers_kind])
    rng = np.random.default_rng(seed)
    prompt, rater = np.tile(np.arange(n_prompts), n_raters), np.repeat(np.arange(n_raters), n_prompts)
    out = {k: np.empty(replicates) for k in ("estimate", "var", "df", "df_former")}
    for start in range(0, replicates, block):
        k = min(block, replicates - start)
        offsets = np.arange(k)[:, None]
        code = answers(  # k studies at once: study r's prompts and raters are units r * n + code
            model,
            (prompt + n_prompts * offsets).ravel(),
            (rater + n_raters * offsets).ravel(),
            rng.standard_normal(k * n_prompts),
            rng.standard_normal(k * n_raters),
            np.ones(k * n_raters, bool),
            rng,
        )
        ys = SCORES[code].reshape(k, -1)
        boot = CrossedBootstrap(n_prompts, n_raters, resamples, seed=int(rng.integers(2**31)))
        v_prompt, v_rater = boot.one_way_variances([(prompt, rater, y) for y in ys])
        for i, y in enumerate(ys):
            r = start + i
            out["estimate"][r] = y.mean()
            out["var"][r], out["df"][r] = crossed_variance(prompt, rater, y, v_prompt[i], v_rater[i], resamples)
            out["df_former"][r] = crossed_former_df(
                prompt, rater, y, v_prompt[i], v_rater[i], resamples, out["var"][r]
            )
    return out


def _share(hits: np.ndarray) -> tuple[float, float]:
    q = float(np.mean(hits))
    return 100 * q, 100 * np.sqrt(q * (1 - q) / len(hits))


def calibration(sim: dict[str, np.ndarray], truth: float, method: str) -> dict:
    """Misses at each level (% of replicates; truth above / below the interval) and, at truth 1/2,
    the p-value's type I error at each alpha, with Monte Carlo SEs."""
    est, se = sim["estimate"], np.sqrt(sim["var"])
    row: dict = {}
    for level in LEVELS:
        if method == SUITE:
            low, high = np.array([crossed_bounds(e, s, d, level) for e, s, d in zip(est, se, sim["df"])]).T
        else:
            low, high = crossed_former_bounds(est, se, sim["df_former"], level)
        name = f"{100 * level:.2f}".rstrip("0").rstrip(".")
        row[f"miss {name}"], row[f"miss {name} se"] = _share((high < truth) | (low > truth))
        row[f"above {name}"], row[f"below {name}"] = 100 * np.mean(high < truth), 100 * np.mean(low > truth)
    if truth == 0.5:
        if method == SUITE:
            p = np.array([crossed_p(e, s, d) for e, s, d in zip(est, se, sim["df"])])
        else:
            p = crossed_former_p(est, se, sim["df_former"])
        for alpha in ALPHAS:
            row[f"type I {alpha:g}"], row[f"type I {alpha:g} se"] = _share(p < alpha)
    return row


def passes(row: dict) -> bool:
    """The goal for the suite: two-sided misses at 95 % and 99.17 % no more than 2 Monte Carlo SEs
    above nominal (coverage held), the misses at 95 % within 2:1 between the sides (the coverage
    table's rule), and at the null the type I error at 0.05 and 0.01 no more than 2 SEs above nominal."""
    ok = all(row[f"miss {n}"] <= m + 2 * row[f"miss {n} se"] for n, m in (("95", 5.0), ("99.17", 100 * 0.05 / 6)))
    ok &= max(row["above 95"], row["below 95"]) <= 2 * min(row["above 95"], row["below 95"])
    if "type I 0.05" in row:
        ok &= all(row[f"type I {a:g}"] <= 100 * a + 2 * row[f"type I {a:g} se"] for a in (0.05, 0.01))
    return bool(ok)


def run(sizes: CrossedSizes, seed: int = 0, log=print) -> list[dict]:
    """One row per (design, answers, truth, method); the same simulated studies for both methods."""
    rows = []
    for n_prompts, n_raters in sizes.designs:
        for kind in sizes.answers:
            for truth in sizes.truths:  # a cell's draws depend on the cell, not on which others run
                key = [seed, n_prompts, n_raters, list(TIES).index(kind), round(truth * 1000)]
                cell_seed = int(np.random.SeedSequence(key).generate_state(1)[0])
                sim = simulate(
                    n_prompts, n_raters, truth, kind, sizes.replicates, sizes.resamples, cell_seed, sizes.block
                )
                for method in (SUITE, FORMER):
                    row = {
                        "family": "crossed human ratings",
                        "method": method,
                        "design": f"{n_raters} raters x {n_prompts} prompts",
                        "answers": kind,
                        "truth": truth,
                        "replicates": sizes.replicates,
                        "resamples": sizes.resamples,
                        "median df": float(np.median(sim["df" if method == SUITE else "df_former"])),
                        **calibration(sim, truth, method),
                    }
                    rows.append(row | {"pass": passes(row)})
                log(f"crossed: {n_raters} x {n_prompts}, {kind}, p = {truth} done")
    return rows

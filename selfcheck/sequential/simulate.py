"""Sequential A-vs-B design against the paper's fixed design, by simulation (`imagen-bench sequential`).

Raters follow reports.simulate.RaterModel (logit-normal prompt effects, sd 1; rater bias, sd 0.3;
ties 20 %): per replicate the 200 DrawBench prompts (their 11 categories) get effects u_i, and
    fixed       the suite's default DrawBench plan: 25 raters, each rating every prompt (one
                evaluation per category, 25 raters in each), 5,000 judgments; analysed with the
                report's default interval (crossed bootstrap, reports.bootstrap) at 95 %; a winner is
                declared when it excludes 1/2.
    sequential  one rater per batch of 45 ordinary prompts (a default batch of 50 with 10 % controls),
                dealt by human_eval.sequential_deal (stratified passes), a fresh rater bias per
                batch; the confidence sequence and stopping rule of human_eval.sequential, capped
                at 111 batches (4,995 judgments, at most the fixed design's). A winner is declared
                when the stop is "decided".
    peeking     the known-bad arm: the same batches and rule, but a fixed-sample t interval on the
                batch means recomputed at every look (valid at one pre-set n, not under optional
                stopping); its coverage and error at 1/2 show what the confidence sequence buys.
Both designs see the same prompt effects in a replicate. Errors: at p = 1/2 declaring any winner;
otherwise declaring the wrong one, or none. Coverage of the final interval is counted against two
truths: the preference over the study's 200 prompts (what a full pass measures: the mean over the
drawn u_i of the rater-population rate) and the population rate p (prompts as a sample).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, stdtrit

from drawbench.prompts import load_drawbench
from human_eval.confseq import sequence
from human_eval.sequential import REASONS, SequentialPlan, stops
from human_eval.sequential_deal import deal
from reports.bootstrap import DEFAULT_RESAMPLES, CrossedBootstrap
from reports.simulate import SCORES, RaterModel, answers

RATES = (0.5, 0.55, 0.6, 0.7)
FIXED_RATERS = 25
PER_BATCH = 45
PEEKING = "peeking: t interval re-checked at every look (known bad)"
FIXED = "fixed: 25 raters x 200 prompts"
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(40)


@dataclass(frozen=True)
class Sizes:
    replicates: int = 1000
    rates: tuple[float, ...] = RATES
    # the default plan first (the goal is checked on it), then a wider precision target and the other sequence
    plans: tuple[SequentialPlan, ...] = (
        SequentialPlan(),
        SequentialPlan(half_width=0.05),
        SequentialPlan(method="bernstein"),
    )
    fixed_resamples: int = DEFAULT_RESAMPLES
    models: int = 4  # several models: the ranking table (ranking.py)
    ranking_adjacent: tuple[float, ...] = (0.6, 0.55)  # preference between adjacent models
    ranking_replicates: int = 300

    def __post_init__(self):
        if min(self.replicates, self.ranking_replicates) < 10:
            raise ValueError(
                f"replicates must be >= 10, got {self.replicates} and {self.ranking_replicates} (ranking)"
            )
        if not 3 <= self.models <= 6:
            raise ValueError(f"models to rank must be 3..6, got {self.models}")
        bad = [p for p in self.rates if not 0.1 < p < 0.9]
        if bad:
            raise ValueError(f"true preference rates must lie in (0.1, 0.9) (reachable with 20 % ties), got {bad}")


QUICK = Sizes(replicates=120, fixed_resamples=200, ranking_replicates=40)


@dataclass(frozen=True)
class World:
    """One replicate's draws shared by both designs (common random numbers across rates too)."""

    prompt_z: np.ndarray  # (P,)
    fixed_rater_z: np.ndarray  # (25,)
    batch_rater_z: np.ndarray  # (cap,)
    batches: np.ndarray  # (cap, PER_BATCH) prompt indices
    seed: int


def finite_truth(model: RaterModel, prompt_z: np.ndarray) -> float:
    """Preference over these prompts: mean_i (1 - t) E_b[expit(mu + s_p z_i + s_r b)] + t / 2."""
    inner = (
        expit(model.logit_mean + model.prompt_sd * prompt_z[:, None] + model.rater_sd * _GH_X[None, :])
        @ _GH_W
        / np.sqrt(2 * np.pi)
    )
    return float((1 - model.tie_rate) * inner.mean() + model.tie_rate / 2)


def worlds(n: int, ids: list[str], categories: list[str], cap: int, seed: int) -> list[World]:
    rng = np.random.default_rng(seed)
    index = {k: i for i, k in enumerate(ids)}
    out = []
    for r in range(n):
        dealt = deal(random.Random(seed * 1_000_003 + r), ids, categories, PER_BATCH, cap)
        out.append(
            World(
                rng.standard_normal(len(ids)),
                rng.standard_normal(FIXED_RATERS),
                rng.standard_normal(cap),
                np.array([[index[k] for k in b] for b in dealt]),
                int(rng.integers(2**31)),
            )
        )
    return out


def fixed_arm(model: RaterModel, w: World, resamples: int) -> tuple[float, float]:
    rng = np.random.default_rng(w.seed)
    n_p = len(w.prompt_z)
    prompt, rater = np.tile(np.arange(n_p), FIXED_RATERS), np.repeat(np.arange(FIXED_RATERS), n_p)
    y = SCORES[answers(model, prompt, rater, w.prompt_z, w.fixed_rater_z, np.ones(FIXED_RATERS, bool), rng)]
    iv = CrossedBootstrap(n_p, FIXED_RATERS, resamples, seed=w.seed).interval(prompt, rater, y, "crossed", 0.95)
    return iv.low, iv.high


def batch_means(model: RaterModel, w: World) -> np.ndarray:
    rng = np.random.default_rng(w.seed + 1)
    cap = len(w.batch_rater_z)
    prompt, rater = w.batches.ravel(), np.repeat(np.arange(cap), PER_BATCH)
    y = SCORES[answers(model, prompt, rater, w.prompt_z, w.batch_rater_z, np.ones(cap, bool), rng)]
    return y.reshape(cap, PER_BATCH).mean(axis=1)


def covered(w: World) -> np.ndarray:
    seen, out = set(), []
    for b in w.batches:
        seen.update(b.tolist())
        out.append(len(seen) == len(w.prompt_z))
    return np.array(out)


def _outcome(low: np.ndarray, high: np.ndarray, p: float) -> dict:
    win = np.where(low > 0.5, 1, np.where(high < 0.5, -1, 0))
    right = 0 if p == 0.5 else 1
    return {
        "decided_right": float(np.mean(win == right) * 100) if right else float("nan"),
        "wrong": float(np.mean((win != 0) & (win != right)) * 100),
        "undecided": float(np.mean(win == 0) * 100),
        "error": float(np.mean(win != right) * 100),
    }


def run(sizes: Sizes, seed: int, log=print) -> list[dict]:
    prompts = load_drawbench()
    ids, categories = prompts["id"].astype(str).tolist(), prompts["category"].tolist()
    fixed_n = FIXED_RATERS * len(ids)
    cap = fixed_n // PER_BATCH
    ws = worlds(sizes.replicates, ids, categories, cap, seed)
    cov = np.stack([covered(w) for w in ws])
    rows = []
    for p in sizes.rates:
        model = RaterModel(preference=p)
        finite = np.array([finite_truth(model, w.prompt_z) for w in ws])
        fixed = np.array([fixed_arm(model, w, sizes.fixed_resamples) for w in ws])
        rows.append(
            {
                "rate": p,
                "design": FIXED,
                "default": False,
                "mean_ratings": float(fixed_n),
                "median_ratings": float(fixed_n),
                "savings": 0.0,
                **_outcome(fixed[:, 0], fixed[:, 1], p),
                **_coverage(fixed[:, 0], fixed[:, 1], finite, p),
                "stops": "fixed",
            }
        )
        x = np.stack([batch_means(model, w) for w in ws])
        for plan in sizes.plans:
            low, high = sequence(x, plan.alpha, plan.method)
            t, reason = stops(low, high, cov, plan, cap)
            at = np.arange(len(ws)), t - 1
            rows.append(
                _row(
                    p,
                    f"sequential {plan.method}, half-width {plan.half_width:g}",
                    plan == SequentialPlan(),
                    t * PER_BATCH,
                    fixed_n,
                    low[at],
                    high[at],
                    finite,
                    reason,
                )
            )
        low, high = peeking(x, 0.95)
        t, reason = stops(low, high, cov, SequentialPlan(), cap)
        at = np.arange(len(ws)), t - 1
        rows.append(_row(p, PEEKING, False, t * PER_BATCH, fixed_n, low[at], high[at], finite, reason))
        log(f"rate {p}: done ({sizes.replicates} replicates)")
    return [r | {"replicates": sizes.replicates} for r in rows]


def peeking(x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """mean +- t_{n-1} sd / sqrt(n) of the first n batch means, for every n (n = 1: the whole range)."""
    n = np.arange(1, x.shape[1] + 1)
    mean = np.cumsum(x, axis=1) / n
    var = np.maximum(np.cumsum(x * x, axis=1) - n * mean**2, 0) / np.maximum(n - 1, 1)
    with np.errstate(invalid="ignore"):
        half = np.where(n > 1, stdtrit(np.maximum(n - 1, 1), 0.5 + level / 2) * np.sqrt(var / n), 1.0)
    return np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)


def _row(
    p: float,
    design: str,
    default: bool,
    n: np.ndarray,
    fixed_n: int,
    low: np.ndarray,
    high: np.ndarray,
    finite: np.ndarray,
    reason: np.ndarray,
) -> dict:
    if (n == 0).any():
        raise RuntimeError(f"{design}: a simulated study did not stop by its cap; the rule is broken")
    return {
        "rate": p,
        "design": design,
        "default": default,
        "mean_ratings": float(n.mean()),
        "median_ratings": float(np.median(n)),
        "savings": float((1 - n.mean() / fixed_n) * 100),
        **_outcome(low, high, p),
        **_coverage(low, high, finite, p),
        "stops": ", ".join(f"{name} {np.mean(reason == i) * 100:.0f} %" for i, name in enumerate(REASONS)),
    }


def _coverage(low: np.ndarray, high: np.ndarray, finite: np.ndarray, p: float) -> dict:
    with np.errstate(invalid="ignore"):
        return {
            "coverage_prompts": float(np.mean((low <= finite) & (finite <= high)) * 100),
            "coverage_population": float(np.mean((low <= p) & (p <= high)) * 100),
            "median_width": float(np.nanmedian(high - low)),
        }

"""Several models: ranking K models by sequential rater-batches on model pairs (issue 30 item 4,
"for several models"), simulated against the fixed design that rates every pair in full.

Models 0..K-1 have Bradley-Terry strengths k * d, d the logit step that makes adjacent models'
preference (ties half, rater and prompt effects as in reports.simulate.RaterModel) equal `adjacent`.
A batch is one fresh rater on 45 prompts of ONE pair (dealt in stratified passes per pair); its mean
is the preference for the pair's first model i over j, as in the app. The rule, the pair choice and
the fit are the app's (human_eval.ranking, common.bradley_terry), run on every replicate at once:
each pair's betting confidence sequence (human_eval.confseq.Betting) at alpha / P for the P pairs
(Bonferroni), a pair decided once its interval excludes 1/2 after one full pass over the prompts (5
batches), the ranking decided when some order has every consecutive pair decided in its direction.
No precision target here (half-width 0): a run ends decided or at the cap.

    fixed            every pair: 25 raters x 200 prompts (the paper's design per pair), crossed
                     interval at level 1 - alpha / P per pair.
    round robin      sequential, batches to the pairs in turn.
    information      sequential, the next batch to the pair human_eval.ranking.choose picks: among
                     the unsettled consecutive pairs of the current Bradley-Terry order, the one
                     whose batch most reduces the summed variance of their strength differences
                     (the fit stopped after BT_ITERATIONS MM steps: only its order is used, and it
                     is settled by then).
Cap: the fixed design's ratings (P x 5,000).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import expit

from common.bradley_terry import fit, pairs
from drawbench.prompts import load_drawbench
from human_eval.confseq import Betting
from human_eval.ranking import PRIOR, choose, decided, ranked, settled, verdict
from reports.bootstrap import CrossedBootstrap
from reports.simulate import SCORES, RaterModel, answers

from .simulate import FIXED_RATERS, PER_BATCH, Sizes, World, covered, worlds

ALPHA = 0.05
BT_ITERATIONS = 30  # MM steps per fit (one fit per replicate per batch)
DESIGNS = (
    "fixed: every pair 25 raters x 200 prompts",
    "sequential, round robin",
    "sequential, information-driven pairs",
)


def step_for(adjacent: float) -> RaterModel:
    """The RaterModel whose logit mean is the adjacent pairs' strength step d."""
    return RaterModel(preference=adjacent)


def pair_truth(model: RaterModel, gap: int) -> float:
    """Population preference of model j over model i for j - i = gap: (1 - t) E[expit(gap d + s Z)] + t / 2."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    s = float(np.hypot(model.prompt_sd, model.rater_sd))
    return float(
        (1 - model.tie_rate) * (w @ expit(gap * model.logit_mean + s * x)) / np.sqrt(2 * np.pi) + model.tie_rate / 2
    )


def _answers(model: RaterModel, gap: int, prompt, rater, w: World, rater_z, seed: int) -> np.ndarray:
    shifted = RaterModel(
        preference=pair_truth(model, gap), prompt_sd=model.prompt_sd, rater_sd=model.rater_sd, tie_rate=model.tie_rate
    )
    return SCORES[
        answers(shifted, prompt, rater, w.prompt_z, rater_z, np.ones(len(rater_z), bool), np.random.default_rng(seed))
    ]


def _batch_means(model: RaterModel, k: int, ws: list[World], seed: int) -> np.ndarray:
    """X[r, p, b]: pair p's b-th batch mean, the preference for the pair's first model i over j (the
    app's A side), fresh prompt effects per pair and a fresh rater per batch; the batches' prompts from
    the world's deal."""
    rng = np.random.default_rng(seed)
    cap = ws[0].batches.shape[0]
    out = np.empty((len(ws), len(pairs(k)), cap))
    for r, w in enumerate(ws):
        for p, (i, j) in enumerate(pairs(k)):
            pw = World(
                rng.standard_normal(len(w.prompt_z)), w.fixed_rater_z, rng.standard_normal(cap), w.batches, w.seed
            )
            y = _answers(  # the stronger model j's score
                model,
                j - i,
                w.batches.ravel(),
                np.repeat(np.arange(cap), PER_BATCH),
                pw,
                pw.batch_rater_z,
                int(rng.integers(2**31)),
            )
            out[r, p] = 1 - y.reshape(cap, PER_BATCH).mean(axis=1)
    return out


def _fixed(model: RaterModel, k: int, ws: list[World], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per (replicate, pair) of the fixed design's crossed interval at 1 - alpha / P, for
    the preference for the pair's first model i over j."""
    rng = np.random.default_rng(seed)
    n_pairs = len(pairs(k))
    n_p = len(ws[0].prompt_z)
    prompt, rater = np.tile(np.arange(n_p), FIXED_RATERS), np.repeat(np.arange(FIXED_RATERS), n_p)
    low, high = np.empty((len(ws), n_pairs)), np.empty((len(ws), n_pairs))
    for r, w in enumerate(ws):
        for p, (i, j) in enumerate(pairs(k)):
            pw = World(rng.standard_normal(n_p), rng.standard_normal(FIXED_RATERS), w.batch_rater_z, w.batches, w.seed)
            y = _answers(model, j - i, prompt, rater, pw, pw.fixed_rater_z, int(rng.integers(2**31)))
            iv = CrossedBootstrap(n_p, FIXED_RATERS, resamples, seed=int(rng.integers(2**31))).interval(
                prompt, rater, 1 - y, "crossed", 1 - ALPHA / n_pairs
            )
            low[r, p], high[r, p] = iv.low, iv.high
    return low, high


def sequential(x: np.ndarray, k: int, first_pass: np.ndarray, informed: bool) -> dict:
    """Run the sequential ranking on precomputed batch means x (R, P, cap); returns per replicate the
    batches used, the order found (index into permutations, -1: none) and the final pair intervals."""
    reps, n_pairs, cap = x.shape
    state = Betting(reps * n_pairs, ALPHA / n_pairs)
    used = np.zeros((reps, n_pairs), int)
    low, high = np.zeros((reps, n_pairs)), np.ones((reps, n_pairs))
    wins = np.zeros((reps, k, k))
    order = np.full(reps, -1)
    active = np.ones(reps, bool)
    for step in range(n_pairs * cap):
        live = np.flatnonzero(active)
        if not len(live):
            break
        rows = np.arange(len(live))
        room = used[live] < cap
        passed = used[live] >= first_pass[live, None]
        if informed:
            strength = fit(wins[live], prior=PRIOR, iterations=BT_ITERATIONS)
            done = settled(low[live], high[live], passed, 0.0)
            choice = choose(strength, used[live] * PER_BATCH, done, room, PER_BATCH)
        else:
            choice = np.full(len(live), step % n_pairs)
            choice = np.where(room[rows, choice], choice, room.argmax(axis=1))  # a capped pair is never picked
        b = used[live, choice]
        obs = x[live, choice, b]
        low[live, choice], high[live, choice] = state.update(live * n_pairs + choice, obs)
        used[live, choice] += 1
        i, j = np.array(pairs(k))[choice].T
        wins[live, i, j] += PER_BATCH * obs
        wins[live, j, i] += PER_BATCH * (1 - obs)
        passed = used[live] >= first_pass[live, None]
        _, found = verdict(low[live], high[live], passed, np.zeros((len(live), k)), 0.0)  # no precision target
        order[live] = found
        active[live] = (found < 0) & (used[live].sum(axis=1) < n_pairs * cap)
    return {"batches": used.sum(axis=1), "order": order, "low": low, "high": high}


def run_ranking(k: int, adjacent: float, ws: list[World], fixed_resamples: int, seed: int) -> list[dict]:
    model = step_for(adjacent)
    truth = np.array([1 - pair_truth(model, j - i) for i, j in pairs(k)])  # the first model's preference
    true_order = list(itertools.permutations(range(k))).index(tuple(range(k - 1, -1, -1)))
    first_pass = np.array([int(np.argmax(covered(w))) + 1 for w in ws])
    x = _batch_means(model, k, ws, seed)
    fixed_n = len(pairs(k)) * FIXED_RATERS * len(ws[0].prompt_z)
    lo, hi = _fixed(model, k, ws, fixed_resamples, seed + 1)
    fixed = {
        "batches": np.full(len(ws), fixed_n / PER_BATCH),
        "order": ranked(decided(lo, hi, np.ones_like(lo, bool), k)),
        "low": lo,
        "high": hi,
    }
    rows = []
    for design, res in zip(DESIGNS, (fixed, sequential(x, k, first_pass, False), sequential(x, k, first_pass, True))):
        n = res["batches"] * PER_BATCH
        with np.errstate(invalid="ignore"):
            cover = ((res["low"] <= truth) & (truth <= res["high"])).all(axis=1)
        rows.append(
            {
                "models": k,
                "adjacent": adjacent,
                "design": design,
                "mean_ratings": float(n.mean()),
                "savings": float((1 - n.mean() / fixed_n) * 100),
                "right_order": float(np.mean(res["order"] == true_order) * 100),
                "wrong_order": float(np.mean((res["order"] >= 0) & (res["order"] != true_order)) * 100),
                "no_order": float(np.mean(res["order"] < 0) * 100),
                "coverage_all_pairs": float(cover.mean() * 100),
                "replicates": len(ws),
            }
        )
    return rows


def run(sizes: Sizes, seed: int, log=print) -> list[dict]:
    prompts = load_drawbench()
    ws = worlds(
        sizes.ranking_replicates,
        prompts["id"].astype(str).tolist(),
        prompts["category"].tolist(),
        FIXED_RATERS * len(prompts) // PER_BATCH,
        seed,
    )
    rows = []
    for adjacent in sizes.ranking_adjacent:
        rows += run_ranking(sizes.models, adjacent, ws, sizes.fixed_resamples, seed)
        log(f"{sizes.models} models, adjacent preference {adjacent}: done ({sizes.ranking_replicates} replicates)")
    return rows

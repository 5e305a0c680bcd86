"""Several models: ranking K models by sequential rater-batches on model pairs (issue 30 item 4,
"for several models"), simulated against the fixed design that rates every pair in full.

Models 0..K-1 have Bradley-Terry strengths k * d, d the logit step that makes adjacent models'
preference (ties half, rater and prompt effects as in reports.simulate.RaterModel) equal `adjacent`.
A batch is one fresh rater on 45 prompts of ONE pair (dealt in stratified passes per pair), so each
pair's batch means are the bounded observations of its own betting confidence sequence
(human_eval.confseq.Betting) at alpha / P for the P pairs (Bonferroni: all of them hold at every
time at once with probability >= 1 - alpha, whichever pairs the allocation picks, since a pair's
next batch is a fresh draw whatever led to choosing it). A pair is decided once its interval
excludes 1/2 after one full pass over the prompts (5 batches); the ranking is decided when some order
of the K models has every consecutive pair decided in its direction.

    fixed            every pair: 25 raters x 200 prompts (the paper's design per pair), crossed
                     interval at level 1 - alpha / P per pair.
    round robin      sequential, batches to the pairs in turn.
    information      sequential, the next batch to the pair whose decision the ranking still
                     waits for: among the consecutive pairs of the current Bradley-Terry order
                     (fitted to every batch so far, MM iterations of Hunter 2004) not yet decided,
                     the one with the widest interval (the largest expected shrink); when all are,
                     the widest undecided pair.
Cap: the fixed design's ratings (P x 5,000).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import expit

from drawbench.prompts import load_drawbench
from human_eval.confseq import Betting
from reports.bootstrap import CrossedBootstrap
from reports.simulate import SCORES, RaterModel, answers

from .simulate import FIXED_RATERS, PER_BATCH, Sizes, World, covered, worlds

ALPHA = 0.05
DESIGNS = (
    "fixed: every pair 25 raters x 200 prompts",
    "sequential, round robin",
    "sequential, information-driven pairs",
)


def _pairs(k: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(k), 2))


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


def bradley_terry(wins: np.ndarray, iters: int = 30) -> np.ndarray:
    """Strengths (R, K) from wins[r, i, j] = i's wins over j (ties half), with half a win each way
    added per pair (a pair not yet rated stays uninformative): MM, pi_i <- W_i / sum_j n_ij / (pi_i + pi_j)."""
    wins = wins + 0.5 * (1 - np.eye(wins.shape[1]))
    n = wins + wins.transpose(0, 2, 1)
    pi = np.ones(wins.shape[:2])
    for _ in range(iters):
        pi = wins.sum(axis=2) / (n / (pi[:, :, None] + pi[:, None, :])).sum(axis=2)
        pi /= pi.sum(axis=1, keepdims=True)
    return pi


def ranked(decided: np.ndarray, k: int) -> np.ndarray:
    """(R,) index into permutations(range(k)) of an order whose consecutive pairs are all decided
    (decided[r, i, j]: i preferred to j), -1 where none is."""
    perms = list(itertools.permutations(range(k)))
    ok = np.stack([np.all([decided[:, p[a], p[a + 1]] for a in range(k - 1)], axis=0) for p in perms], axis=1)
    return np.where(ok.any(axis=1), ok.argmax(axis=1), -1)


def _batch_means(model: RaterModel, k: int, ws: list[World], seed: int) -> np.ndarray:
    """X[r, p, b]: pair p's b-th batch mean (preference for the pair's stronger-index model j over i),
    fresh prompt effects per pair and a fresh rater per batch; the batches' prompts from the world's deal."""
    rng = np.random.default_rng(seed)
    pairs = _pairs(k)
    cap = ws[0].batches.shape[0]
    out = np.empty((len(ws), len(pairs), cap))
    for r, w in enumerate(ws):
        for p, (i, j) in enumerate(pairs):
            pw = World(
                rng.standard_normal(len(w.prompt_z)), w.fixed_rater_z, rng.standard_normal(cap), w.batches, w.seed
            )
            y = _answers(
                model,
                j - i,
                w.batches.ravel(),
                np.repeat(np.arange(cap), PER_BATCH),
                pw,
                pw.batch_rater_z,
                int(rng.integers(2**31)),
            )
            out[r, p] = y.reshape(cap, PER_BATCH).mean(axis=1)
    return out


def _fixed(model: RaterModel, k: int, ws: list[World], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per (replicate, pair) of the fixed design's crossed interval at 1 - alpha / P."""
    rng = np.random.default_rng(seed)
    pairs = _pairs(k)
    n_p = len(ws[0].prompt_z)
    prompt, rater = np.tile(np.arange(n_p), FIXED_RATERS), np.repeat(np.arange(FIXED_RATERS), n_p)
    low, high = np.empty((len(ws), len(pairs))), np.empty((len(ws), len(pairs)))
    for r, w in enumerate(ws):
        for p, (i, j) in enumerate(pairs):
            pw = World(rng.standard_normal(n_p), rng.standard_normal(FIXED_RATERS), w.batch_rater_z, w.batches, w.seed)
            y = _answers(model, j - i, prompt, rater, pw, pw.fixed_rater_z, int(rng.integers(2**31)))
            iv = CrossedBootstrap(n_p, FIXED_RATERS, resamples, seed=int(rng.integers(2**31))).interval(
                prompt, rater, y, "crossed", 1 - ALPHA / len(pairs)
            )
            low[r, p], high[r, p] = iv.low, iv.high
    return low, high


def _decided(low: np.ndarray, high: np.ndarray, passed: np.ndarray, k: int) -> np.ndarray:
    """decided[r, a, b]: a preferred to b by a pair interval that excludes 1/2 after its full pass."""
    out = np.zeros((low.shape[0], k, k), bool)
    for p, (i, j) in enumerate(_pairs(k)):
        out[:, j, i] = passed[:, p] & (low[:, p] > 0.5)
        out[:, i, j] = passed[:, p] & (high[:, p] < 0.5)
    return out


def sequential(x: np.ndarray, k: int, first_pass: np.ndarray, informed: bool) -> dict:
    """Run the sequential ranking on precomputed batch means x (R, P, cap); returns per replicate the
    batches used, the order found (index into permutations, -1: none) and the final pair intervals."""
    reps, n_pairs, cap = x.shape
    pairs = _pairs(k)
    pid = np.full((k, k), -1)
    for p, (i, j) in enumerate(pairs):
        pid[i, j] = pid[j, i] = p
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
        room = used[live] < cap
        width = np.where(
            room & ~_settled(low[live], high[live], used[live], first_pass[live]), high[live] - low[live], -1.0
        )
        if informed:
            bt = np.argsort(-bradley_terry(wins[live]), axis=1)
            consecutive = pid[bt[:, :-1], bt[:, 1:]]  # (R, k - 1) pair ids in the current order
            pick = np.take_along_axis(width, consecutive, axis=1)
            choice = np.where(
                pick.max(axis=1) >= 0, consecutive[np.arange(len(live)), pick.argmax(axis=1)], width.argmax(axis=1)
            )
        else:
            choice = np.full(len(live), step % n_pairs)
        choice = np.where(
            room[np.arange(len(live)), choice], choice, room.argmax(axis=1)
        )  # a capped pair is never picked
        b = used[live, choice]
        obs = x[live, choice, b]
        low[live, choice], high[live, choice] = state.update(live * n_pairs + choice, obs)
        used[live, choice] += 1
        i, j = np.array(pairs)[choice].T
        wins[live, j, i] += PER_BATCH * obs
        wins[live, i, j] += PER_BATCH * (1 - obs)
        found = ranked(_decided(low[live], high[live], used[live] >= first_pass[live, None], k), k)
        order[live] = found
        active[live] = (found < 0) & (used[live].sum(axis=1) < n_pairs * cap)
    return {"batches": used.sum(axis=1), "order": order, "low": low, "high": high}


def _settled(low, high, used, first_pass) -> np.ndarray:
    return (used >= first_pass[:, None]) & ((low > 0.5) | (high < 0.5))


def run_ranking(k: int, adjacent: float, ws: list[World], fixed_resamples: int, seed: int) -> list[dict]:
    model = step_for(adjacent)
    pairs = _pairs(k)
    truth = np.array([pair_truth(model, j - i) for i, j in pairs])
    true_order = list(itertools.permutations(range(k))).index(tuple(range(k - 1, -1, -1)))
    first_pass = np.array([int(np.argmax(covered(w))) + 1 for w in ws])
    x = _batch_means(model, k, ws, seed)
    fixed_n = len(pairs) * FIXED_RATERS * len(ws[0].prompt_z)
    lo, hi = _fixed(model, k, ws, fixed_resamples, seed + 1)
    fixed = {
        "batches": np.full(len(ws), fixed_n / PER_BATCH),
        "order": ranked(_decided(lo, hi, np.ones_like(lo, bool), k), k),
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

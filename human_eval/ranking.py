"""The sequential design for several models (issue 30 item 4): rank K >= 3 models by rater-batches on
model pairs, each batch's pair chosen by information, and stop once the ranking is settled.

Unit: the rater-batch, as in the A-vs-B design (human_eval.sequential). Each rater rates ONE batch of
ONE model pair (i, j), i < j in the order the models were given: model i is A, model j is B, and the
batch's observation is the mean of its ordinary answers to the plan's question (A = 1, tie = 1/2,
B = 0), the preference for model i over model j, a number in [0, 1]. Each pair's batches are dealt
from the pair's own stratified passes over the prompts (human_eval.sequential_deal.deal), so its
batch means are bounded observations whose conditional means average to the pair's preference over
the study's prompts whichever pair the allocation chose when: the choice reads earlier answers only,
and a pair's next batch is a fresh rater on the next prompts of its passes.

Intervals: each of the P = K (K - 1) / 2 pairs keeps its own confidence sequence (human_eval.confseq)
at level 1 - alpha / P (Bonferroni): all P hold at every time at once with probability >= 1 - alpha,
whatever the allocation did. Under Bradley-Terry a pair's preference is expit(s_i - s_j), so a pair's
interval [l, h] is the interval [logit l, logit h] of the strength difference s_i - s_j, and "the
interval excludes 1/2" is "the difference's interval excludes 0".

Pair choice (choose): the Bradley-Terry strengths s are fitted to every counted answer
(common.bradley_terry.fit with half a win each way per pair as a prior). The ranking waits for the
consecutive pairs of the fitted order that are not settled yet (settled: decided, or as narrow as the
precision target, after the pair's full pass). The next batch goes to the one of them whose batch
most reduces the summed variance of those pairs' strength differences:
    gain(e) = f_e sum_t (u_t' S u_e)^2 / (1 + f_e u_e' S u_e),   f_e = m p_e (1 - p_e),
the Sherman-Morrison update of S = I^+, the covariance of the strengths under the Fisher information
I of every comparison dealt so far (common.bradley_terry.information): the batches still being rated
count, since a comparison's information does not depend on its answer, so raters arriving together
are spread over the pairs. m is the ordinary tasks of a batch, p_e = expit(s_i - s_j), u_e = e_i - e_j.
Only the pairs the rule waits for are candidates, because a pair is decided by its own interval: a
batch elsewhere would move the fit, not the rule. Pairs far apart in the order are then never rated:
the chain of consecutive pairs orders them. Prompts are not chosen by the answers: each pair follows
its passes, so a batch mean keeps estimating the pair's preference over the study's prompts.

Stopping rule, at each look (every look_every counted batches):
    decided  some order of the K models has every consecutive pair decided in its direction (its
             interval excludes 1/2 after the pair's full pass): the ranking is settled at 1 - alpha
             (Bonferroni over the P pairs);
    precise  every consecutive pair of the fitted order is decided in its direction or, after its
             full pass, no wider than the target half-width on each side (reported as not separated);
    cap      every planned batch (one per rater of the pool) is in.
The vectorised pieces (decided, ranked, settled, choose, verdict) take (R, ...) arrays, R studies at
once: the app runs them on its one study (R = 1), the simulation (selfcheck.sequential.ranking) on
its replicates; there is no second copy of the rule.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from common.bradley_terry import difference_covariance, differences, fit, pairs

from .confseq import sequence
from .sequential import REASONS, Recorded, SequentialPlan, batch_table, recorded_plan

DESIGN = "sequential_ranking"  # settings.plan.design of a study made with 3+ models and --design sequential
PRIOR = 0.5  # wins each way per pair added to the fit (and its comparisons to the information)
MIN_MODELS, MAX_MODELS = 3, 8  # 8 models: 28 pairs, 40,320 orders to check


def pair_ids(k: int) -> np.ndarray:
    """(k, k): the id of pair {a, b} at [a, b] and [b, a]; -1 on the diagonal."""
    out = np.full((k, k), -1)
    for p, (i, j) in enumerate(pairs(k)):
        out[i, j] = out[j, i] = p
    return out


def decided(low: np.ndarray, high: np.ndarray, passed: np.ndarray, k: int) -> np.ndarray:
    """(R, k, k): [r, a, b] when a is preferred to b by their pair's interval, after the pair's pass.
    Pair p = (i, j) observes the preference for i over j: low > 1/2 prefers i, high < 1/2 prefers j."""
    out = np.zeros((low.shape[0], k, k), bool)
    with np.errstate(invalid="ignore"):  # nan: an empty interval decides nothing
        for p, (i, j) in enumerate(pairs(k)):
            out[:, i, j] = passed[:, p] & (low[:, p] > 0.5)
            out[:, j, i] = passed[:, p] & (high[:, p] < 0.5)
    return out


def ranked(decided_: np.ndarray) -> np.ndarray:
    """(R,) index into permutations(range(k)) of an order whose consecutive pairs are all decided
    (in its direction), -1 where none is."""
    k = decided_.shape[1]
    perms = list(itertools.permutations(range(k)))
    ok = np.stack([np.all([decided_[:, p[a], p[a + 1]] for a in range(k - 1)], axis=0) for p in perms], axis=1)
    return np.where(ok.any(axis=1), ok.argmax(axis=1), -1)


def narrow(low: np.ndarray, high: np.ndarray, half_width: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (high - low) <= 2 * half_width + 1e-12


def settled(low: np.ndarray, high: np.ndarray, passed: np.ndarray, half_width: float) -> np.ndarray:
    """(R, P): pairs the rule needs nothing more from: decided, or as narrow as the target, after their pass."""
    with np.errstate(invalid="ignore"):
        return passed & ((low > 0.5) | (high < 0.5) | narrow(low, high, half_width))


def consecutive(strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower), each (R, k - 1): the neighbours of the fitted order, strongest first."""
    order = np.argsort(-strength, axis=1, kind="stable")
    return order[:, :-1], order[:, 1:]


def choose(
    strength: np.ndarray, games: np.ndarray, settled_: np.ndarray, room: np.ndarray, per_batch: int
) -> np.ndarray:
    """(R,) the pair of the next batch: among the unsettled consecutive pairs of the fitted order (with
    room), the one whose batch most reduces the summed variance of their strength differences. When
    every consecutive pair is settled but no order is decided (a pair decided against the fitted
    order), any unsettled pair is a candidate. games: (R, P) comparisons dealt so far, batches still
    being rated included (the prior's are added here)."""
    r, k = strength.shape
    rows = np.arange(r)[:, None]
    upper, lower = consecutive(strength)
    target = np.zeros(settled_.shape, bool)
    target[rows, pair_ids(k)[upper, lower]] = True
    open_ = ~settled_ & room
    target &= open_
    for fallback in (open_, room):
        none = ~target.any(axis=1)
        target[none] = fallback[none]
    cov = difference_covariance(strength, games + 2 * PRIOR)  # (R, P, P)
    p = expit(strength @ differences(k).T)
    f = per_batch * p * (1 - p)
    own = np.diagonal(cov, axis1=1, axis2=2)
    gain = f * np.einsum("rt,rte->re", target, cov**2) / (1 + f * own)
    return np.where(target, gain, -np.inf).argmax(axis=1)


def verdict(
    low: np.ndarray, high: np.ndarray, passed: np.ndarray, strength: np.ndarray, half_width: float
) -> tuple[np.ndarray, np.ndarray]:
    """(reason, order), each (R,): the index in REASONS of "decided" or "precise" (-1: neither) and
    the decided order (index into permutations, -1: none)."""
    k = strength.shape[1]
    d = decided(low, high, passed, k)
    order = ranked(d)
    rows = np.arange(len(strength))[:, None]
    upper, lower = consecutive(strength)
    pid = pair_ids(k)[upper, lower]
    tight = passed[rows, pid] & narrow(low[rows, pid], high[rows, pid], half_width) & ~d[rows, lower, upper]
    precise = (d[rows, upper, lower] | tight).all(axis=1)
    return np.where(order >= 0, 0, np.where(precise, 1, -1)), order


# -- a study of the app ------------------------------------------------------------------------


@dataclass(frozen=True)
class RankingRecorded:
    """The ranking plan as recorded at creation: the A-vs-B plan's fields (alpha for the whole
    ranking, half-width per pair, looks, sequence, question, cap, tasks per batch, prompts) and the
    models, in the order that makes model i the A side of pair (i, j)."""

    base: Recorded
    models: tuple[str, ...]

    @property
    def plan(self) -> SequentialPlan:
        return self.base.plan

    @property
    def pair_alpha(self) -> float:
        return self.plan.alpha / len(pairs(len(self.models)))

    def pair_label(self, p: int) -> str:
        i, j = pairs(len(self.models))[p]
        return f"{self.models[i]} vs {self.models[j]}"


def record(base: dict, models: list[str], per_batch: int) -> dict:
    """The recorded plan: the A-vs-B record (human_eval.sequential.record) with the models, the
    Bonferroni level per pair and the ordinary tasks per batch."""
    n = len(pairs(len(models)))
    return base | {
        "models": list(models),
        "pairs": n,
        "pair_alpha": base["alpha"] / n,
        "correction": "bonferroni",
        "ordinary_per_batch": per_batch,
        "choice": "information",
    }


def recorded(settings: dict) -> RankingRecorded | None:
    """The recorded ranking plan of a study's settings (None: not a sequential ranking study)."""
    plan = settings.get("plan", {})
    if plan.get("design") != DESIGN:
        return None
    seq = dict(plan.get("sequential") or {})
    try:
        return RankingRecorded(recorded_plan(seq), tuple(seq["models"]))
    except KeyError as e:
        raise ValueError(
            f"the study's ranking plan lacks {e}; it was not written by `study create --design sequential`"
        ) from None


@dataclass(frozen=True)
class RankingState:
    """Where a ranking study stands: the counted batches in arrival order and, after each, every
    pair's interval, whether its full pass is in, and the fitted strengths."""

    recorded: RankingRecorded
    batches: pd.DataFrame  # rater, pair, done_at, mean, answers, counted, look
    low: np.ndarray  # (T, P) after each counted batch; a pair not rated yet: [0, 1]
    high: np.ndarray
    passed: np.ndarray  # (T, P)
    strength: np.ndarray  # (T, K) Bradley-Terry log strengths after each counted batch
    stop_at: int  # counted batches at the stop; 0: still running
    reason: str | None  # REASONS, or None while running

    @property
    def looked(self) -> int:
        return self.stop_at or len(self.low)

    def now(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(low, high, passed, strength) at the stop (or now); before any batch: nothing known."""
        n, k = self.looked, len(self.recorded.models)
        if n == 0:
            p = len(pairs(k))
            return np.zeros(p), np.ones(p), np.zeros(p, bool), np.zeros(k)
        return self.low[n - 1], self.high[n - 1], self.passed[n - 1], self.strength[n - 1]

    def counts(self) -> np.ndarray:
        """Counted batches per pair up to the stop (or now)."""
        counted = self.batches[self.batches["counted"]].head(self.looked)
        return np.bincount(counted["pair"].to_numpy(int), minlength=len(pairs(len(self.recorded.models))))

    def pair_table(self) -> pd.DataFrame:
        """Every pair: its counted batches, its interval at 1 - alpha / P, whether its pass is in, its status."""
        low, high, passed, _ = self.now()
        hw = self.recorded.plan.half_width
        status = np.where(
            ~passed,
            "before its full pass",
            np.where(
                low > 0.5,
                "A preferred",
                np.where(high < 0.5, "B preferred", np.where(narrow(low, high, hw), "not separated", "open")),
            ),
        )
        models = self.recorded.models
        return pd.DataFrame(
            {
                "pair": [self.recorded.pair_label(p) for p in range(len(low))],
                "model_a": [models[i] for i, _ in pairs(len(models))],
                "model_b": [models[j] for _, j in pairs(len(models))],
                "batches": self.counts(),
                "low": low,
                "high": high,
                "full_pass": passed,
                "status": status,
            }
        )

    def estimates(self) -> pd.DataFrame:
        """The ranking at the stop (or now): the models in the fitted order with their Bradley-Terry
        log strengths, and for each model the interval of its strength minus the next model's
        (logit of the pair's interval at 1 - alpha / P, all at once at 1 - alpha) and the verdict."""
        low, high, passed, strength = self.now()
        k, models = len(self.recorded.models), self.recorded.models
        order = np.argsort(-strength, kind="stable")
        ids = pair_ids(k)
        rows = []
        for rank, m in enumerate(order, start=1):
            row = {"rank": rank, "model": models[m], "log_strength": float(strength[m])}
            if rank < k:
                nxt = order[rank]
                p = ids[m, nxt]
                lo, hi = (low[p], high[p]) if m < nxt else (1 - high[p], 1 - low[p])  # preference for m over nxt
                with np.errstate(divide="ignore"):
                    dlo, dhi = logit(lo), logit(hi)
                row |= {
                    "next": models[nxt],
                    "preference_low": lo,
                    "preference_high": hi,
                    "difference_low": dlo,
                    "difference_high": dhi,
                    "verdict": "before its full pass"
                    if not passed[p]
                    else "ahead"
                    if lo > 0.5
                    else "behind"
                    if hi < 0.5
                    else "not separated"
                    if narrow(lo, hi, self.recorded.plan.half_width)
                    else "open",
                }
            rows.append(row)
        return pd.DataFrame(rows)

    def ordering(self) -> str:
        """The ranking in words: '>' between models whose pair is decided, '~' not separated, '?' open."""
        table = self.estimates()
        sign = {"ahead": ">", "not separated": "~"}
        out = [table["model"].iloc[0]]
        for r in table.iloc[:-1].itertuples():
            out += [sign.get(r.verdict, "?"), table["model"].iloc[r.rank]]
        return " ".join(out)

    def finding(self) -> str:
        """Where the study stands, in one sentence without the plan (the report's summary line)."""
        return f"{self._status()}."

    def _status(self) -> str:
        n, plan = self.looked, self.recorded.plan
        if self.reason is None:
            return f"Still running after {n} counted batches: {self.ordering()}"
        why = {
            "decided": "every adjacent pair of the ranking is decided (each pair's interval excludes 1/2)",
            "precise": f"every adjacent pair is decided or narrower than {plan.half_width:g} on each side",
            "cap": "the cap was reached",
        }[self.reason]
        return f"Stopped after {n} counted batches because {why}: {self.ordering()}"

    def describe(self) -> str:
        """finding() with the plan that produced it."""
        r = self.recorded
        k, plan = len(r.models), r.plan
        how = (
            f"sequential ranking of {k} models: one {plan.method} confidence sequence per pair at "
            f"{1 - r.pair_alpha:.2%} (Bonferroni over {len(pairs(k))} pairs: all at once at {1 - plan.alpha:.0%}) on question "
            f"{r.base.question!r}; each batch's pair chosen by Bradley-Terry information; stop when every adjacent pair of an order is "
            f"decided, when every adjacent pair is decided or within a half-width of {plan.half_width:g}, or at the cap of "
            f"{r.base.cap_batches} batches, a pair counting only after its full pass over the {r.base.n_prompts} prompts; "
            f"looks every {plan.look_every} batch(es)"
        )
        return f"{self._status()} ({how})."


def _pair_of(frame: pd.DataFrame, models: tuple[str, ...]) -> pd.Series:
    """rater -> the pair id of their batch, from their ordinary answers' (model_a, model_b)."""
    ordinary = frame[~frame["is_control"].astype(bool)]
    seen = ordinary.groupby("rater")[["model_a", "model_b"]].agg(lambda s: frozenset(s))
    ids, index = pair_ids(len(models)), {m: i for i, m in enumerate(models)}
    out = {}
    for rater, a, b in seen.itertuples():
        if len(a) != 1 or len(b) != 1 or next(iter(a)) not in index or next(iter(b)) not in index:
            raise ValueError(f"rater {rater!r}'s batch is not one pair of the study's models {list(models)}")
        i, j = index[next(iter(a))], index[next(iter(b))]
        if i >= j:
            raise ValueError(
                f"rater {rater!r}'s batch shows {models[i]} as A beside {models[j]}: not dealt by the ranking design"
            )
        out[rater] = ids[i, j]
    return pd.Series(out, dtype="int64")


def state(frame: pd.DataFrame, settings: dict, threshold: float) -> RankingState:
    """The ranking state of one study from its contract-2 answers (controls included) and its
    recorded settings, recomputed from them alone (the report does the same from an export)."""
    rec = recorded(settings)
    if rec is None:
        raise ValueError(f"not a sequential ranking study (its plan's design is not {DESIGN!r})")
    k, n_pairs = len(rec.models), len(pairs(len(rec.models)))
    table = batch_table(frame, rec.base, threshold)
    table.insert(1, "pair", table["rater"].map(_pair_of(frame, rec.models)).astype("int64"))
    counted = table[table["counted"]]
    t_max = len(counted)
    low, high, passed = np.zeros((t_max, n_pairs)), np.ones((t_max, n_pairs)), np.zeros((t_max, n_pairs), bool)
    pair, means, answers = (counted[c].to_numpy() for c in ("pair", "mean", "answers"))
    for p in range(n_pairs):  # each pair's sequence over its own batches, carried forward between them
        at = np.flatnonzero(pair == p)
        if not len(at):
            continue
        lo, hi = sequence(means[at][None, :], rec.pair_alpha, rec.plan.method)
        seen: set[str] = set()
        full = []
        for prompts in counted["prompts"].iloc[at]:
            seen |= prompts
            full.append(len(seen) >= rec.base.n_prompts)
        c = (
            np.searchsorted(at, np.arange(t_max), side="right") - 1
        )  # the pair's batches in after each counted batch, - 1
        c, after = c[c >= 0], np.arange(t_max)[c >= 0]
        low[after, p], high[after, p], passed[after, p] = lo[0, c], hi[0, c], np.array(full)[c]
    i, j = np.array(pairs(k)).T[:, pair] if t_max else (np.zeros(0, int), np.zeros(0, int))
    wins = np.zeros((t_max, k, k))
    wins[np.arange(t_max), i, j] = answers * means
    wins[np.arange(t_max), j, i] = answers * (1 - means)
    wins = np.cumsum(wins, axis=0)
    strength = fit(wins, prior=PRIOR) if t_max else np.zeros((0, k))
    reason_t, _ = verdict(low, high, passed, strength, rec.plan.half_width) if t_max else (np.zeros(0, int), None)
    t = np.arange(1, t_max + 1)
    cap = rec.base.cap_batches
    reason = np.where(reason_t >= 0, reason_t, np.where(t == cap, 2, -1))
    fire = ((t % rec.plan.look_every == 0) | (t == cap)) & (reason >= 0)
    stop_at, why = (int(np.argmax(fire)) + 1, REASONS[reason[np.argmax(fire)]]) if fire.any() else (0, None)
    if why is None and len(table) >= cap:  # every planned batch is in (some flagged): the cap, at the last one
        stop_at, why = t_max, "cap"
    table["look"] = 0
    table.loc[table["counted"], "look"] = np.arange(1, t_max + 1)
    return RankingState(rec, table.drop(columns="prompts"), low, high, passed, strength, stop_at, why)


__all__ = [
    "DESIGN",
    "RankingRecorded",
    "RankingState",
    "choose",
    "decided",
    "pair_ids",
    "ranked",
    "record",
    "recorded",
    "settled",
    "state",
    "verdict",
]

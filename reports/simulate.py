"""Simulated raters with a known true preference, for coverage tests, the power calculator and
the demo report.

Rater model (one side-by-side question): reliable rater j on prompt i answers
    tie          with probability t (tie_rate),
    A            with probability (1 - t) * expit(mu + u_i + b_j),
    B            otherwise,
with u_i ~ N(0, prompt_sd^2) (prompt-level heterogeneity: preference is logit-normal over prompts)
and b_j ~ N(0, rater_sd^2) (rater bias). The truth reported is the population preference with
ties counted as half, (1 - t) E[expit(mu + u + b)] + t / 2, over the prompt and rater
populations; mu is solved so that it equals `preference` exactly (Gauss-Hermite quadrature).
Unreliable raters (a fraction of the pool) answer uniformly at random and fail controls; the truth
is over reliable raters, who are what the control threshold keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

SCORES = np.array([1.0, 0.5, 0.0])  # A, tie, B: ties count half
ANSWERS = np.array(["A", "tie", "B"])
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)  # E[f(Z)], Z ~ N(0,1), to ~1e-12


@dataclass(frozen=True)
class RaterModel:
    preference: float = 0.55  # true P(A) with ties as half, over prompts and raters
    prompt_sd: float = 1.0  # logit sd of per-prompt preference (a DrawBench-like spread)
    rater_sd: float = 0.3  # logit sd of rater bias
    tie_rate: float = 0.2  # P("I am indifferent")
    unreliable_fraction: float = 0.0  # raters answering at random
    reliable_control_accuracy: float = 0.97
    unreliable_control_accuracy: float = 0.4

    def __post_init__(self):
        if not 0.0 <= self.tie_rate < 1.0:
            raise ValueError(f"tie_rate must be in [0, 1), got {self.tie_rate}")
        lo, hi = self.tie_rate / 2, 1 - self.tie_rate / 2  # reachable range of the tie-half preference
        if not lo < self.preference < hi:
            raise ValueError(
                f"preference {self.preference} unreachable with tie_rate {self.tie_rate}; must be in ({lo}, {hi})"
            )
        if self.prompt_sd < 0 or self.rater_sd < 0 or not 0 <= self.unreliable_fraction < 1:
            raise ValueError("prompt_sd, rater_sd must be >= 0 and unreliable_fraction in [0, 1)")

    @property
    def no_tie_preference(self) -> float:
        """Truth for the rate without ties, #A / (#A + #B) = E[expit(mu + u + b)]."""
        return (self.preference - self.tie_rate / 2) / (1 - self.tie_rate)

    @property
    def logit_mean(self) -> float:
        """mu solving E[expit(mu + s Z)] = no_tie_preference, s^2 = prompt_sd^2 + rater_sd^2."""
        s = float(np.hypot(self.prompt_sd, self.rater_sd))
        target = self.no_tie_preference
        lo, hi = -30.0, 30.0  # bisection: E[expit(mu + sZ)] increases with mu; 100 halvings reach 1e-15
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(_GH_W @ expit(mid + s * _GH_X)) / np.sqrt(2 * np.pi) < target else (lo, mid)
        return (lo + hi) / 2


@dataclass(frozen=True)
class StudyDesign:
    n_prompts: int = 200
    n_raters: int = 40
    answers_per_rater: int = 50  # distinct prompts per rater, drawn at random
    controls_per_rater: int = 0

    def __post_init__(self):
        if min(self.n_prompts, self.n_raters, self.answers_per_rater) < 1 or self.controls_per_rater < 0:
            raise ValueError("n_prompts, n_raters, answers_per_rater must be >= 1, controls_per_rater >= 0")
        if self.answers_per_rater > self.n_prompts:
            raise ValueError(f"answers_per_rater ({self.answers_per_rater}) exceeds n_prompts ({self.n_prompts})")


@dataclass(frozen=True)
class SimulatedAnswers:
    prompt: np.ndarray  # int codes 0..n_prompts-1
    rater: np.ndarray  # int codes 0..n_raters-1
    answer: np.ndarray  # 0 = A, 1 = tie, 2 = B
    reliable: np.ndarray  # per rater, bool

    @property
    def score(self) -> np.ndarray:
        return SCORES[self.answer]


def assign(design: StudyDesign, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each rater gets answers_per_rater distinct prompts, uniformly at random."""
    order = np.argsort(rng.random((design.n_raters, design.n_prompts)), axis=1)[:, : design.answers_per_rater]
    return order.ravel(), np.repeat(np.arange(design.n_raters), design.answers_per_rater)


def answers(
    model: RaterModel,
    prompt: np.ndarray,
    rater: np.ndarray,
    prompt_z: np.ndarray,
    rater_z: np.ndarray,
    reliable: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Answer codes (0 = A, 1 = tie, 2 = B) for the given (prompt, rater) pairs; prompt_z / rater_z
    are standard normal effects (scaled here by prompt_sd / rater_sd)."""
    p_a = (1 - model.tie_rate) * expit(
        model.logit_mean + model.prompt_sd * prompt_z[prompt] + model.rater_sd * rater_z[rater]
    )
    draw = rng.random(len(prompt))
    answer = np.where(draw < p_a, 0, np.where(draw < p_a + model.tie_rate, 1, 2))
    random_answer = rng.integers(0, 3, len(prompt))  # unreliable raters click at random
    return np.where(reliable[rater], answer, random_answer)


def simulate(model: RaterModel, design: StudyDesign, rng: np.random.Generator) -> SimulatedAnswers:
    """One question of one simulated study."""
    prompt, rater = assign(design, rng)
    prompt_z, rater_z = rng.standard_normal(design.n_prompts), rng.standard_normal(design.n_raters)
    reliable = rng.random(design.n_raters) >= model.unreliable_fraction
    return SimulatedAnswers(
        prompt=prompt,
        rater=rater,
        answer=answers(model, prompt, rater, prompt_z, rater_z, reliable, rng),
        reliable=reliable,
    )


def simulate_sbs_frame(
    prompts: pd.DataFrame,
    model_a: str,
    model_b: str,
    models: dict[str, RaterModel],
    design: StudyDesign,
    seed: int,
    study: str = "simulated",
) -> pd.DataFrame:
    """A contract-2 answers frame (drawbench_sbs) for `prompts` (columns id, category; design.n_prompts
    must equal len(prompts)), one question per key of `models` (quality / alignment), with control
    rows. Every rater answers all questions of a task; prompt and rater effects and rater
    reliability (taken from the first model) are shared across questions."""
    if design.n_prompts != len(prompts):
        raise ValueError(f"design has {design.n_prompts} prompts but {len(prompts)} prompts were given")
    rng = np.random.default_rng(seed)
    prompt, rater = assign(design, rng)
    prompt_z, rater_z = rng.standard_normal(design.n_prompts), rng.standard_normal(design.n_raters)
    first = next(iter(models.values()))
    reliable = rng.random(design.n_raters) >= first.unreliable_fraction
    frames = [
        _frame(prompts, prompt, rater, ANSWERS[answers(m, prompt, rater, prompt_z, rater_z, reliable, rng)], q, None)
        for q, m in models.items()
    ]
    if design.controls_per_rater:
        c_rater = np.repeat(np.arange(design.n_raters), design.controls_per_rater)
        accuracy = np.where(reliable, first.reliable_control_accuracy, first.unreliable_control_accuracy)
        correct = rng.random(len(c_rater)) < accuracy[c_rater]
        c_prompt = rng.integers(0, len(prompts), len(c_rater))
        frames.append(_frame(prompts, c_prompt, c_rater, np.where(correct, "A", "B"), "quality", correct))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "study", study)
    out["model_a"], out["model_b"] = model_a, model_b
    return out


def _frame(
    prompts: pd.DataFrame,
    prompt: np.ndarray,
    rater: np.ndarray,
    answer: np.ndarray,
    question: str,
    correct: np.ndarray | None,
) -> pd.DataFrame:
    """Contract-2 rows; `correct` given means these are control rows."""
    is_control = correct is not None
    ids = prompts["id"].astype(str).to_numpy()
    return pd.DataFrame(
        {
            "protocol": "drawbench_sbs",
            "task_id": [f"{'control' if is_control else 'task'}-{ids[p]}" for p in prompt],
            "rater": [f"sim-rater-{r:04d}" for r in rater],
            "question": question,
            "answer": answer,
            "prompt_id": ids[prompt],
            "category": prompts["category"].to_numpy()[prompt],
            "is_control": is_control,
            "control_correct": correct if correct is not None else pd.array([pd.NA] * len(prompt), dtype="boolean"),
            "response_ms": 4000,
            "answered_at": pd.Timestamp("2024-01-01", tz="UTC"),
        }
    )

"""Simulation-based power: how many raters (or prompts) a side-by-side study needs to detect a
true preference of 0.5 + effect at the given confidence level.

For each design on the grid: simulate `studies` studies with the rater model of simulate.py
(prompt heterogeneity, rater bias, ties) at true preference 0.5 + effect, compute the default
interval (crossed bootstrap, bootstrap.py) for each, and count the studies whose interval
excludes 0.5. power = that fraction; Monte Carlo standard error sqrt(p (1 - p) / studies).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_METHOD, CrossedBootstrap, check_method
from .simulate import RaterModel, StudyDesign, simulate

VARY = ("raters", "prompts")
# 80 % power at 95 % confidence: the conventional target (Cohen 1988) the brief asks for.
DEFAULT_TARGET = 0.8
# 200 studies per point: Monte Carlo SE of a power near 0.8 is 0.028, enough to place the crossing.
DEFAULT_STUDIES = 200
# 200 resamples per simulated study: the interval's bootstrap noise is averaged over many studies.
DEFAULT_POWER_RESAMPLES = 200
# Bounds of the command-line options (reports/commands.py). Studies per point: 10 places a power
# within +-0.25 (a first look); 10,000 within +-0.008, finer than any decision needs, at ~10 ms a
# study (default design, 2 cores) already minutes per point. Raters / prompts of a simulated study:
# 2 is the least an interval needs; 10,000 is beyond any human side-by-side study. Answers per rater:
# at most the prompts (a rater answers a prompt once), so the same 10,000.
STUDIES_RANGE = (10, 10_000)
COUNT_RANGE = (2, 10_000)
ANSWERS_RANGE = (1, 10_000)
GRID_POINTS = 100  # a curve, not a sweep: each point costs `studies` simulated studies
# Each simulated study's bootstrap holds resamples x (prompts + raters) 8-byte indices: refused above
# this before the first study, instead of an allocation failure (or swapping) partway through.
MAX_INDEX_BYTES = 2 * 2**30


@dataclass(frozen=True)
class PowerQuery:
    effect: float
    grid: tuple[int, ...] = (10, 20, 40, 80, 160)
    vary: str = "raters"
    n_prompts: int = 200  # fixed when varying raters
    n_raters: int = 40  # fixed when varying prompts
    answers_per_rater: int = 50
    rater_model: RaterModel = RaterModel(preference=0.55)  # its preference is replaced by 0.5 + effect
    studies: int = DEFAULT_STUDIES
    resamples: int = DEFAULT_POWER_RESAMPLES
    method: str = DEFAULT_METHOD
    level: float = 0.95
    target: float = DEFAULT_TARGET
    seed: int = 0

    def __post_init__(self):
        if self.vary not in VARY:
            raise ValueError(f"unknown --vary {self.vary!r}; choose from {', '.join(VARY)}")
        check_method(self.method)
        if not 0 < abs(self.effect) < 0.5:
            raise ValueError(
                f"effect must be a preference difference in (0, 0.5) (true preference 0.5 + effect), got {self.effect}"
            )
        if not self.grid or min(self.grid) < 2:
            raise ValueError(f"grid values must be >= 2, got {self.grid}")
        if self.studies < STUDIES_RANGE[0]:
            raise ValueError(f"studies must be >= {STUDIES_RANGE[0]}, got {self.studies}")
        units = max(d.n_prompts + d.n_raters for d in map(self.design, self.grid))
        need = 8 * self.resamples * units
        if need > MAX_INDEX_BYTES:
            raise ValueError(
                f"resamples x (prompts + raters) = {self.resamples} x {units} needs "
                f"{need / 2**30:.1f} GiB per simulated study (at most {MAX_INDEX_BYTES / 2**30:.0f} GiB); lower --resamples "
                f"or the largest --grid / --prompts / --raters"
            )

    def model(self) -> RaterModel:
        return dataclasses.replace(self.rater_model, preference=0.5 + self.effect)

    def design(self, value: int) -> StudyDesign:
        if self.vary == "raters":
            return StudyDesign(n_prompts=self.n_prompts, n_raters=value, answers_per_rater=self.answers_per_rater)
        return StudyDesign(
            n_prompts=value, n_raters=self.n_raters, answers_per_rater=min(self.answers_per_rater, value)
        )

    def describe(self) -> str:
        m = self.model()
        fixed = f"{self.n_prompts} prompts" if self.vary == "raters" else f"{self.n_raters} raters"
        return (
            f"Simulated power: true preference {m.preference:g} (ties half), logit sd prompts {m.prompt_sd:g}, raters "
            f"{m.rater_sd:g}, tie rate {m.tie_rate:g}; {fixed}, {self.answers_per_rater} answers per rater; "
            f"{self.studies} studies per point, {self.method} {self.level:.0%} CI with {self.resamples} resamples; "
            f"a study detects the effect when its interval excludes 0.5; seed {self.seed}."
        )


def power_curve(query: PowerQuery) -> pd.DataFrame:
    rng = np.random.default_rng(query.seed)
    model = query.model()
    rows = []
    for value in sorted(set(query.grid)):
        design = query.design(value)
        detected = 0
        for _study in range(query.studies):
            sim = simulate(model, design, rng)
            boot = CrossedBootstrap(design.n_prompts, design.n_raters, query.resamples, seed=int(rng.integers(2**31)))
            iv = boot.interval(sim.prompt, sim.rater, sim.score, query.method, query.level)
            detected += (iv.low > 0.5) or (iv.high < 0.5)
        power = detected / query.studies
        rows.append(
            {
                "prompts": design.n_prompts,
                "raters": design.n_raters,
                "answers": design.n_raters * design.answers_per_rater,
                "power": power,
                "mc_se": float(np.sqrt(power * (1 - power) / query.studies)),
                "studies": query.studies,
            }
        )
    return pd.DataFrame(rows)


def needed(curve: pd.DataFrame, query: PowerQuery) -> str:
    """One line: the smallest grid value reaching the target power, or that none did."""
    hit = curve[curve["power"] >= query.target]
    if hit.empty:
        return (
            f"no {query.vary} count on the grid {list(query.grid)} reaches {query.target:.0%} power "
            f"(best {curve['power'].max():.0%}); try a larger grid"
        )
    first = hit.iloc[0]
    return (
        f"{int(first[query.vary])} {query.vary} ({int(first['answers'])} answers) reach {first['power']:.0%} power "
        f"(target {query.target:.0%}) to detect preference 0.5 + {query.effect:g} at {query.level:.0%} confidence"
    )

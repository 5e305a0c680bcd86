"""Preference rates and scores with confidence intervals, from a cleaned ratings frame.

- DrawBench side by side (Imagen Fig. 3 / A.15): per (model pair, question) and category (plus
  "All" = every answer of the pair and question pooled, each answer weighted equally): shares of
  A / tie / B; the preference rate for model A with ties counted as half,
  (#A + #tie / 2) / N; and the rate without ties, #A / (#A + #B).
- COCO photorealism (Table 2): rate at which the model image is preferred over the reference
  (forced choice, so #A / N).
- COCO caption alignment (Table 2): mean of yes / somewhat / no = 100 / 50 / 0, per source
  (the reference images are a source like any model).
Every estimate carries the default interval (see bootstrap.py) and the Wilson interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from drawbench.coco import NO_PEOPLE

from .bootstrap import DEFAULT_METHOD, DEFAULT_RESAMPLES, CrossedBootstrap, check_method, wilson

SIDE_SCORES = {"A": 1.0, "tie": 0.5, "B": 0.0}  # ties count half
CAPTION_SCORES = {"yes": 1.0, "somewhat": 0.5, "no": 0.0}  # x 100 in tables: 100 / 50 / 0
ALL = "All"
NO_PEOPLE_ROW = "No people"  # Table 2's subset: captions in category drawbench.coco.NO_PEOPLE


@dataclass(frozen=True)
class CIConfig:
    method: str = DEFAULT_METHOD
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        check_method(self.method)
        if self.resamples < 2:
            raise ValueError(f"resamples must be >= 2, got {self.resamples}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def describe(self) -> str:
        if self.method == "wilson":
            return f"Wilson score {self.level:.0%} interval (answers treated as independent)"
        boot = f"{self.resamples} bootstrap resamples of prompts and of raters, seed {self.seed}"
        if self.method == "pigeonhole":
            return f"{self.level:.0%} percentile interval of the two-way (pigeonhole) bootstrap, {boot}"
        return (
            f"{self.level:.0%} crossed-design interval: variance components from {boot} and the answer-level "
            f"variance (Owen's moment correction of the pigeonhole bootstrap); t interval on the logit scale with "
            f"Satterthwaite degrees of freedom"
        )


class RatingsAnalysis:
    """Integer codes for prompts and raters of one cleaned frame, and one bootstrap over them,
    shared by every table so all numbers come from the same bootstrap worlds."""

    def __init__(self, answers: pd.DataFrame, config: CIConfig):
        if answers.empty:
            raise ValueError("no answers left to analyse (after dropping controls and excluded raters)")
        self.answers, self.config = answers.reset_index(drop=True), config
        self.prompt = pd.factorize(self.answers["protocol"].astype(str) + "/" + self.answers["prompt_id"].astype(str))[
            0
        ]
        # a rater is (study, rater): names restart in every study (human_eval.contract)
        self.rater = pd.factorize(self.answers["study"].astype(str) + "/" + self.answers["rater"].astype(str))[0]
        self.boot = CrossedBootstrap(
            int(self.prompt.max()) + 1, int(self.rater.max()) + 1, config.resamples, config.seed
        )

    def rates(self, requests: list[tuple[np.ndarray, np.ndarray, str, float]]) -> list[dict]:
        """For each (mask, y, prefix, scale): estimate, default CI and Wilson CI of mean(y[mask]) as
        columns prefix, prefix_low, ... (times scale); all requests share one batched bootstrap."""
        live = [(m, y) for m, y, _, _ in requests if m.any()]
        ivs = iter(
            self.boot.intervals(
                [(self.prompt[m], self.rater[m], y[m]) for m, y in live], self.config.method, self.config.level
            )
        )
        out = []
        for mask, y, prefix, scale in requests:
            if not mask.any():
                out.append(
                    {f"{prefix}{k}": np.nan for k in ("", "_low", "_high", "_se", "_wilson_low", "_wilson_high")}
                )
                continue
            iv = next(ivs)
            w_low, w_high = wilson(float(y[mask].sum()), int(mask.sum()), self.config.level)
            out.append(
                {
                    prefix: iv.estimate * scale,
                    f"{prefix}_low": iv.low * scale,
                    f"{prefix}_high": iv.high * scale,
                    f"{prefix}_se": iv.se * scale,
                    f"{prefix}_wilson_low": w_low * scale,
                    f"{prefix}_wilson_high": w_high * scale,
                }
            )
        return out


def _counts(mask: np.ndarray, analysis: RatingsAnalysis) -> dict:
    return {
        "n_answers": int(mask.sum()),
        "n_prompts": len(np.unique(analysis.prompt[mask])),
        "n_raters": len(np.unique(analysis.rater[mask])),
    }


SHARES = ("A", "tie", "B")


def sbs_table(analysis: RatingsAnalysis) -> pd.DataFrame:
    """One row per (model_a, model_b, question, category), category "All" first."""
    df = analysis.answers
    is_sbs = (df["protocol"] == "drawbench_sbs").to_numpy()
    answer = df["answer"].astype(str).to_numpy()
    score = df["answer"].map(SIDE_SCORES).to_numpy(dtype=float)
    decisive = answer != "tie"
    shares = {k: (answer == k).astype(float) for k in SHARES}  # indicator of each answer: its mean is the share
    category_of = df["category"].astype(str).to_numpy()
    rows, requests = [], []
    for (model_a, model_b, question), group in df[is_sbs].groupby(["model_a", "model_b", "question"], sort=True):
        in_group = np.zeros(len(df), bool)
        in_group[group.index] = True
        for category in [ALL] + sorted(group["category"].astype(str).unique()):
            mask = in_group if category == ALL else in_group & (category_of == category)
            rows.append(
                {
                    "model_a": model_a,
                    "model_b": model_b,
                    "question": question,
                    "category": category,
                    **_counts(mask, analysis),
                    "n_decisive": int((mask & decisive).sum()),
                }
            )
            requests += [(mask, score, "pref_A", 1.0), (mask & decisive, score, "pref_A_no_ties", 1.0)]
            requests += [(mask, shares[k], f"share_{k}", 1.0) for k in SHARES]  # each share with its interval
    rates = analysis.rates(requests)
    per_row = 2 + len(SHARES)
    return pd.DataFrame(
        [
            row | {k: v for r in rates[per_row * i : per_row * (i + 1)] for k, v in r.items()}
            for i, row in enumerate(rows)
        ]
    )


def _per_model(
    analysis: RatingsAnalysis, protocol: str, y: np.ndarray, prefix: str, scale: float, extra
) -> pd.DataFrame:
    """Table 2's rows: per model_a of `protocol`, one row for all its captions ("All") and one for
    the captions without people (category drawbench.coco.NO_PEOPLE) where there are any: counts,
    extra(mask) columns and the rate of y."""
    df = analysis.answers
    no_people = (df["category"].astype(str) == NO_PEOPLE).to_numpy()
    rows, requests = [], []
    for model, group in df[df["protocol"] == protocol].groupby("model_a", sort=True):
        mask = np.zeros(len(df), bool)
        mask[group.index] = True
        for subset, m in ((ALL, mask), (NO_PEOPLE_ROW, mask & no_people)):
            if m.any():
                rows.append({"model": model, "captions": subset, **_counts(m, analysis), **extra(m)})
                requests.append((m, y, prefix, scale))
    return pd.DataFrame([row | rate for row, rate in zip(rows, analysis.rates(requests))])


def coco_realism_table(analysis: RatingsAnalysis) -> pd.DataFrame:
    """Per model: rate at which its image was judged more photorealistic than the reference."""
    score = analysis.answers["answer"].map(SIDE_SCORES).to_numpy(dtype=float)
    return _per_model(analysis, "coco_realism", score, "realism_pref", 1.0, lambda mask: {})


def coco_alignment_table(analysis: RatingsAnalysis) -> pd.DataFrame:
    """Per source (model or reference): mean caption-alignment score on the 0-100 scale."""
    score = analysis.answers["answer"].map(CAPTION_SCORES).to_numpy(dtype=float)
    answer = analysis.answers["answer"].astype(str).to_numpy()
    return _per_model(
        analysis,
        "coco_alignment",
        score,
        "alignment_score",
        100.0,
        lambda mask: {f"share_{a}": (answer[mask] == a).mean() for a in CAPTION_SCORES},
    )

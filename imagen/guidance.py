"""Classifier-free guidance and the paper's thresholding of the predicted x0.

Saharia et al. 2022, sec. 2.2-2.3:
  guidance:   eps~(z, c) = w eps(z, c) + (1 - w) eps(z)            (w = 1: no guidance)
  static:     x0 <- clip(x0, -1, 1)
  dynamic:    s = percentile(|x0|, p) per sample; if s > 1: x0 <- clip(x0, -s, s) / s
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

THRESHOLDING_MODES = ("none", "static", "dynamic")


def classifier_free_guidance(pred_cond: torch.Tensor, pred_uncond: torch.Tensor, weight: float) -> torch.Tensor:
    """w * cond + (1 - w) * uncond. Linear, so it is the same on eps or v predictions."""
    return weight * pred_cond + (1.0 - weight) * pred_uncond


def static_threshold(x0: torch.Tensor) -> torch.Tensor:
    return x0.clamp(-1.0, 1.0)


def dynamic_threshold(x0: torch.Tensor, percentile: float) -> torch.Tensor:
    """Per-sample s = p-th percentile of |x0| (over all pixels and channels), s = max(s, 1)."""
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"dynamic thresholding percentile must be in (0, 100], got {percentile}")
    flat = x0.reshape(x0.shape[0], -1).abs().float()
    s = torch.quantile(flat, percentile / 100.0, dim=1).clamp(min=1.0).to(x0.dtype)  # (B,)
    s = s.view(-1, *([1] * (x0.ndim - 1)))
    return x0.clamp(-s, s) / s


@dataclass(frozen=True)
class Thresholding:
    mode: str = field(
        default="dynamic", metadata={"help": "thresholding of the predicted x0", "choices": THRESHOLDING_MODES}
    )
    # 99.5: the paper's dynamic thresholding percentile (the one place it is written)
    # "applies_with": used only when mode is "dynamic" (the sweep pairs percentiles with dynamic only)
    percentile: float = field(
        default=99.5, metadata={"help": "dynamic thresholding percentile p", "applies_with": ("mode", "dynamic")}
    )

    def __post_init__(self) -> None:
        if self.mode not in THRESHOLDING_MODES:
            raise ValueError(f"thresholding mode {self.mode!r}; choose one of {', '.join(THRESHOLDING_MODES)}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"thresholding percentile must be in (0, 100], got {self.percentile}")

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if self.mode == "static":
            return static_threshold(x0)
        if self.mode == "dynamic":
            return dynamic_threshold(x0, self.percentile)
        return x0

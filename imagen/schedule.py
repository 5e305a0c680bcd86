"""Continuous-time noise schedules, parameterised by log-SNR (Kingma et al. 2021, "VDM").

A schedule maps t in [0, 1] to lambda(t) = log(alpha_t^2 / sigma_t^2), decreasing in t, with
the variance-preserving choice alpha_t^2 = sigmoid(lambda), sigma_t^2 = sigmoid(-lambda).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .config import SCHEDULES, DiffusionConfig

LogSNR = Callable[[torch.Tensor], torch.Tensor]


def cosine_logsnr(logsnr_min: float = -20.0, logsnr_max: float = 20.0) -> LogSNR:
    """Cosine schedule (Nichol & Dhariwal 2021) in log-SNR form: lambda(t) = -2 log tan(a t + b),
    with a, b chosen so lambda(0) = logsnr_max and lambda(1) = logsnr_min (clipped ends)."""
    b = math.atan(math.exp(-0.5 * logsnr_max))
    a = math.atan(math.exp(-0.5 * logsnr_min)) - b

    def logsnr(t: torch.Tensor) -> torch.Tensor:
        return -2.0 * torch.log(torch.tan(a * t + b))

    return logsnr


def linear_logsnr(logsnr_min: float = -20.0, logsnr_max: float = 20.0) -> LogSNR:
    """Continuous version of DDPM's linear beta schedule (beta 1e-4 -> 0.02 over 1000 steps):
    lambda(t) = -log(expm1(1e-4 + 10 t^2)), clipped to [logsnr_min, logsnr_max]."""

    def logsnr(t: torch.Tensor) -> torch.Tensor:
        return (-torch.log(torch.special.expm1(1e-4 + 10.0 * t * t))).clamp(logsnr_min, logsnr_max)

    return logsnr


_SCHEDULES = {"cosine": cosine_logsnr, "linear": linear_logsnr}  # keyed by config.SCHEDULES, the names' one home
assert tuple(_SCHEDULES) == SCHEDULES, "imagen.config.SCHEDULES and the schedule functions disagree"


def make_logsnr(cfg: DiffusionConfig) -> LogSNR:
    return _SCHEDULES[cfg.schedule](cfg.logsnr_min, cfg.logsnr_max)


def alpha_sigma(logsnr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha = sqrt(sigmoid(lambda)), sigma = sqrt(sigmoid(-lambda)); alpha^2 + sigma^2 = 1."""
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()

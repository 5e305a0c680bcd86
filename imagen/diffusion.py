"""Forward process, parameterisation conversions and the training loss.

Shapes: x, z, eps, v are (B, C, H, W); t and logsnr are (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .schedule import alpha_sigma


def _bc(a: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, 1, 1, 1) for broadcasting over images
    return a.view(-1, 1, 1, 1)


def q_sample(x: torch.Tensor, logsnr: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z_t = alpha_t x + sigma_t eps (VDM eq. 1). Also used for noise-conditioning augmentation."""
    alpha, sigma = alpha_sigma(logsnr)
    return _bc(alpha) * x + _bc(sigma) * noise


def x0_from_prediction(pred: torch.Tensor, z: torch.Tensor, logsnr: torch.Tensor, prediction: str) -> torch.Tensor:
    """eps-prediction: x = (z - sigma eps) / alpha;  v-prediction (Salimans & Ho 2022): x = alpha z - sigma v."""
    alpha, sigma = (_bc(a) for a in alpha_sigma(logsnr))
    if prediction == "eps":
        return (z - sigma * pred) / alpha
    if prediction == "v":
        return alpha * z - sigma * pred
    raise ValueError(f"prediction={prediction!r}; choose one of eps, v")


def eps_from_x0(x0: torch.Tensor, z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
    """eps = (z - alpha x) / sigma."""
    alpha, sigma = (_bc(a) for a in alpha_sigma(logsnr))
    return (z - alpha * x0) / sigma


def training_target(x: torch.Tensor, noise: torch.Tensor, logsnr: torch.Tensor, prediction: str) -> torch.Tensor:
    """eps target, or v = alpha eps - sigma x."""
    if prediction == "eps":
        return noise
    alpha, sigma = (_bc(a) for a in alpha_sigma(logsnr))
    return alpha * noise - sigma * x


def diffusion_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Simple (unweighted) MSE on the predicted quantity, Ho et al. 2020 L_simple."""
    return F.mse_loss(pred.float(), target.float())

"""Resampling and noise-conditioning augmentation shared by training and sampling, so the
super-resolution stages see exactly the same kind of conditioning in both.

Images are float tensors (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .diffusion import q_sample
from .schedule import LogSNR


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased bicubic downsampling: how training makes the low-res input of an SR stage."""
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear upsampling of the low-res image to the SR stage's resolution (concatenated to z_t)."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def augment_lowres(
    lowres_up: torch.Tensor, aug_level: torch.Tensor, logsnr_fn: LogSNR, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise-conditioning augmentation (paper sec. 2.5): corrupt the upsampled low-res image with
    the stage's own forward process at time aug_level in [0, 1]; return it and its log-SNR (B,),
    which the SR U-Net is conditioned on."""
    aug_logsnr = logsnr_fn(aug_level)
    return q_sample(lowres_up, aug_logsnr, noise), aug_logsnr


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8, rounding to nearest."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

"""Samplers: plain functions sharing one signature (as in k-diffusion).

    sampler(denoise, z, logsnrs, noise) -> x

denoise(z, logsnr) -> x0_hat   the guided, thresholded prediction of the clean image;
                                z is (B, C, H, W), logsnr is (B,).
z                               starting noise z_T, (B, C, H, W).
logsnrs                         (steps + 1,) increasing log-SNR grid from t = 1 to t = 0.
noise()                         fresh standard-normal noise shaped like z (per-sample seeded).

The last step returns x0_hat itself (the posterior variance there is ~0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .diffusion import eps_from_x0
from .schedule import alpha_sigma

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseFn = Callable[[], torch.Tensor]
Sampler = Callable[[Denoiser, torch.Tensor, torch.Tensor, NoiseFn], torch.Tensor]


def _full(value: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return value.to(z.dtype).expand(z.shape[0])


def ddpm_step(
    z: torch.Tensor, x0: torch.Tensor, logsnr_t: torch.Tensor, logsnr_s: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Ancestral step t -> s < t from the posterior q(z_s | z_t, x0) (VDM appendix A):
    c = 1 - SNR_t / SNR_s;  mean = alpha_s (z_t (1 - c) / alpha_t + c x0);  var = sigma_s^2 c."""
    alpha_t, _ = alpha_sigma(logsnr_t)
    alpha_s, sigma_s = alpha_sigma(logsnr_s)
    c = -torch.special.expm1(logsnr_t - logsnr_s)
    mean = alpha_s * (z * (1.0 - c) / alpha_t + c * x0)
    return mean + (sigma_s * c.sqrt()) * noise


def ddim_step(z: torch.Tensor, x0: torch.Tensor, logsnr_t: torch.Tensor, logsnr_s: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (eta = 0, Song et al. 2021): z_s = alpha_s x0 + sigma_s eps_hat."""
    alpha_s, sigma_s = alpha_sigma(logsnr_s)
    eps = eps_from_x0(x0, z, logsnr_t.expand(z.shape[0]))
    return alpha_s * x0 + sigma_s * eps


@torch.no_grad()
def _walk(denoise: Denoiser, z: torch.Tensor, logsnrs: torch.Tensor, step) -> torch.Tensor:
    """Shared loop: predict x0 at each grid point, move to the next with `step`, return x0 at the end."""
    last = len(logsnrs) - 2
    for i in range(last + 1):
        x0 = denoise(z, _full(logsnrs[i], z))
        if i == last:
            return x0
        z = step(z, x0, logsnrs[i], logsnrs[i + 1])
    return z


def ddpm(denoise: Denoiser, z: torch.Tensor, logsnrs: torch.Tensor, noise: NoiseFn) -> torch.Tensor:
    return _walk(denoise, z, logsnrs, lambda z, x0, lt, ls: ddpm_step(z, x0, lt, ls, noise()))


def ddim(denoise: Denoiser, z: torch.Tensor, logsnrs: torch.Tensor, noise: NoiseFn) -> torch.Tensor:
    return _walk(denoise, z, logsnrs, ddim_step)


SAMPLERS: dict[str, Sampler] = {"ddpm": ddpm, "ddim": ddim}


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]

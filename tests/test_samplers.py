"""One DDPM and one DDIM step against an independent float64 reference written in the discrete
alpha-bar notation of Ho et al. 2020 / Song et al. 2021 (not the log-SNR form the code uses)."""

import numpy as np
import pytest
import torch

from imagen.config import DiffusionConfig
from imagen.samplers import ddim, ddim_step, ddpm, ddpm_step, get_sampler
from imagen.schedule import make_logsnr


def analytic_x0(z: torch.Tensor) -> torch.Tensor:
    """A dummy 'model' with a known closed form."""
    return torch.tanh(z) * 0.7


def ref_ddpm_step(z, x0, abar_t, abar_s, noise):
    """Ho et al. eq. 6-7 for a jump t -> s: alpha = abar_t / abar_s, beta = 1 - alpha;
    mu = sqrt(abar_s) beta / (1 - abar_t) x0 + sqrt(alpha) (1 - abar_s) / (1 - abar_t) z;
    var = (1 - abar_s) / (1 - abar_t) beta."""
    alpha = abar_t / abar_s
    beta = 1 - alpha
    mu = np.sqrt(abar_s) * beta / (1 - abar_t) * x0 + np.sqrt(alpha) * (1 - abar_s) / (1 - abar_t) * z
    return mu + np.sqrt((1 - abar_s) / (1 - abar_t) * beta) * noise


def ref_ddim_step(z, x0, abar_t, abar_s):
    """Song et al. eq. 12 with sigma = 0."""
    eps = (z - np.sqrt(abar_t) * x0) / np.sqrt(1 - abar_t)
    return np.sqrt(abar_s) * x0 + np.sqrt(1 - abar_s) * eps


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("t,s", [(0.9, 0.8), (0.5, 0.45), (0.2, 0.1)])
def test_single_steps_match_float64_reference(schedule, t, s):
    logsnr = make_logsnr(DiffusionConfig(schedule=schedule))
    lt, ls = logsnr(torch.tensor(t, dtype=torch.float64)), logsnr(torch.tensor(s, dtype=torch.float64))
    abar_t, abar_s = (1 / (1 + np.exp(-float(v))) for v in (lt, ls))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 4, 4, generator=g)
    noise = torch.randn(2, 3, 4, 4, generator=g)
    x0 = analytic_x0(z)
    ours = ddpm_step(z, x0, lt.float(), ls.float(), noise).double().numpy()
    ref = ref_ddpm_step(z.double().numpy(), x0.double().numpy(), abar_t, abar_s, noise.double().numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)
    ours = ddim_step(z, x0, lt.float(), ls.float()).double().numpy()
    ref = ref_ddim_step(z.double().numpy(), x0.double().numpy(), abar_t, abar_s)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)


def test_samplers_share_one_signature_and_return_x0_on_last_step():
    logsnrs = make_logsnr(DiffusionConfig())(torch.linspace(1, 0, 5, dtype=torch.float64)).float()
    z = torch.randn(2, 3, 4, 4)
    calls = []

    def denoise(zz, lam):
        calls.append(lam.shape)
        return analytic_x0(zz)

    for sampler in (ddpm, ddim):
        calls.clear()
        out = sampler(denoise, z, logsnrs, lambda: torch.zeros_like(z))
        assert out.shape == z.shape and len(calls) == 4 and calls[0] == (2,)
    with pytest.raises(ValueError, match="ddpm, ddim"):
        get_sampler("euler")


def test_schedules_are_monotone_and_hit_their_ends():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for name in ("cosine", "linear"):
        lam = make_logsnr(DiffusionConfig(schedule=name))(t)
        assert torch.all(lam[1:] <= lam[:-1])
    lam = make_logsnr(DiffusionConfig(schedule="cosine"))(torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(lam, torch.tensor([20.0, -20.0], dtype=torch.float64))

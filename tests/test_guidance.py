import numpy as np
import pytest
import torch

from imagen.guidance import Thresholding, classifier_free_guidance, dynamic_threshold, static_threshold


def paper_dynamic_threshold(x0: np.ndarray, p: float) -> np.ndarray:
    """Saharia et al. 2022 sec. 2.3, written out per sample in float64: s = p-th percentile of |x0|;
    s = max(s, 1); x0 = clip(x0, -s, s) / s."""
    out = np.empty_like(x0)
    for i, x in enumerate(x0):
        s = max(np.percentile(np.abs(x), p), 1.0)
        out[i] = np.clip(x, -s, s) / s
    return out


@pytest.mark.parametrize("p", [90.0, 99.5, 100.0])
def test_dynamic_threshold_equals_paper_definition(p):
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.3, 1, 2, 4, 10]).view(
        -1, 1, 1, 1
    )
    ours = dynamic_threshold(x, p).double().numpy()
    ref = paper_dynamic_threshold(x.double().numpy(), p)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
    # samples saturating more are scaled down more: the 10x sample ends inside [-1, 1]
    assert ours[4].max() <= 1.0 + 1e-6 and ours[4].min() >= -1.0 - 1e-6


def test_static_threshold_is_clip():
    x = torch.linspace(-3, 3, 61).view(1, 1, 1, -1)
    assert torch.equal(static_threshold(x), x.clamp(-1, 1))


def test_dynamic_equals_static_when_inside_unit_box():
    x = torch.rand(4, 3, 8, 8) * 2 - 1  # every |x| <= 1 -> s = 1
    assert torch.equal(dynamic_threshold(x, 99.5), static_threshold(x))
    assert torch.equal(Thresholding("dynamic")(x), Thresholding("static")(x))


def test_none_is_identity_and_bad_modes_rejected():
    x = torch.randn(2, 3, 4, 4) * 5
    assert torch.equal(Thresholding("none")(x), x)
    with pytest.raises(ValueError, match="none, static, dynamic"):
        Thresholding("clip")
    with pytest.raises(ValueError, match="percentile"):
        Thresholding("dynamic", percentile=0.0)


def test_guidance_weight_one_is_conditional_and_formula():
    c, u = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(classifier_free_guidance(c, u, 1.0), c)
    assert torch.equal(classifier_free_guidance(c, u, 0.0), u)
    torch.testing.assert_close(classifier_free_guidance(c, u, 3.0), u + 3.0 * (c - u))

"""`imagen-bench gpu-hours`: IF's real-size networks built from their published configs (checked by
the parameter counts their model cards state), and the estimate's arithmetic on known FLOPs."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers", reason='diffusers is not installed (optional extra: pip install -e ".[diffusers]")')


@pytest.mark.parametrize("name, card", [("if-i-xl", 4.3e9), ("if-ii-l", 1.2e9), ("x4-upscaler", 473e6)])
def test_the_configs_build_the_published_sizes(name, card):
    """IF-I-XL "4.3B", IF-II-L "1.2B" (DeepFloyd's model cards), the x4 upscaler's U-Net 473 M."""
    import torch
    from diffusers import UNet2DConditionModel

    from bench.models.diffusers_flops import UNETS

    with torch.device("meta"):
        params = sum(p.numel() for p in UNet2DConditionModel(**UNETS[name]).parameters())
    assert params == pytest.approx(card, rel=0.04)


def test_estimate_is_flops_over_peak_times_share(monkeypatch, capsys):
    """The COCO recipe on made-up FLOPs: stage I 1 TFLOP per call, stage II 2, T5 0.5 per prompt."""
    from bench.models import diffusers_flops as F
    from bench.sweep import cost
    from imagen_bench.cli import main

    fake = {
        "if-i-xl": F.NetworkFlops("if-i-xl", 1, 1e12, 0.5e12, 0.0),
        "if-ii-l": F.NetworkFlops("if-ii-l", 1, 2e12, 0.0, 0.0),
    }
    monkeypatch.setattr(F, "network_flops", fake.__getitem__)
    costs = cost.estimate("bench/specs/if_coco_fid30k.toml")
    assert [c.images for c in costs] == [30_000] * 4
    peak = cost.MEASURED_PEAK
    for c, w in zip(costs, (1.0, 3.0, 5.0, 7.0)):
        g = 2 if w > 1 else 1  # guidance 1 runs no unconditional branch
        one = (100 * 1e12 * g) / (peak * 0.39) + 1e12 / (peak * 0.39)  # 100 steps + T5 for the prompt and ""
        two = [50 * 2e12 * 2 / (peak * s) for s in (0.27, 0.25)]  # stage II: 50 steps at w = 4, SR shares
        assert c.seconds == pytest.approx((one + two[0], one + two[1]))
        assert c.stage_flops == pytest.approx((100 * 1e12 * g + 1e12, 50 * 2e12 * 2))
    low, high = cost.gpu_hours(costs, cost.GPU_KINDS[0])
    assert low == pytest.approx(sum(30_000 * c.seconds[0] for c in costs) / 3600)
    assert main(["gpu-hours", "bench/specs/if_coco_fid30k.toml"]) == 0
    out = capsys.readouterr().out
    assert "not a run" in out and f"H200: {low:,.1f}-{high:,.1f} GPU-hours (measured" in out


def test_unknown_networks_and_too_few_are_refused():
    from bench.sweep import cost

    with pytest.raises(ValueError, match=r"networks if-i-m: allowed: if-i-xl, if-ii-l, x4-upscaler"):
        cost.estimate("bench/specs/if_coco_fid30k.toml", ("if-i-m",))
    with pytest.raises(
        ValueError, match=r"networks if-ii-l, if-i-xl: if-i-xl first \(stage I\), then if-ii-l / x4-upscaler"
    ):
        cost.estimate("bench/specs/if_coco_fid30k.toml", ("if-ii-l", "if-i-xl"))
    with pytest.raises(ValueError, match=r"runs 2 stages but 1 networks were named: if-i-xl"):
        cost.estimate("bench/specs/if_coco_fid30k.toml", ("if-i-xl",))

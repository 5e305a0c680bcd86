"""A tiny random 3-stage cascade (imagen.presets.tiny, 8 -> 16 -> 32 px) saved the way
`imagen-bench train` saves one, and a sweep spec writer for it: self-contained sweeps for the
trials (kill-sweep, fuzz) and the sweep tests (tests/sweep_fixtures.py imports these)."""

from __future__ import annotations

from pathlib import Path

import torch

from imagen.checkpoint import save_cascade_index, save_stage
from imagen.presets import tiny
from imagen.unet import EfficientUNet


def make_tiny_checkpoint(directory: Path) -> Path:
    cfg = tiny()
    for i, stage in enumerate(cfg.stages):
        # seeded: the same weights in every process (the init draws from the global RNG, which tests
        # and sweeps before it have moved; an unseeded init made the leaderboard's seed test flaky)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(i)
            unet = EfficientUNet(stage.unet)
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():  # zero-initialised output layers would give constant images
            for p in unet.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        save_stage(directory / stage.name, stage, cfg.text_encoder, unet.state_dict(), {"step": 0})
    save_cascade_index(directory, cfg)
    return directory


def tiny_spec(
    checkpoint: Path,
    guidance=(1.0, 3.0),
    thresholding=("static", "dynamic"),
    samples: int = 2,
    metrics: bool = True,
    extra: str = "",
) -> str:
    """The sweep tests' spec: DrawBench "Rare Words" x guidance x thresholding; `metrics` adds the
    tests' "brightness" metric (registered by the tests, not by bench.metrics)."""
    g = ", ".join(f"{x:g}" for x in guidance)
    t = ", ".join(f'"{x}"' for x in thresholding)
    return (
        f'''
[sweep]
name = "tiny"
samples_per_prompt = {samples}

[[models]]
name = "tiny"
kind = "imagen"
checkpoint = "{checkpoint}"
batch_size = 3
precision = "fp32"
[models.stages.sr32]
steps = 2

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]

[grid]
steps = [3]
guidance = [{g}]
thresholding = [{t}]
'''
        + (
            """
[[metrics]]
name = "brightness"
"""
            if metrics
            else ""
        )
        + extra
    )

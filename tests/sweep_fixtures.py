"""Tiny components for the sweep tests: a random 3-stage cascade checkpoint (imagen.presets.tiny,
8 -> 16 -> 32 px) saved the way `imagen-bench train` saves one, a spec writer, and a small real
metric (mean brightness per image, synced across ranks) so runner tests need no metric weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.metrics.base import KeyedStates, MetricResult, SumCount


def make_tiny_checkpoint(directory: Path) -> Path:
    from imagen.checkpoint import save_cascade_index, save_stage
    from imagen.presets import tiny
    from imagen.unet import EfficientUNet

    cfg = tiny()
    for i, stage in enumerate(cfg.stages):
        unet = EfficientUNet(stage.unet)
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():  # zero-initialised output layers would give constant images
            for p in unet.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        save_stage(directory / stage.name, stage, cfg.text_encoder, unet.state_dict(), {"step": 0})
    save_cascade_index(directory, cfg)
    return directory


def tiny_spec(checkpoint: Path, guidance=(1.0, 3.0), thresholding=("static", "dynamic"), samples: int = 2,
              metrics: bool = True, extra: str = "") -> str:
    g = ", ".join(f"{x:g}" for x in guidance)
    t = ", ".join(f'"{x}"' for x in thresholding)
    return f'''
[sweep]
name = "tiny"
samples_per_prompt = {samples}

[[models]]
name = "tiny"
kind = "imagen"
checkpoint = "{checkpoint}"
batch_size = 3
bf16 = false
[models.stages.sr32]
steps = 2

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]

[grid]
steps = [3]
guidance = [{g}]
thresholding = [{t}]
''' + ('''
[[metrics]]
name = "brightness"
''' if metrics else "") + extra


class Brightness:
    """Mean pixel value / 255 per image; per-cell mean via a synced SumCount."""

    name = "brightness"
    built = 0  # how many times the sweep built this metric (cache tests)

    def __init__(self):
        Brightness.built += 1
        self.states = KeyedStates(SumCount)

    def update(self, images):
        out = []
        for im in images:
            v = float(np.asarray(im.image, dtype=np.float64).mean() / 255.0)
            self.states[im.cell_id].update(torch.tensor([v]))
            out.append({"brightness": v})
        return out

    def compute(self):
        results = []
        for _, state in self.states.synced_items():
            total, n = state.compute()
            results.append(MetricResult("brightness", total / n if n else None, n, {"what": "mean pixel / 255"}))
        return results

    def reset(self):
        self.states.reset()


def build_test_metric(name, options=None, *, cache_dir=None):
    if name != "brightness":
        raise ValueError(f"unknown metric {name!r}; choose one of brightness")
    return Brightness()

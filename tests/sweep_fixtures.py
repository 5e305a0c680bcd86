"""Tiny components for the sweep tests: a random 3-stage cascade checkpoint (imagen.presets.tiny,
8 -> 16 -> 32 px) saved the way `imagen-bench train` saves one, a spec writer, and a small real
metric (mean brightness per image, synced across ranks) so runner tests need no metric weights."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.metrics.base import KeyedStates, MetricResult, SumCount
from bench.trials.tiny_cascade import make_tiny_checkpoint, tiny_spec  # noqa: F401  (shared with the trials)


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
    rank = os.environ.get("RANK")
    if rank is not None and cache_dir is not None:  # under torchrun: the order of builds across ranks
        with open(Path(cache_dir) / "metric-builds.log", "a") as f:
            f.write(f"start {rank}\n")
            f.flush()
            time.sleep(0.5)  # a build that takes a while: another rank starting now would overlap it
            f.write(f"end {rank}\n")
    return Brightness()

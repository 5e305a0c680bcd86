"""Shared by the runner scripts: the settings they receive, timing of the sampling loop under each
(bf16 autocast, channels_last) variant, FLOP counting, and the one-line JSON result.

Runs in either venv, so it imports only the standard library and torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
from torch.utils.flop_counter import FlopCounterMode

MARKER = "PERF-RESULT "


@dataclass(frozen=True)
class StageBench:
    """What every implementation is asked to do (one sampling loop = `batch` images)."""

    batch: int = 8  # images per sampling loop; with guidance the U-Net sees 2 x batch
    steps: int = 32
    guidance: float = 3.0  # w in eps = w eps(z, c) + (1 - w) eps(z); != 1 doubles the batch
    resolution: int = 16
    channels: int = 3
    text_len: int = 32  # tokens x dim of the text-conditioning context (MiniLM: 32 x 384)
    text_dim: int = 384
    param_target: int = 0  # peers pick their width so their U-Net has about this many parameters
    repeats: int = 3
    warmup: int = 1
    threads: int = 1
    device: str = "cpu"
    variants: tuple[tuple[bool, bool], ...] = ((True, True),)  # (bf16 autocast, channels_last) to try
    checkpoint: str = ""  # ours only: the cascade whose base stage is timed

    @classmethod
    def from_json(cls, text: str) -> StageBench:
        raw = json.loads(text)
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        if "variants" in raw:
            raw["variants"] = tuple((bool(a), bool(b)) for a, b in raw["variants"])
        return cls(**raw)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def parse_settings() -> StageBench:
    p = argparse.ArgumentParser(description="time one sampling loop (see selfcheck/perf/peers/__init__.py)")
    p.add_argument("--settings", required=True, help="StageBench as JSON")
    s = StageBench.from_json(p.parse_args().settings)
    torch.set_num_threads(s.threads)
    torch.manual_seed(0)
    return s


def autocast(device: str, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def random_context(s: StageBench) -> tuple[torch.Tensor, torch.Tensor]:
    """Text encodings are not timed for anyone: random (B, L, D) embeddings, all-True (B, L) mask."""
    g = torch.Generator().manual_seed(1)
    text = torch.randn(s.batch, s.text_len, s.text_dim, generator=g).to(s.device)
    return text, torch.ones(s.batch, s.text_len, dtype=torch.bool, device=s.device)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def closest_width(build: Callable[[int], torch.nn.Module], target: int, widths: range) -> tuple[int, int]:
    """(width, params) whose model's parameter count is closest to `target` (built on the meta
    device: no memory, no init cost)."""
    best = None
    for w in widths:
        with torch.device("meta"):
            n = param_count(build(w))
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (w, n)
    return best


def count_flops(fn: Callable[[], object]) -> int:
    """FLOP of one call (matmuls and convolutions, as torch.utils.flop_counter counts them)."""
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
    return int(counter.get_total_flops())


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_variants(s: StageBench, make_loop: Callable[[bool, bool], Callable[[], object]]) -> dict:
    """Times `make_loop(bf16, channels_last)()` (one full sampling loop of `batch` images) for each
    variant: `warmup` untimed runs, then `repeats` timed. Returns every variant's raw seconds and
    which variant was fastest (the one reported: each implementation at its best here)."""
    out = {}
    for bf16, cl in s.variants:
        loop = make_loop(bf16, cl)
        secs = []
        with torch.inference_mode():
            for i in range(s.warmup + s.repeats):
                t0 = time.perf_counter()
                loop()
                sync(s.device)
                if i >= s.warmup:
                    secs.append(time.perf_counter() - t0)
        med = statistics.median(secs)
        out[f"bf16={bf16},channels_last={cl}"] = {
            "bf16": bf16,
            "channels_last": cl,
            "seconds": secs,
            "median_seconds": med,
            "images_per_second": s.batch / med,
        }
    best = max(out, key=lambda k: out[k]["images_per_second"])
    return {"variants": out, "best": best}


def emit(result: dict) -> None:
    result = {**result, "torch": torch.__version__, "threads": torch.get_num_threads(), "pid": os.getpid()}
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()

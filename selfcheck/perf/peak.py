"""Peak: this machine's matmul FLOP/s, the physical anchor for the sampling section.

A square n x n @ n x n matmul is 2 n^3 FLOP (n^3 multiply-adds). 2048 is large enough for the
BLAS / oneDNN kernels to reach their steady rate on 2 cores (~0.1-1 s a product here) and small
enough for 3 x 16 MiB fp32 operands to stay in memory comfortably; --quick uses 512.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .results import Row, Section, time_it

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class PeakSettings:
    n: int = 2048
    repeats: int = 5
    # each timed run repeats the product until it lasts >= this long: a bf16 product can take ~2 ms
    # here (AMX), and single-product timings on a shared machine scatter by 5x
    min_run_seconds: float = 0.25
    warmup: int = 1
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n < 16 or self.repeats < 1:
            raise ValueError(f"peak: n >= 16 and repeats >= 1 required, got n={self.n}, repeats={self.repeats}")
        unknown = set(self.dtypes) - set(DTYPES)
        if unknown:
            raise ValueError(f"peak: unknown dtypes {sorted(unknown)}; choose from {', '.join(DTYPES)}")


def matmul_flops(settings: PeakSettings, dtype: str) -> dict:
    """Median FLOP/s of C = A @ B, A, B: (n, n) random in `dtype` on the device."""
    n, dev = settings.n, torch.device(settings.device)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev, DTYPES[dtype])
    b = torch.randn(n, n, generator=g).to(dev, DTYPES[dtype])
    out = torch.empty(n, n, device=dev, dtype=DTYPES[dtype])

    inner = 1

    def run() -> None:
        for _ in range(inner):
            torch.matmul(a, b, out=out)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        one = time_it(run, 3, settings.warmup).median  # calibration (also the warm-up)
        inner = max(1, math.ceil(settings.min_run_seconds / max(one, 1e-6)))
        t = time_it(run, settings.repeats, 0, items=inner)
    flop = 2 * n**3
    return {**t.as_dict("matmul"), "n": n, "flop_per_matmul": flop, "flops_per_second": flop * t.rate}


def measure(settings: PeakSettings) -> Section:
    sec = Section("peak", settings={**settings.__dict__, "threads": torch.get_num_threads()})
    for dt in settings.dtypes:
        sec.measurements[dt] = matmul_flops(settings, dt)
        sec.rows.append(
            Row(f"matmul peak {dt} ({settings.n}^2)", sec.measurements[dt]["flops_per_second"] / 1e9, "GFLOP/s")
        )
    sec.notes.append("FLOP of one n x n matmul = 2 n^3; median of the repeats; torch's configured threads")
    return sec


def peak_flops(section: Section | None, dtype: str) -> float | None:
    if section is None or dtype not in section.measurements:
        return None
    return section.measurements[dtype]["flops_per_second"]

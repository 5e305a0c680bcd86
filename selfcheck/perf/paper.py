"""Paper: the paper-size U-Nets (imagen.presets "paper": 2 B base at 64^2, 600 M SR 64 -> 256,
400 M SR 256 -> 1024), random weights, timed on one guided denoiser call, the sampler's real call
(imagen.pipeline.make_denoiser: conditional + unconditional as one batch of 2B, thresholding
included), eager and under each torch.compile mode asked for.

Reported per stage: achieved FLOP/s (torch.utils.flop_counter's count of one call / median
seconds) as a share of the matmul peak measured in the same run for the precision that ran;
for a compile mode also its first call (compilation included), the speed-up and the break-even:
the number of calls after which compiling has paid for itself,
    (first_call - t_compiled) / (t_eager - t_compiled).

Issue 18's goals, for a GPU at a batch that fills it: base >= 60 %, SR stages >= 45 % of the bf16
peak (by hand on an H200: eager 39 / 27 / 25 %, base compiled 68 % after an 81 s first call).
Targets are set only there (device cuda, full size); on a CPU the paper-size stages take minutes
per call, so `--quick` scales widths and resolutions down and the numbers check the code path only.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from imagen.config import COMPILE_MODES
from imagen.device import compile_unet
from imagen.pipeline import Runtime, StageSampling, make_denoiser
from imagen.presets import paper
from imagen.unet import EfficientUNet

from .peers._common import count_flops
from .results import Row, Section, time_it

TARGETS = {"base": 60.0, "sr256": 45.0, "sr1024": 45.0}  # % of the bf16 matmul peak (issue 18)
STAGES = tuple(TARGETS)


@dataclass(frozen=True)
class PaperSettings:
    stages: tuple[str, ...] = STAGES
    # images per call (guided: the U-Net sees 2x): base 2x64 and sr1024 2x4 are the batches measured
    # by hand on an H200 (141 GB); sr256 2x16 sits between them in activation memory
    batch: tuple[int, ...] = (64, 16, 4)
    scale: int = 1  # widths (dim, cond_dim, text dim, head dim) divided by this: CPU smoke runs only
    resolution_scale: int = 1  # resolutions divided by this (base 64 -> 64 / k, ...)
    compile: tuple[str, ...] = ("off", "default")  # "off" = eager, always measured first
    guidance: float = 3.0
    repeats: int = 5
    warmup: int = 2
    device: str = "cpu"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.stages) - set(STAGES)) + sorted(set(self.compile) - set(COMPILE_MODES))
        if unknown:
            raise ValueError(
                f"paper: unknown stages or compile modes {unknown}; stages {', '.join(STAGES)}, "
                f"compile modes {', '.join(COMPILE_MODES)}"
            )
        if len(self.batch) != len(self.stages) or min(self.batch) < 1:
            raise ValueError(f"paper: one batch >= 1 per stage ({len(self.stages)}), got {self.batch}")
        if self.scale < 1 or self.resolution_scale < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("paper: scale, resolution_scale, repeats >= 1 and warmup >= 0 required")

    @property
    def full_size(self) -> bool:
        return self.scale == 1 and self.resolution_scale == 1


def stage_config(name: str, scale: int = 1, resolution_scale: int = 1):
    """The paper preset's stage `name`, widths / resolutions divided for a smoke run."""
    stage = {s.name: s for s in paper().stages}[name]
    if scale == 1 and resolution_scale == 1:
        return stage
    u = stage.unet
    unet = dataclasses.replace(
        u,
        dim=u.dim // scale,
        cond_dim=u.cond_dim // scale,
        text_embed_dim=u.text_embed_dim // scale,
        attn_head_dim=max(8, u.attn_head_dim // scale),
        num_groups=8,
    )
    low = stage.lowres_resolution // resolution_scale if stage.lowres_resolution else stage.lowres_resolution
    return dataclasses.replace(
        stage, unet=unet, resolution=stage.resolution // resolution_scale, lowres_resolution=low
    )


def payback(eager_seconds: float, compiled_seconds: float, first_call_seconds: float) -> dict:
    """Speed-up of a compiled call and the calls after which compiling has paid for itself: the
    first call costs first_call_seconds instead of eager_seconds, every later one saves
    eager - compiled, so n calls cost the same when
        first + (n - 1) compiled = n eager  <=>  n = (first - compiled) / (eager - compiled).
    None when compiled calls are not faster (it never pays back)."""
    gain = eager_seconds - compiled_seconds
    return {
        "speedup": eager_seconds / compiled_seconds,
        "break_even_calls": (first_call_seconds - compiled_seconds) / gain if gain > 0 else None,
    }


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure_stage(s: PaperSettings, name: str, batch: int, peak: dict[str, float | None]) -> dict:
    """One stage: eager and compiled timings of a guided denoiser call, FLOP, shares of the peak."""
    stage = stage_config(name, s.scale, s.resolution_scale)
    rt = Runtime(device=s.device).resolved()  # precision / memory format "auto": what a user gets here
    torch.manual_seed(0)
    with torch.device(rt.device):  # built where it runs: the 2 B base is 8 GB in float32
        unet = EfficientUNet(stage.unet).eval()
    if rt.channels_last:
        unet.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    r, text_len = stage.resolution, max(8, 128 // s.scale)  # the paper's 128 T5 tokens
    text = torch.randn(batch, text_len, stage.unet.text_embed_dim, generator=g).to(rt.device)
    mask = torch.ones(batch, text_len, dtype=torch.bool, device=rt.device)
    lowres = aug = None
    if stage.is_super_resolution:
        lowres = torch.randn(batch, 3, r, r, generator=g).to(rt.device)
        aug = torch.zeros(batch, device=rt.device)
    z = torch.randn(batch, 3, r, r, generator=g).to(rt.device)
    logsnr = torch.zeros(batch, device=rt.device)
    sampling = StageSampling(guidance=s.guidance)

    flop = count_flops(lambda: make_denoiser(unet, stage, text, mask, sampling, rt, lowres, aug)(z, logsnr))
    dtype = "bfloat16" if rt.precision == "bf16" else "float32"
    out = {
        "params": sum(p.numel() for p in unet.parameters()),
        "resolution": r,
        "batch": batch,
        "unet_batch": 2 * batch,
        "precision": rt.precision,
        "memory_format": rt.memory_format,
        "flop_per_call": flop,
        "peak_dtype": dtype,
        "peak_flops_per_second": peak.get(dtype),
        "modes": {},
    }
    for mode in s.compile:
        denoise = make_denoiser(compile_unet(unet, mode), stage, text, mask, sampling, rt, lowres, aug)

        def call(denoise=denoise) -> None:
            denoise(z, logsnr)
            _sync(rt.device)

        with torch.inference_mode():
            t0 = time.perf_counter()
            call()  # compiled: compilation for this shape happens here
            first = time.perf_counter() - t0
            t = time_it(call, s.repeats, s.warmup)
        rate = flop / t.median
        out["modes"][mode] = {
            **t.as_dict("call"),
            "first_call_seconds": first,
            "achieved_flops_per_second": rate,
            "peak_share_percent": 100 * rate / peak[dtype] if peak.get(dtype) else None,
        }
    eager = out["modes"].get("off")
    for mode, m in out["modes"].items():
        if mode != "off" and eager:
            m.update(payback(eager["median_seconds"], m["median_seconds"], m["first_call_seconds"]))
    torch._dynamo.reset()  # compiled graphs hold the stage's weights; free them before the next one
    if torch.device(rt.device).type == "cuda":
        torch.cuda.empty_cache()
    return out


def measure(s: PaperSettings, peak: dict[str, float | None]) -> Section:
    sec = Section("paper", settings={**dataclasses.asdict(s), "threads": torch.get_num_threads()})
    targets = s.full_size and torch.device(s.device).type == "cuda"
    if not s.full_size:
        sec.notes.append(
            f"scaled down (widths / {s.scale}, resolutions / {s.resolution_scale}): a check of the code path, "
            "not the paper-size numbers"
        )
    if "off" not in s.compile:
        s = dataclasses.replace(s, compile=("off", *s.compile))  # the eager baseline is always measured
    for name, batch in zip(s.stages, s.batch):
        m = sec.measurements[name] = measure_stage(s, name, batch, peak)
        for mode, t in m["modes"].items():
            label = f"{name} ({m['params'] / 1e6:.0f} M, 2x{batch} at {m['resolution']}^2) {'eager' if mode == 'off' else mode}"
            if t["peak_share_percent"] is not None:
                sec.rows.append(
                    Row(
                        f"{label}: % of {m['peak_dtype']} peak",
                        t["peak_share_percent"],
                        "%",
                        TARGETS[name] if targets else None,
                        note=f"{t['achieved_flops_per_second'] / 1e12:.3g} TFLOP/s, {t['median_seconds'] * 1e3:.1f} ms per call",
                    )
                )
            if mode != "off":
                sec.rows.append(
                    Row(
                        f"{label}: speed-up over eager",
                        t["speedup"],
                        "x",
                        note=f"first call {t['first_call_seconds']:.1f} s (compilation); "
                        + (
                            f"pays back after {t['break_even_calls']:.0f} calls"
                            if t["break_even_calls"] is not None
                            else "never pays back"
                        ),
                    )
                )
    sec.notes.append(
        "one guided denoiser call (U-Net batch 2B + guidance + thresholding); FLOP = torch.utils.flop_counter "
        "(matmuls, convolutions); precision and memory format as `auto` resolves on this device"
    )
    return sec

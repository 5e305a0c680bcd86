"""The cascade pipeline: prompts -> frozen text encoder -> base stage -> SR stages -> uint8 images.

    1. encode the prompts once (shared by every stage, cached by the encoder);
    2. base stage: sample z ~ N(0, I) at the base resolution, per-sample seeded;
    3. each SR stage: upsample the previous image, apply noise-conditioning augmentation at the
       stage's aug_level, and sample at the stage's resolution conditioned on it;
    4. convert the last stage's x0 to uint8.

Each stage has its own sampling settings (steps, sampler, guidance weight, thresholding, aug level).
Determinism: identical (prompt, seed, settings, device, precision) and the same batch composition
give identical images. Across batch sizes a convolution's last bits can differ (docs/devices.md:
on CPU float32 ~1e-6 in the U-Net output, one level on 8 of 1.6 M subpixels of the shipped cascade;
on an H200 up to 9/255 in float32 and 35/255 in bf16), so sweeps fix batch composition (one unit
of work = one batch of one cell, for any number of ranks or resumes).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from common.errors import check_choice

from .conditioning import augment_lowres, to_uint8, upsample
from .config import COMPILE_MODES, MEMORY_FORMATS, PRECISIONS, CascadeConfig, StageConfig
from .device import Placement, autocast, compile_unet, resolve, use_deterministic_algorithms
from .diffusion import x0_from_prediction
from .guidance import Thresholding, classifier_free_guidance
from .samplers import Denoiser, get_sampler
from .schedule import make_logsnr
from .seeding import PerSampleNoise
from .unet import EfficientUNet

MAX_STEPS = 10_000  # 10x the paper's 1,000 training steps; more only allocates (a schedule of 10^12 steps is 8 TB)


@dataclass(frozen=True)
class StageSampling:
    steps: int = 32
    sampler: str = "ddpm"
    guidance: float = 1.0  # w in eps~ = w eps(z,c) + (1-w) eps(z); 1 = no guidance
    thresholding: Thresholding = field(default_factory=Thresholding)
    aug_level: float = 0.0  # SR stages only: noise-conditioning augmentation level in [0, 1]

    def __post_init__(self) -> None:
        get_sampler(self.sampler)  # validates the name
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be in [1, {MAX_STEPS}], got {self.steps}")
        if not math.isfinite(self.guidance):  # nan / inf guidance would turn every image black
            raise ValueError(f"guidance must be a finite number, got {self.guidance}")
        if not 0.0 <= self.aug_level <= 1.0:
            raise ValueError(f"aug_level must be in [0, 1], got {self.aug_level}")


STAGE_KEYS = ("steps", "sampler", "guidance", "aug_level", "thresholding", "percentile")  # what a stage's sampling sets


def stage_samplings(stage_names: Sequence[str], base: Mapping[str, Any],
                    overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[StageSampling]:
    """One StageSampling per stage, from typed values: `base` (every key of STAGE_KEYS) for all
    stages, then each stage's `overrides` (stage name -> {key: value}), e.g. the sweep's
    {"sr256": {"steps": 16}} or the `sample` command's parsed --set STAGE.KEY=VALUE."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(stage_names))
    if unknown:
        raise ValueError(f"sampling settings for unknown stages {unknown}; stages: {', '.join(stage_names)}")
    out = []
    for name in stage_names:
        values = {**base, **overrides.get(name, {})}
        bad = sorted(set(values) ^ set(STAGE_KEYS))
        if bad:
            raise ValueError(f"stage {name!r}: sampling keys {bad} unknown or missing; the keys are {', '.join(STAGE_KEYS)}")
        thresholding = Thresholding(mode=values["thresholding"], percentile=values["percentile"])
        out.append(StageSampling(steps=values["steps"], sampler=values["sampler"], guidance=values["guidance"],
                                 aug_level=values["aug_level"], thresholding=thresholding))
    return out


@dataclass(frozen=True)
class Runtime:
    """Where and how to run; nothing is hard-wired to CPU. "auto" values are resolved by
    imagen.device (bf16 only where it is fast; channels_last on CPU, contiguous on CUDA)."""

    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | bf16 (autocast) | fp32
    memory_format: str = "auto"  # auto | channels_last | contiguous
    batch_size: int = 8  # small batches are fastest per image on 2 cores
    # torch's deterministic algorithms (imagen.device.use_deterministic_algorithms): bit-exact CUDA
    # reruns at some speed cost; CPU results are deterministic without it
    deterministic: bool = False
    # "off" (eager) or a torch.compile mode for every U-Net (imagen.device: what it costs, what it
    # gains; compiled images differ from eager ones in the last bits)
    compile: str = "off"

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("memory_format", self.memory_format, MEMORY_FORMATS)
        check_choice("compile", self.compile, COMPILE_MODES)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def placement(self) -> Placement:
        return resolve(self.device, self.precision, self.memory_format)

    def resolved(self) -> "Runtime":
        """This runtime with "auto" replaced by what runs on this machine (idempotent)."""
        p = self.placement()
        return dataclasses.replace(self, device=p.device, precision=p.precision, memory_format=p.memory_format)

    def autocast(self):
        return autocast(self.device, self.precision)  # refuses an unresolved "auto"

    @property
    def channels_last(self) -> bool:
        return check_choice("resolved memory_format", self.memory_format, ("channels_last", "contiguous")) == "channels_last"


@dataclass
class Cascade:
    """A loaded cascade: its config, the text encoder, one U-Net per stage (eval mode)."""

    config: CascadeConfig
    text_encoder: object  # imagen.text_encoders.TextEncoder
    unets: list[EfficientUNet]

    @property
    def stages(self) -> tuple[StageConfig, ...]:
        return self.config.stages


def make_denoiser(unet: EfficientUNet, stage: StageConfig, text, mask, s: StageSampling, rt: Runtime, lowres=None, aug_logsnr=None) -> Denoiser:
    """Closure z, logsnr -> guided, thresholded x0 prediction. With guidance != 1 the conditional and
    unconditional (all text masked) branches run as one batch of 2B."""
    guided = s.guidance != 1.0
    if guided:
        text2 = torch.cat([text, torch.zeros_like(text)])
        mask2 = torch.cat([mask, torch.zeros_like(mask)])
        lowres2 = None if lowres is None else torch.cat([lowres, lowres])
        aug2 = None if aug_logsnr is None else torch.cat([aug_logsnr, aug_logsnr])

    def denoise(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        with rt.autocast():
            if guided:
                zz = torch.cat([z, z])
                if rt.channels_last:
                    zz = zz.contiguous(memory_format=torch.channels_last)
                out = unet(zz, torch.cat([logsnr, logsnr]), text2, mask2, lowres2, aug2).float()
                pred = classifier_free_guidance(*out.chunk(2), s.guidance)
            else:
                zz = z.contiguous(memory_format=torch.channels_last) if rt.channels_last else z
                pred = unet(zz, logsnr, text, mask, lowres, aug_logsnr).float()
        x0 = x0_from_prediction(pred.contiguous(), z, logsnr, stage.diffusion.prediction)
        return s.thresholding(x0)

    return denoise


@torch.no_grad()
def sample_stage(unet, stage: StageConfig, text, mask, seeds: list[int], index: int, s: StageSampling, rt: Runtime, prev=None) -> torch.Tensor:
    """One stage for one batch: returns x0 (B, 3, R, R) in [-1, 1] (float32)."""
    rt = rt.resolved()
    logsnr_fn = make_logsnr(stage.diffusion)
    shape = (stage.unet.in_channels, stage.resolution, stage.resolution)
    lowres = aug_logsnr = None
    if stage.is_super_resolution:
        if prev is None:
            raise ValueError(f"stage {stage.name!r} is super-resolution and needs the previous stage's images")
        up = upsample(prev, stage.resolution)
        aug = torch.full((len(seeds),), s.aug_level, device=rt.device)
        lowres, aug_logsnr = augment_lowres(up, aug, logsnr_fn, PerSampleNoise(seeds, 2 * index + 1, shape, rt.device)())
    denoise = make_denoiser(unet, stage, text, mask, s, rt, lowres, aug_logsnr)
    noise = PerSampleNoise(seeds, 2 * index, shape, rt.device)
    logsnrs = logsnr_fn(torch.linspace(1.0, 0.0, s.steps + 1, device=rt.device, dtype=torch.float64)).float()
    return get_sampler(s.sampler)(denoise, noise(), logsnrs, noise)


class CascadePipeline:
    def __init__(self, cascade: Cascade, runtime: Runtime = Runtime()):
        self.placement = runtime.placement()  # recorded by callers (sample.json, run.json)
        self.cascade, self.rt = cascade, runtime.resolved()
        if self.rt.deterministic:
            use_deterministic_algorithms()
        for unet in cascade.unets:
            unet.to(self.rt.device).eval()
            if self.rt.channels_last:
                unet.to(memory_format=torch.channels_last)
        self.unets = [compile_unet(u, self.rt.compile) for u in cascade.unets]  # the modules themselves when "off"
        # compiled: wall seconds of each stage's first batch, compilation included (what it cost)
        self.first_batch_seconds: dict[str, float] = {}

    def __call__(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        settings: Sequence[StageSampling],
        num_stages: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Images (B, H, W, 3) uint8 from the last stage run (all stages unless num_stages)."""
        n = num_stages or len(self.cascade.stages)
        if len(settings) < n:
            raise ValueError(f"need sampling settings for {n} stages, got {len(settings)}")
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        out = []
        bs = self.rt.batch_size
        for i in range(0, len(prompts), bs):
            out.append(self._batch(list(prompts[i : i + bs]), list(seeds[i : i + bs]), settings, n))
            if progress:
                progress(len(out[-1]))
        return torch.cat(out) if out else torch.zeros((0, 1, 1, 3), dtype=torch.uint8)

    def _batch(self, prompts: list[str], seeds: list[int], settings: Sequence[StageSampling], n: int) -> torch.Tensor:
        text, mask = self.cascade.text_encoder.encode(prompts)  # step 1: once for all stages
        text, mask = text.to(self.rt.device), mask.to(self.rt.device)
        x = None
        for i in range(n):  # steps 2-3
            stage, unet = self.cascade.stages[i], self.unets[i]
            t0 = time.perf_counter()
            x = sample_stage(unet, stage, text, mask, seeds, i, settings[i], self.rt, prev=x)
            if self.rt.compile != "off" and stage.name not in self.first_batch_seconds:
                if torch.device(self.rt.device).type == "cuda":
                    torch.cuda.synchronize(self.rt.device)  # the stage's kernels, not only their launches
                self.first_batch_seconds[stage.name] = round(time.perf_counter() - t0, 2)
        return to_uint8(x.cpu())  # step 4

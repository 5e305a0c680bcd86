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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from common.errors import check_choice

from .conditioning import augment_lowres, to_uint8, upsample
from .config import COMPILE_MODES, MEMORY_FORMATS, PRECISIONS, CascadeConfig, StageConfig
from .device import Placement, autocast, compile_unet, resolve, use_deterministic_algorithms
from .diffusion import x0_from_prediction
from .guidance import Thresholding, classifier_free_guidance
from .samplers import SAMPLERS, Denoiser, get_sampler
from .schedule import make_logsnr
from .seeding import PerSampleNoise
from .unet import EfficientUNet

MAX_STEPS = 10_000  # 10x the paper's 1,000 training steps; more only allocates (a schedule of 10^12 steps is 8 TB)


@dataclass(frozen=True)
class StageSampling:
    """One stage's sampling settings: the only declaration of the sampling axes, their defaults,
    bounds and help (the `sample` flags, the sweep grid's defaults and checks, per-stage overrides
    are all made from it: SAMPLING_FIELDS). A number's bounds are its field's "range" [lo, hi];
    every float must be finite. Adding an axis: docs/ARCHITECTURE.md, "Settings declared once"."""

    steps: int = field(default=32, metadata={"help": "denoising steps", "range": (1, MAX_STEPS)})
    sampler: str = field(default="ddpm", metadata={"help": "sampler", "choices": tuple(SAMPLERS)})
    # w in eps~ = w eps(z,c) + (1-w) eps(z); 1 = no guidance. 3.0: a moderate weight, inside the
    # paper's sweep (1-10) where its FID-vs-CLIP curve bends; the one place the default is written
    guidance: float = field(default=3.0, metadata={"help": "classifier-free guidance weight w (1 = none)"})
    thresholding: Thresholding = field(default_factory=Thresholding)
    aug_level: float = field(
        default=0.0,
        metadata={"help": "SR stages only: noise-conditioning augmentation level in [0, 1]", "range": (0.0, 1.0)},
    )

    def __post_init__(self) -> None:
        get_sampler(self.sampler)  # validates the name
        for f in dataclasses.fields(self):  # each field's own rules, declared in its metadata
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):  # nan / inf guidance: every image black
                raise ValueError(f"{f.name} must be a finite number, got {value}")
            lo, hi = f.metadata.get("range", (None, None))
            if lo is not None and not lo <= value <= hi:
                raise ValueError(f"{f.name} must be in [{lo:g}, {hi:g}], got {value}")
            if "choices" in f.metadata:
                check_choice(f.name, value, f.metadata["choices"])


@dataclass(frozen=True)
class SamplingField:
    """One flat sampling key (Thresholding's two fields flattened as `thresholding`, `percentile`).
    applies_with = (key, value): the key is used only where another key has that value (percentile:
    thresholding "dynamic"), declared once in the field's metadata."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None
    applies_with: tuple[str, Any] | None = None


def _flat_fields() -> dict[str, SamplingField]:
    out = {}
    for owner, rename in ((StageSampling, {}), (Thresholding, {"mode": "thresholding"})):
        defaults = owner()
        for f in dataclasses.fields(owner):
            if f.name == "thresholding":
                continue  # flattened from Thresholding below
            value = getattr(defaults, f.name)
            name = rename.get(f.name, f.name)
            applies = f.metadata.get("applies_with")
            applies = (rename.get(applies[0], applies[0]), applies[1]) if applies else None
            out[name] = SamplingField(name, type(value), value, f.metadata["help"], f.metadata.get("choices"), applies)
    return out


SAMPLING_FIELDS: dict[str, SamplingField] = (
    _flat_fields()
)  # steps, sampler, guidance, aug_level, thresholding, percentile
STAGE_KEYS = tuple(SAMPLING_FIELDS)  # what a stage's sampling sets


def stage_sampling(values: Mapping[str, Any]) -> StageSampling:
    """A StageSampling from flat keys (any subset of STAGE_KEYS; the rest default): the one way a
    flat table (grid point, --set override, spec stage table) becomes settings, bounds checked."""
    unknown = sorted(set(values) - set(STAGE_KEYS))
    if unknown:
        raise ValueError(f"sampling keys {unknown} unknown; the keys are {', '.join(STAGE_KEYS)}")
    v = {**{k: f.default for k, f in SAMPLING_FIELDS.items()}, **values}
    own = {f.name: v[f.name] for f in dataclasses.fields(StageSampling) if f.name != "thresholding"}
    return StageSampling(**own, thresholding=Thresholding(mode=v["thresholding"], percentile=v["percentile"]))


def stage_samplings(
    stage_names: Sequence[str], base: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> list[StageSampling]:
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
            raise ValueError(
                f"stage {name!r}: sampling keys {bad} unknown or missing; the keys are {', '.join(STAGE_KEYS)}"
            )
        out.append(stage_sampling(values))
    return out


@dataclass(frozen=True)
class Runtime:
    """Where and how to run; nothing is hard-wired to CPU. "auto" values are resolved by
    imagen.device (bf16 only where it is fast; channels_last on CPU, contiguous on CUDA)."""

    device: str = field(default="auto", metadata={"help": "auto (cuda if present) | cpu | cuda | cuda:N"})
    precision: str = field(
        default="auto", metadata={"help": "auto: bf16 only where it is fast (imagen.device)", "choices": PRECISIONS}
    )
    memory_format: str = field(
        default="auto", metadata={"help": "auto: channels_last on CPU", "choices": MEMORY_FORMATS}
    )
    batch_size: int = field(
        default=8, metadata={"help": "images per batch (small batches are fastest per image on 2 cores)"}
    )
    # torch's deterministic algorithms (imagen.device.use_deterministic_algorithms): bit-exact CUDA
    # reruns at some speed cost; CPU results are deterministic without it
    deterministic: bool = field(
        default=False, metadata={"help": "torch deterministic algorithms: bit-exact reruns on CUDA (slower)"}
    )
    # "off" (eager) or a torch.compile mode for every U-Net (imagen.device: what it costs, what it
    # gains; compiled images differ from eager ones in the last bits)
    compile: str = field(
        default="off",
        metadata={
            "help": "torch.compile the U-Nets (pays only for long jobs: minutes of "
            "compilation first; docs/devices.md)",
            "choices": COMPILE_MODES,
        },
    )

    def __post_init__(self) -> None:  # the flags' choices are checked again here: Runtime is also built from dicts
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("memory_format", self.memory_format, MEMORY_FORMATS)
        check_choice("compile", self.compile, COMPILE_MODES)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def placement(self) -> Placement:
        return resolve(self.device, self.precision, self.memory_format)

    def resolved(self) -> Runtime:
        """This runtime with "auto" replaced by what runs on this machine (idempotent)."""
        p = self.placement()
        return dataclasses.replace(self, device=p.device, precision=p.precision, memory_format=p.memory_format)

    def autocast(self):
        return autocast(self.device, self.precision)  # refuses an unresolved "auto"

    @property
    def channels_last(self) -> bool:
        return (
            check_choice("resolved memory_format", self.memory_format, ("channels_last", "contiguous"))
            == "channels_last"
        )


@dataclass
class Cascade:
    """A loaded cascade: its config, the text encoder, one U-Net per stage (eval mode)."""

    config: CascadeConfig
    text_encoder: object  # imagen.text_encoders.TextEncoder
    unets: list[EfficientUNet]

    @property
    def stages(self) -> tuple[StageConfig, ...]:
        return self.config.stages


def add_arguments(parser, owner: str) -> None:
    """argparse flags made from the declaration: owner "sampling" (SAMPLING_FIELDS) or "runtime"
    (Runtime's fields): name, type, default, help and choices written once, in the dataclasses."""
    if owner == "sampling":
        items = [(f.name, f.type, f.default, f.help, f.choices) for f in SAMPLING_FIELDS.values()]
    elif owner == "runtime":
        items = [
            (f.name, type(f.default), f.default, f.metadata["help"], f.metadata.get("choices"))
            for f in dataclasses.fields(Runtime)
        ]
    else:
        raise ValueError(f"owner {owner!r}; choose one of sampling, runtime")
    for name, typ, default, help_text, choices in items:
        flag = "--" + name.replace("_", "-")
        if typ is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        else:  # choices shown, checked by the dataclass itself (one line naming them, exit 2, as every bad value)
            parser.add_argument(
                flag,
                type=typ,
                default=default,
                metavar=" | ".join(choices) if choices else None,
                help=f"{help_text} (default: {default})",
            )


def runtime_from(args) -> Runtime:
    """The Runtime a command's parsed flags (add_arguments(p, "runtime")) describe."""
    return Runtime(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Runtime)})


def make_denoiser(
    unet: EfficientUNet, stage: StageConfig, text, mask, s: StageSampling, rt: Runtime, lowres=None, aug_logsnr=None
) -> Denoiser:
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
def sample_stage(
    unet, stage: StageConfig, text, mask, seeds: list[int], index: int, s: StageSampling, rt: Runtime, prev=None
) -> torch.Tensor:
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
        lowres, aug_logsnr = augment_lowres(
            up, aug, logsnr_fn, PerSampleNoise(seeds, 2 * index + 1, shape, rt.device)()
        )
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

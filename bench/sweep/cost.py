"""Expected GPU time of a sweep spec's `diffusers_cascade` models on DeepFloyd IF's real-size networks:
an estimate from FLOPs and measured utilisation, not a run.

    seconds per image = sum over stages of FLOPs / (peak x share), where
      FLOPs   = steps x one denoiser call (x2 where guidance > 1: diffusers doubles the batch for
                classifier-free guidance exactly when guidance_scale > 1) + the text encoder(s) + the
                upscaler's VAE decode, each counted on the meta device (bench.models.diffusers_flops);
      peak    = the bf16 matmul peak measured on an H200 (801 TFLOP/s, issue 18, by hand);
      share   = the share of that peak the paper-size U-Nets reached there, eager, bf16: 39 % for the
                64 x 64 base, 25-27 % for the SR stages (a range: the low and high ends are reported).
    The IF U-Nets are not the paper's Efficient U-Nets: their own shares are unmeasured, so the
    estimate borrows the paper-size ones stage by stage (base -> IF-I, SR -> IF-II and the upscaler).
    Text encoders get the base share (they are < 1 % of the FLOPs); the upscaler's VAE runs in
    float32 in diffusers (force_upcast), counted at half the bf16 peak (TF32) x the SR share. Of its
    19 TFLOP per image 8.8 are one self-attention over 256 x 256 latent positions, whose float32
    matmuls torch keeps off TF32 by default: that part may run slower than counted (the VAE is
    ~3 % of a three-stage image's time as estimated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MEASURED_PEAK = 801e12  # FLOP/s, bf16 matmul, one H200 (issue 18: torch 2.11, CUDA 13)
SHARES = {"base": (0.39, 0.39), "sr": (0.25, 0.27)}  # (low, high) share of MEASURED_PEAK, eager bf16 (issue 18)
DEFAULT_NETWORKS = ("if-i-xl", "if-ii-l", "x4-upscaler")


@dataclass(frozen=True)
class GpuKind:
    name: str
    peak: float  # FLOP/s the shares apply to
    basis: str  # where the peak and shares come from


GPU_KINDS = (
    GpuKind("H200", MEASURED_PEAK, "measured: peak and shares by hand on one H200 (issue 18)"),
    GpuKind(
        "H100 SXM",
        MEASURED_PEAK,
        "assumed = H200: the same tensor-core peak on paper (989 TFLOP/s dense bf16); "
        "not measured on an H100, whose lower memory bandwidth (3.35 vs 4.8 TB/s) may lower the SR shares",
    ),
)


@dataclass(frozen=True)
class CellCost:
    model: str
    cell: str  # guidance / steps / aug_level of the grid point
    images: int
    stage_flops: tuple[float, ...]  # FLOPs per image, per stage
    seconds: tuple[float, float]  # per image on the measured basis: (at the high shares, at the low shares)


def stage_seconds(
    network: str, steps: int, guidance: float, peak: float = MEASURED_PEAK
) -> tuple[float, tuple[float, float]]:
    """(FLOPs, (fast, slow) seconds) of one image through one stage."""
    from bench.models.diffusers_flops import network_flops

    f = network_flops(network)
    cfg = 2 if guidance > 1 else 1
    role = "base" if network == "if-i-xl" else "sr"
    text = f.text_call * (
        2 if network == "if-i-xl" else cfg
    )  # IF encodes the prompt and "" once; the upscaler per branch
    unet = steps * f.unet_call * cfg
    out = []
    for share in (SHARES[role][1], SHARES[role][0]):
        out.append(unet / (peak * share) + text / (peak * SHARES["base"][0]) + f.decode / (peak / 2 * share))
    return unet + text + f.decode, (out[0], out[1])


def _prompt_count(ps) -> int:
    """COCO's n captions (its captions file is the user's, not read for an estimate); else the set's size."""
    from drawbench.sets import load_prompt_set

    if ps.name == "coco" and "n" in ps.options:
        return int(ps.options["n"])
    return len(load_prompt_set(ps.name, ps.options))


def estimate(spec_path: str | Path, networks: tuple[str, ...] = DEFAULT_NETWORKS) -> list[CellCost]:
    """One CellCost per (diffusers_cascade model, grid point), images summed over prompt sets. Stage k
    of each model is `networks[k]`; the spec's stage settings and grid decide steps and guidance."""
    from bench.models.diffusers_flops import NETWORKS
    from bench.models.diffusers_stages import ROLES, StageInfo, resolve_call, stage_names

    from .cells import grid_points
    from .spec import load_spec

    unknown = [n for n in networks if n not in NETWORKS]
    if unknown or not networks:
        raise ValueError(f"networks {', '.join(unknown) or '(none)'}: allowed: {', '.join(NETWORKS)}")
    if networks[0] != "if-i-xl" or "if-i-xl" in networks[1:]:  # a cascade's stage I is its one IFPipeline (read_stage)
        raise ValueError(f"networks {', '.join(networks)}: if-i-xl first (stage I), then if-ii-l / x4-upscaler")
    spec, _ = load_spec(spec_path)
    models = [m for m in spec.models if m.kind == "diffusers_cascade"]
    if not models:
        raise ValueError(
            f"{spec_path}: no diffusers_cascade model to estimate; kinds in the spec: {', '.join(m.kind for m in spec.models)}"
        )
    prompts = sum(_prompt_count(ps) for ps in spec.prompt_sets) * spec.samples_per_prompt
    out = []
    for m in models:
        n = m.config.num_stages or len(m.config.paths)
        if n > len(networks):
            raise ValueError(
                f"model {m.name!r} runs {n} stages but {len(networks)} networks were named: {', '.join(networks)}"
            )
        # each stage as read_stage would see IF's folders (1,000 noising steps; the upscaler's max_noise_level 350)
        stages = [
            StageInfo(
                name,
                Path(p),
                NETWORKS[net][0],
                ROLES[NETWORKS[net][0]][0],
                {"_class_name": "DDPMScheduler"},
                1000,
                350 if net == "x4-upscaler" else None,
            )
            for name, p, net in zip(stage_names(n), m.config.paths, networks)
        ]
        for _, s in grid_points(spec.grid, ("steps", "guidance", "aug_level", "seed")):
            calls = [
                resolve_call(st, s.steps, s.guidance, s.aug_level, m.config.stages.get(st.name, {})) for st in stages
            ]
            per = [stage_seconds(net, c.steps, c.guidance) for net, c in zip(networks, calls)]
            label = ", ".join(f"{st.name}: {c.steps} steps, w={c.guidance:g}" for st, c in zip(stages, calls))
            out.append(
                CellCost(
                    m.name,
                    label,
                    prompts,
                    tuple(f for f, _ in per),
                    (sum(t[0] for _, t in per), sum(t[1] for _, t in per)),
                )
            )
    return out


def gpu_hours(costs: list[CellCost], kind: GpuKind) -> tuple[float, float]:
    scale = MEASURED_PEAK / kind.peak
    return tuple(sum(c.images * c.seconds[i] for c in costs) * scale / 3600 for i in (0, 1))

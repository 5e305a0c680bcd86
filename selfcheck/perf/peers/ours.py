"""Our side of the sampling comparison (runs in the project's venv): the shipped cascade's base
stage sampled through the real code path, imagen.pipeline.sample_stage -> make_denoiser -> DDPM,
with the pipeline's Runtime settings (bf16 autocast, channels_last by default) and classifier-free
guidance as one conditional + unconditional batch of 2B. Text encodings are random (B, 32, 384)
tensors, so text encoding is not timed (nobody's is)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import StageBench, count_flops, emit, param_count, parse_settings, random_context, time_variants

from imagen.checkpoint import load_cascade_checkpoint
from imagen.pipeline import Runtime, StageSampling, make_denoiser, sample_stage

# aten ops that carry the counted FLOPs (convolutions, matmuls); everything else is "other"
COMPUTE_OPS = ("conv", "mm", "matmul", "linear", "baddbmm", "mkldnn")


def op_time_split(fn, flops: int, calls: int = 3) -> dict:
    """Where one denoiser call's CPU time goes (torch.profiler, self time per aten op): the share in
    convolution / matmul kernels, their own FLOP/s, and the heaviest other ops. This is the
    measured cause when the achieved FLOP/s is far below the matmul peak."""
    with torch.inference_mode():
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                fn()
    ops = [(e.key, e.self_cpu_time_total) for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(t for _, t in ops) or 1.0
    compute = sum(t for k, t in ops if any(c in k for c in COMPUTE_OPS))
    others = sorted(((k, t) for k, t in ops if not any(c in k for c in COMPUTE_OPS)), key=lambda kt: -kt[1])[:6]
    return {
        "calls": calls,
        "aten_self_seconds_per_call": total / calls / 1e6,
        "conv_matmul_share": compute / total,
        "conv_matmul_flops_per_second": flops * calls / (compute / 1e6) if compute else None,
        "top_other_ops": [{"op": k, "share": t / total} for k, t in others],
    }


def main() -> int:
    s: StageBench = parse_settings()
    cfg, unets, metas = load_cascade_checkpoint(Path(s.checkpoint), num_stages=1)
    stage, unet = cfg.stages[0], unets[0].to(s.device).eval()
    if (stage.resolution, stage.unet.text_embed_dim, cfg.text_encoder.max_length) != (
        s.resolution,
        s.text_dim,
        s.text_len,
    ):
        raise SystemExit(
            f"settings do not match the checkpoint's base stage: {stage.resolution}, {stage.unet.text_embed_dim}, "
            f"{cfg.text_encoder.max_length}"
        )
    text, mask = random_context(s)
    sampling = StageSampling(
        steps=s.steps, sampler="ddpm", guidance=s.guidance
    )  # thresholding: dynamic, the declared default percentile
    seeds = list(range(s.batch))

    def make_loop(bf16: bool, channels_last: bool):
        rt = Runtime(
            device=s.device,
            precision="bf16" if bf16 else "fp32",
            memory_format="channels_last" if channels_last else "contiguous",
            batch_size=s.batch,
        )
        unet.to(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )  # as CascadePipeline does
        return lambda: sample_stage(unet, stage, text, mask, seeds, 0, sampling, rt)

    timing = time_variants(s, make_loop)
    # FLOP of one denoiser call = one U-Net forward on the 2B guided batch (+ elementwise, not counted)
    best = timing["variants"][timing["best"]]
    rt = Runtime(
        device=s.device,
        precision="bf16" if best["bf16"] else "fp32",
        memory_format="channels_last" if best["channels_last"] else "contiguous",
        batch_size=s.batch,
    ).resolved()
    denoise = make_denoiser(unet, stage, text, mask, sampling, rt)
    z = torch.randn(s.batch, s.channels, s.resolution, s.resolution, device=s.device)
    flops_call = count_flops(lambda: denoise(z, torch.zeros(s.batch, device=s.device)))
    profile = op_time_split(lambda: denoise(z, torch.zeros(s.batch, device=s.device)), flops_call)
    emit(
        {
            "name": "ours",
            "library": "imagen-bench",
            "params": param_count(unet),
            "flops_per_loop": flops_call * s.steps,
            "unet_forwards_per_step": 1,
            "unet_batch": 2 * s.batch if s.guidance != 1 else s.batch,
            "config": {
                "stage": stage.name,
                "dim": stage.unet.dim,
                "channel_mults": list(stage.unet.channel_mults),
                "num_res_blocks": list(stage.unet.num_res_blocks),
                "sampler": "ddpm (imagen.samplers)",
                "thresholding": f"dynamic {sampling.thresholding.percentile}",
                "weights_sha256": metas[0]["weights_sha256"],
            },
            "profile": profile,
            **timing,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

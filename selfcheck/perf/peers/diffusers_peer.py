"""diffusers (UNet2DConditionModel + DDPMScheduler, the standard denoising loop), runs in the
benchmark venv (.perf-venv, `make perf-env`). The U-Net is laid out like our base stage: 3 levels
with channel mults 1-2-2, 2 ResNet layers per block, cross-attention transformer blocks (self- +
cross-attention + feed-forward, 4 heads) at the two lower levels where ours has attention, plain
blocks at the top, 32 x 384 text context, GroupNorm with 8 groups (4 when the width is not a multiple of 8); the base width is chosen so its
parameter count matches ours. The scheduler mirrors ours: 1000-step cosine betas (squaredcos_cap_v2),
epsilon prediction, dynamic thresholding at 0.995, `steps` inference steps; classifier-free
guidance as diffusers pipelines do it: conditional + unconditional (zero context) in one 2B batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    StageBench,
    autocast,
    closest_width,
    count_flops,
    emit,
    param_count,
    parse_settings,
    random_context,
    time_variants,
)


def main() -> int:
    s: StageBench = parse_settings()
    import diffusers
    from diffusers import DDPMScheduler, UNet2DConditionModel

    def build_unet(width: int):
        return UNet2DConditionModel(
            sample_size=s.resolution,
            in_channels=s.channels,
            out_channels=s.channels,
            layers_per_block=2,
            block_out_channels=(width, 2 * width, 2 * width),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            # diffusers' naming quirk: for this class `attention_head_dim` is the number of heads (4 heads as ours)
            cross_attention_dim=s.text_dim,
            attention_head_dim=4,
            norm_num_groups=groups(width),
        )

    def groups(width: int) -> int:  # ours uses 8; widths that are not multiples of 8 (finer matching) use 4
        return 8 if width % 8 == 0 else 4

    width, _ = closest_width(build_unet, s.param_target, range(16, 129, 4))
    unet = build_unet(width).to(s.device).eval()
    sched = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        thresholding=True,
        dynamic_thresholding_ratio=0.995,
        sample_max_value=1.0,
        clip_sample=False,
    )
    text, _ = random_context(s)
    guided = s.guidance != 1.0
    context = torch.cat([text, torch.zeros_like(text)]) if guided else text  # (2B, L, D): cond then uncond
    g = torch.Generator(device="cpu").manual_seed(0)

    def make_loop(bf16: bool, channels_last: bool):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        unet.to(memory_format=fmt)

        def loop():
            sched.set_timesteps(s.steps, device=s.device)
            x = torch.randn(s.batch, s.channels, s.resolution, s.resolution, generator=g).to(s.device)
            for t in sched.timesteps:
                inp = torch.cat([x, x]) if guided else x
                inp = sched.scale_model_input(inp, t).contiguous(memory_format=fmt)
                with autocast(s.device, bf16):
                    eps = unet(inp, t, encoder_hidden_states=context).sample.float()
                if guided:
                    cond, uncond = eps.chunk(2)
                    eps = uncond + s.guidance * (cond - uncond)
                x = sched.step(eps, t, x, generator=g).prev_sample
            return x

        return loop

    timing = time_variants(s, make_loop)
    x = torch.randn(2 * s.batch if guided else s.batch, s.channels, s.resolution, s.resolution, device=s.device)
    flops_step = count_flops(lambda: unet(x, torch.tensor(500, device=s.device), encoder_hidden_states=context))
    emit(
        {
            "name": "diffusers",
            "library": f"diffusers {diffusers.__version__}",
            "params": param_count(unet),
            "flops_per_loop": flops_step * s.steps,
            "unet_forwards_per_step": 1,
            "unet_batch": x.shape[0],
            "config": {
                "block_out_channels": [width, 2 * width, 2 * width],
                "layers_per_block": 2,
                "norm_num_groups": groups(width),
                "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                "attention_heads": 4,
                "scheduler": "DDPMScheduler squaredcos_cap_v2, epsilon, dynamic thresholding 0.995",
                "guidance": "2B batch (cond + zero context)",
            },
            **timing,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

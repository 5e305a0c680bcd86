"""FLOPs of DeepFloyd IF's real-size networks, counted, not guessed: each network is built from its
published config on torch's "meta" device (no weights, no memory) and one call is run under
torch.utils.flop_counter.FlopCounterMode, the counter issue 18's utilisation figures were measured
with (so FLOPs / (peak x utilisation) is like for like).

Configs (diffusers format), where each value was read:
  if-i-xl      DeepFloyd/IF-I-XL-v1.0 unet/config.json, as re-saved by a fine-tune that names it as
               its source (huggingface.co/lucostiguy11/dreambooth_if, unet/config.json, c2434e5);
               the same values follow from IF's own config.yml (model_channels 704, channel_mult
               1,2,3,4, num_res_blocks 3, attention_resolutions 32,16,8, num_head_channels 64,
               encoder_channels 2816; huggingface.co/ckpt/IF-I-XL-v1.0-16bit config.yml, b4406e6)
               through diffusers' scripts/convert_if.py (create_unet_diffusers_config). 4.3 B params
               (the model card's 4.3B).
  if-ii-l      DeepFloyd/IF-II-L-v1.0 unet/config.json as re-saved by a fine-tune naming it
               (huggingface.co/williamberman/dreambooth_me_upscale, unet/config.json); the values
               the excerpt lacks (time_embedding_dim = 160 x 8, time_embedding_act_fn gelu, the up
               blocks mirroring the down blocks) are convert_if.py's get_super_res_unet rules. 1.24 B
               params (the card's 1.2B).
  x4-upscaler  stabilityai/stable-diffusion-x4-upscaler unet/config.json (a44206c), vae/config.json
               (a7b1e85), text_encoder/config.json (a44206c). U-Net 473 M params.
  t5-xxl       google/t5-v1_1-xxl config.json (IF's text encoder; its encoder half: 4.76 B params).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

TEXT_TOKENS = 77  # IF's encode_prompt and the upscaler's CLIP tokenizer both pad / cut to 77

_IF_COMMON = dict(
    act_fn="gelu",
    addition_embed_type="text",
    addition_embed_type_num_heads=64,
    attention_head_dim=64,
    cross_attention_norm="group_norm",
    encoder_hid_dim=4096,
    encoder_hid_dim_type="text_proj",
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    out_channels=6,
    resnet_time_scale_shift="scale_shift",
)
UNETS = {
    "if-i-xl": dict(
        _IF_COMMON,
        block_out_channels=[704, 1408, 2112, 2816],
        cross_attention_dim=2816,
        in_channels=3,
        layers_per_block=3,
        sample_size=64,
        down_block_types=["ResnetDownsampleBlock2D"] + ["SimpleCrossAttnDownBlock2D"] * 3,
        up_block_types=["SimpleCrossAttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"],
    ),
    "if-ii-l": dict(
        _IF_COMMON,
        block_out_channels=[160, 320, 640, 960, 1280],
        class_embed_type="timestep",
        cross_attention_dim=1280,
        in_channels=6,
        layers_per_block=[2, 2, 3, 5, 5],
        mid_block_scale_factor=1.4142271248762552,
        resnet_out_scale_factor=1.4142271248762552,
        resnet_skip_time_act=True,
        sample_size=256,
        time_embedding_act_fn="gelu",
        time_embedding_dim=1280,
        down_block_types=["ResnetDownsampleBlock2D"] * 3 + ["SimpleCrossAttnDownBlock2D"] * 2,
        up_block_types=["SimpleCrossAttnUpBlock2D"] * 2 + ["ResnetUpsampleBlock2D"] * 3,
    ),
    "x4-upscaler": dict(
        act_fn="silu",
        attention_head_dim=8,
        block_out_channels=[256, 512, 512, 1024],
        cross_attention_dim=1024,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
        in_channels=7,
        layers_per_block=2,
        num_class_embeds=1000,
        only_cross_attention=[True, True, True, False],
        out_channels=4,
        sample_size=128,
        up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"],
        use_linear_projection=True,
    ),
}
UPSCALER_VAE = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512],
    down_block_types=["DownEncoderBlock2D"] * 3,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=256,
    up_block_types=["UpDecoderBlock2D"] * 3,
    scaling_factor=0.08333,
)
T5_XXL = dict(
    d_ff=10240, d_kv=64, d_model=4096, feed_forward_proj="gated-gelu", num_heads=64, num_layers=24, vocab_size=32128
)
UPSCALER_CLIP = dict(
    hidden_act="gelu",
    hidden_size=1024,
    intermediate_size=4096,
    max_position_embeddings=77,
    num_attention_heads=16,
    num_hidden_layers=23,
    vocab_size=49408,
    projection_dim=512,
)
# stage network -> (the pipeline class it runs in, its own text encoder, the side of its U-Net's input:
# IF-I makes 64 x 64, IF-II 256 x 256, the upscaler denoises a 256 x 256 latent that decodes to 1024 x 1024)
NETWORKS = {
    "if-i-xl": ("IFPipeline", "t5-xxl", 64),
    "if-ii-l": ("IFSuperResolutionPipeline", None, 256),
    "x4-upscaler": ("StableDiffusionUpscalePipeline", "clip-h", 256),
}


@dataclass(frozen=True)
class NetworkFlops:
    """FLOPs of one call for ONE image (FLOPs are linear in the batch: guidance's doubled batch is 2x)."""

    name: str
    params: int
    unet_call: float  # one denoiser call
    text_call: float  # one text-encoder call of one prompt (0: the stage takes stage I's encoding)
    decode: float  # the x4 upscaler's VAE decode of one image (0 elsewhere)


def _count(fn) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


@cache
def network_flops(name: str) -> NetworkFlops:
    """Build `name` on the meta device and count one call at batch 1 (64 x 64 stage I; 256 x 256
    output of stage II; the upscaler's 256 x 256 latent = 1024 x 1024 output)."""
    if name not in NETWORKS:
        raise ValueError(f"network {name!r}; allowed: {', '.join(NETWORKS)}")
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    cfg, (_, text, side) = UNETS[name], NETWORKS[name]
    with torch.device("meta"):
        unet = UNet2DConditionModel(**cfg)
        width = 1024 if name == "x4-upscaler" else 4096  # CLIP-H's hidden size / T5-XXL's d_model
        args = dict(encoder_hidden_states=torch.randn(1, TEXT_TOKENS, width))
        if cfg.get("class_embed_type") == "timestep" or "num_class_embeds" in cfg:  # noise_level conditioning
            args["class_labels"] = torch.ones(1, dtype=torch.long)
        unet_call = _count(lambda: unet(torch.randn(1, cfg["in_channels"], side, side), torch.ones(1), **args))
        ids = torch.ones(1, TEXT_TOKENS, dtype=torch.long)
        encoder = {
            "t5-xxl": lambda: T5EncoderModel(T5Config(**T5_XXL)),
            "clip-h": lambda: CLIPTextModel(CLIPTextConfig(**UPSCALER_CLIP)),
            None: lambda: None,
        }[text]()
        text_call = _count(lambda: encoder(input_ids=ids)) if encoder is not None else 0.0
        decode = 0.0
        if name == "x4-upscaler":
            vae = AutoencoderKL(**UPSCALER_VAE)
            decode = _count(lambda: vae.decode(torch.randn(1, 4, side, side)))
    return NetworkFlops(name, sum(p.numel() for p in unet.parameters()), unet_call, text_call, decode)
